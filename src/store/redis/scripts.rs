//! The Lua scripts a [`RedisStore`](super::RedisStore) runs: each one atomic in Redis.

/// Deletes a fill lock only if this instance holds it.
pub(super) const RELEASE_LOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Stores an entry unless one of its tags (or everything) was invalidated after its fill
/// started, less the clock margin; indexes it in the entries index and under its tags. Atomic:
/// no invalidation can come between the check and the write.
///
/// An index (of all entries, or of a tag's) is a sorted set of entry keys scored by when each
/// entry expires (Redis's clock, `TIME`, the one that expires the entries). Every write to an
/// index also drops its expired members, so an index holds the live entries written to it plus
/// at most those removed early by another index's invalidation and not yet expired; the index
/// itself expires with its longest-lived entry.
///
/// KEYS: entry, the "everything" marker, the entries index, then (tag index, tag marker) pairs.
/// ARGV: value, ttl ms, fill start ms, margin ms.
/// Returns {1, live entries} when stored, {0, -1} when refused.
pub(super) const PUT: &str = r#"
local start = tonumber(ARGV[3]) - tonumber(ARGV[4])
local function overtaken(marker)
  local at = redis.call('GET', marker)
  return at and tonumber(at) >= start
end
if overtaken(KEYS[2]) then return {0, -1} end
for i = 4, #KEYS, 2 do
  if overtaken(KEYS[i + 1]) then return {0, -1} end
end
local ttl = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
local function index(set)
  redis.call('ZADD', set, now + ttl, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  redis.call('PEXPIRE', set, ttl, 'NX')
  redis.call('PEXPIRE', set, ttl, 'GT')
end
index(KEYS[3])
for i = 4, #KEYS, 2 do
  index(KEYS[i])
end
return {1, redis.call('ZCARD', KEYS[3])}
"#;

/// Marks each tag as invalidated now, then removes every entry listed in its index (from the
/// entries index too), and the index, in one atomic step.
/// KEYS: the entries index, then (tag index, tag marker) pairs.
/// ARGV: now ms, marker lifetime ms.
/// Returns {entries removed, live entries}.
pub(super) const INVALIDATE_TAGS: &str = r#"
local removed = 0
for i = 2, #KEYS, 2 do
  local at = redis.call('GET', KEYS[i + 1])
  if not at or tonumber(at) < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
  end
  local members = redis.call('ZRANGE', KEYS[i], 0, -1)
  for j = 1, #members, 500 do
    local last = math.min(j + 499, #members)
    removed = removed + redis.call('DEL', unpack(members, j, last))
    redis.call('ZREM', KEYS[1], unpack(members, j, last))
  end
  redis.call('DEL', KEYS[i])
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {removed, redis.call('ZCARD', KEYS[1])}
"#;
