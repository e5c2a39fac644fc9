-- lease_ref.lua: naming a lease by its member or by the reference its id
-- carries, prepended after lib.lua to release.lua, renew.lua and
-- get_lease.lua only (the other scripts would build it on every call for
-- nothing).

-- The lease ARGV[i] names, for release, renew and get_lease: a member of
-- leases_by_deadline as given, or a reference "token:nonce" (what a lease
-- id carries) looked up in lease_by_token, whose member must carry the same
-- nonce. Returns the member and its sequence; false when a reference names
-- no stored lease; nil when the argument is malformed.
local function lease_arg(K, i)
  local a = ARGV[i]
  if type(a) ~= 'string' then return nil end
  local member = a
  local token, nonce = string.match(a, '^([1-9]%d*):(%d+)$')
  if token then
    if #token > 15 or tonumber(token) > LIMIT_MAX_TOKEN or #nonce > 13
        or not (nonce == '0' or string.match(nonce, '^[1-9]')) or tonumber(nonce) >= LIMIT_NONCE_END then
      return nil
    end
    member = redis.call('HGET', K.lease_by_token, token)
    if not member or string.match(member, MEMBER_REF_PATTERN) ~= a then return false end
  end
  local seq = string.match(member, MEMBER_PATTERN)
  if seq == nil or tonumber(seq) < LIMIT_FIRST_SEQ or tonumber(seq) > LIMIT_MAX_SEQ then
    -- A stored member pharox did not write holds nothing.
    if token then return false end
    return nil
  end
  return member, seq
end
