-- filter.lua: decoding, checking and evaluating filters, prepended after
-- lib.lua to the scripts that select proxies. It mirrors ProxyFilters in
-- pharox-core: country ignores ASCII case, other fields match exactly, a
-- missing field never matches, geo is haversine with the same formula and
-- Earth radius, boundary included; the size limits are those of
-- pharox_core::validate (LIMIT_FILTER_*). filters() builds the helpers only
-- for calls that have a filter, and returns decode, matches, compile.

local function filters()
  local STRING_FIELDS = { 'country', 'source', 'city', 'isp' }
  local LIST_FIELDS = { 'all_of', 'any_of', 'none_of' }

  -- Decodes and checks a filter's JSON before anything is written: returns
  -- the filter (JSON nulls removed) and its number of filter objects, or nil
  -- and what is wrong.
  local function decode_filter(json)
    if type(json) ~= 'string' or #json > LIMIT_FILTER_BYTES then
      return nil, 'filter JSON size'
    end
    local ok, f = pcall(cjson.decode, json)
    if not ok or type(f) ~= 'table' or #f > 0 then return nil, 'filter JSON' end
    local nodes = 0
    local function check(x, depth)
      if type(x) ~= 'table' then return 'filter JSON' end
      if depth > LIMIT_FILTER_DEPTH then return 'filter depth' end
      nodes = nodes + 1
      if nodes > LIMIT_FILTER_NODES then return 'filter size' end
      for _, k in ipairs(STRING_FIELDS) do
        if x[k] == cjson.null then x[k] = nil end
        if x[k] ~= nil and (type(x[k]) ~= 'string' or #x[k] > LIMIT_FILTER_VALUE_BYTES) then
          return 'filter ' .. k
        end
      end
      if x.asn == cjson.null then x.asn = nil end
      if x.asn ~= nil and type(x.asn) ~= 'number' then return 'filter asn' end
      if x.geo == cjson.null then x.geo = nil end
      local g = x.geo
      if g ~= nil and (type(g) ~= 'table' or type(g.latitude) ~= 'number'
          or type(g.longitude) ~= 'number' or type(g.radius_km) ~= 'number') then
        return 'filter geo'
      end
      for _, k in ipairs(LIST_FIELDS) do
        if x[k] == cjson.null then x[k] = nil end
        if x[k] ~= nil then
          -- A JSON list: a non-empty object decodes to a table of length 0.
          if type(x[k]) ~= 'table' or (next(x[k]) ~= nil and #x[k] == 0) then return 'filter ' .. k end
          for _, sub in ipairs(x[k]) do
            local bad = check(sub, depth + 1)
            if bad then return bad end
          end
        end
      end
      return nil
    end
    local bad = check(f, 0)
    if bad then return nil, bad end
    return f, nodes
  end

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

  -- The equality fields a filter can be looked up by, rarest kinds first
  -- (country compared in upper case).
  local KEY_FIELDS = { 'asn', 'city', 'isp', 'source', 'country' }

  local function key_of(f)
    for _, k in ipairs(KEY_FIELDS) do
      local v = f[k]
      if v ~= nil then
        if k == 'country' then v = string.upper(v) end
        return k, v
      end
    end
  end

  -- Prepares a checked filter for matching: the entries of each any_of and
  -- none_of list that require a value of a field are grouped by that
  -- value, so a proxy is matched against the entries its own values name
  -- instead of the whole list (a list of countries or banned ASNs costs one
  -- lookup). Returns the most filter objects one match can visit.
  local function compile(f)
    local cost = 1
    for _, sub in ipairs(f.all_of or {}) do cost = cost + compile(sub) end
    for _, list in ipairs({ 'any_of', 'none_of' }) do
      if f[list] ~= nil and #f[list] > 0 then
        local rest, by = {}, {}
        local rest_cost, biggest = 0, {}
        for _, sub in ipairs(f[list]) do
          local c = compile(sub)
          local k, v = key_of(sub)
          if k == nil then
            rest[#rest + 1] = sub
            rest_cost = rest_cost + c
          else
            by[k] = by[k] or {}
            by[k][v] = by[k][v] or { cost = 0 }
            local bucket = by[k][v]
            bucket[#bucket + 1] = sub
            bucket.cost = bucket.cost + c
            biggest[k] = math.max(biggest[k] or 0, bucket.cost)
          end
        end
        f[list .. '_rest'], f[list .. '_by'] = rest, by
        cost = cost + rest_cost
        for _, c in pairs(biggest) do cost = cost + c end
      end
    end
    return cost
  end

  local matches

  -- Whether any entry of list `name` of `f` matches `p`: the entries
  -- without a key field, then those named by `p`'s values.
  local function any_entry(f, name, p)
    for _, sub in ipairs(f[name .. '_rest']) do
      if matches(sub, p) then return true end
    end
    for k, buckets in pairs(f[name .. '_by']) do
      local v = p[k]
      if k == 'country' and type(v) == 'string' then v = string.upper(v) end
      local bucket = v ~= nil and buckets[v]
      if bucket then
        for _, sub in ipairs(bucket) do
          if matches(sub, p) then return true end
        end
      end
    end
    return false
  end

  -- Whether proxy `p` (a decoded proxy record) satisfies filter `f`
  -- (checked by decode_filter, prepared by compile).
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
    local g = f.geo
    if g ~= nil then
      if type(p.latitude) ~= 'number' or type(p.longitude) ~= 'number' then
        return false
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
    if f.any_of ~= nil and #f.any_of > 0 and not any_entry(f, 'any_of', p) then
      return false
    end
    if f.none_of ~= nil and #f.none_of > 0 and any_entry(f, 'none_of', p) then
      return false
    end
    return true
  end

  return decode_filter, matches, compile
end
