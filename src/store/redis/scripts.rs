//! The Lua scripts a [`RedisStore`](super::RedisStore) runs: each one atomic in Redis.

/// Deletes a fill lock only if this instance holds it.
pub(super) const RELEASE_LOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Stores an entry unless one of its tags (or everything) was invalidated after its fill
/// started, less the clock margin; indexes it under its tags. Atomic: no invalidation can come
/// between the check and the write.
/// KEYS: entry, the "everything" marker, then (tag set, tag marker) pairs.
/// ARGV: value, ttl ms, fill start ms, margin ms.
pub(super) const PUT: &str = r#"
local start = tonumber(ARGV[3]) - tonumber(ARGV[4])
local function overtaken(marker)
  local at = redis.call('GET', marker)
  return at and tonumber(at) >= start
end
if overtaken(KEYS[2]) then return 0 end
for i = 3, #KEYS, 2 do
  if overtaken(KEYS[i + 1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 3, #KEYS, 2 do
  redis.call('SADD', KEYS[i], KEYS[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2], 'NX')
  redis.call('PEXPIRE', KEYS[i], ARGV[2], 'GT')
end
return 1
"#;

/// Marks each tag as invalidated now, then removes every entry listed in its set, and the set,
/// in one atomic step. KEYS: (tag set, tag marker) pairs. ARGV: now ms, marker lifetime ms.
pub(super) const INVALIDATE_TAGS: &str = r#"
local removed = 0
for i = 1, #KEYS, 2 do
  local at = redis.call('GET', KEYS[i + 1])
  if not at or tonumber(at) < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
  end
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    removed = removed + redis.call('DEL', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('DEL', KEYS[i])
end
return removed
"#;
