-- filter.lua: the filter evaluator, prepended after lib.lua to the scripts
-- that select proxies. `filter_matcher()` builds it only when a call has a
-- filter, so unfiltered calls pay nothing for it. It mirrors ProxyFilters::matches in pharox-core
-- (country ignores ASCII case, other fields exact, geo by haversine with
-- the same formula and Earth radius, boundary included).

local function filter_matcher()
  local EARTH_RADIUS_KM = 6371.0088
  local RAD = math.pi / 180.0

  local function haversine_km(lat1, lon1, lat2, lon2)
    local p1, p2 = lat1 * RAD, lat2 * RAD
    local dp = p2 - p1
    local dl = (lon2 - lon1) * RAD
    local s1, s2 = math.sin(dp / 2.0), math.sin(dl / 2.0)
    local a = s1 * s1 + math.cos(p1) * math.cos(p2) * (s2 * s2)
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.min(math.sqrt(a), 1.0))
  end

  local function str_eq(want, have)
    return want == nil or (type(have) == 'string' and have == want)
  end

  local matches
  matches = function(f, p)
    if f.country ~= nil and (type(p.country) ~= 'string'
        or string.upper(p.country) ~= string.upper(f.country)) then
      return false
    end
    if not (str_eq(f.source, p.source) and str_eq(f.city, p.city) and str_eq(f.isp, p.isp)) then
      return false
    end
    if f.asn ~= nil and p.asn ~= f.asn then
      return false
    end
    if f.geo ~= nil and f.geo ~= cjson.null then
      if type(p.latitude) ~= 'number' or type(p.longitude) ~= 'number' then
        return false
      end
      local g = f.geo
      if type(g) ~= 'table' or type(g.latitude) ~= 'number' or type(g.longitude) ~= 'number'
          or type(g.radius_km) ~= 'number' then
        error('PHAROX bad argument: geo filter')
      end
      if haversine_km(g.latitude, g.longitude, p.latitude, p.longitude) > g.radius_km then
        return false
      end
    end
    if f.all_of ~= nil then
      for _, sub in ipairs(f.all_of) do
        if not matches(sub, p) then return false end
      end
    end
    if f.any_of ~= nil and #f.any_of > 0 then
      local any = false
      for _, sub in ipairs(f.any_of) do
        if matches(sub, p) then any = true; break end
      end
      if not any then return false end
    end
    if f.none_of ~= nil then
      for _, sub in ipairs(f.none_of) do
        if matches(sub, p) then return false end
      end
    end
    return true
  end
  return matches
end
