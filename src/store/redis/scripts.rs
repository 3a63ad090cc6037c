//! The Lua scripts a [`RedisStore`](super::RedisStore) runs: each one atomic in Redis.

/// Deletes a fill lock only if this instance holds it.
pub(super) const RELEASE_LOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Stores an entry unless an invalidation may cover it: unless one of its tags (or
/// everything) was invalidated after its fill started, less the clock margin, or its fill
/// started so long ago that the record of such an invalidation may be gone. Indexes it in the
/// entries index and under its tags. Atomic: no invalidation can come between the check and
/// the write.
///
/// An index (of all entries, or of a tag's) is a sorted set of entry keys scored by when each
/// entry expires (Redis's clock, `TIME`, the one that expires the entries). Every write to an
/// index also drops its expired members, so an index holds the live entries written to it plus
/// at most those removed early by another index's invalidation and not yet expired; the index
/// itself expires with its longest-lived entry.
///
/// A large value comes uploaded (a plain `SET` of a key of its own, which Redis takes without a
/// copy) and is moved to the entry (`RENAME`, constant time), so the script never copies it: a
/// 32 MiB value as an argument held Redis for about 75 ms (two copies), every client waiting.
///
/// KEYS: entry, the "everything" time, the entries index, the invalidation records, the
/// uploaded value (or the entry again when the value is an argument), then the entry's tag
/// indexes.
/// ARGV: value (empty when uploaded), ttl ms, fill start ms, margin ms, oldest fill start
/// accepted ms, then the record name of each tag (`ARGV[i]` for `KEYS[i]`).
/// Returns {1, live entries} when stored, {0, -1} when refused (the upload deleted).
pub(super) const PUT: &str = r#"
local uploaded = ARGV[1] == ''
local function refuse()
  if uploaded then redis.call('DEL', KEYS[5]) end
  return {0, -1}
end
if tonumber(ARGV[3]) <= tonumber(ARGV[5]) then return refuse() end
local start = tonumber(ARGV[3]) - tonumber(ARGV[4])
local everything = redis.call('GET', KEYS[2])
if everything and tonumber(everything) >= start then return refuse() end
for i = 6, #ARGV do
  local at = redis.call('ZSCORE', KEYS[4], ARGV[i])
  if at and tonumber(at) >= start then return refuse() end
end
if uploaded and redis.call('EXISTS', KEYS[5]) == 0 then return {0, -1} end
local ttl = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if uploaded then
  redis.call('RENAME', KEYS[5], KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
end
local function index(set)
  redis.call('ZADD', set, now + ttl, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  redis.call('PEXPIRE', set, ttl, 'NX')
  redis.call('PEXPIRE', set, ttl, 'GT')
end
index(KEYS[3])
for i = 6, #KEYS do
  index(KEYS[i])
end
return {1, redis.call('ZCARD', KEYS[3])}
"#;

/// Records each tag as invalidated now, then removes every entry listed in its index (from the
/// entries index too), and the index, in one atomic step.
///
/// The records are one sorted set (record name -> time), so an invalidation costs the same
/// few dozen bytes whatever the tag. Records older than their memory are dropped: a fill that
/// old is refused by the put script anyway. Past the cap, the oldest records are folded into
/// the "everything" time (raised to the newest of them): fills that started before it are
/// refused whatever their tags, so no invalidation is lost, only fills that have run for a
/// while during a flood of invalidations are refused too.
///
/// KEYS: the entries index, the invalidation records, the "everything" time, then tag indexes.
/// ARGV: now ms, memory ms, most records, then the record name of each tag (`ARGV[i]` for
/// `KEYS[i]`).
/// Returns {entries removed, live entries}.
pub(super) const INVALIDATE_TAGS: &str = r#"
local removed = 0
for i = 4, #KEYS do
  redis.call('ZADD', KEYS[2], 'GT', ARGV[1], ARGV[i])
  local members = redis.call('ZRANGE', KEYS[i], 0, -1)
  for j = 1, #members, 500 do
    local last = math.min(j + 499, #members)
    removed = removed + redis.call('DEL', unpack(members, j, last))
    redis.call('ZREM', KEYS[1], unpack(members, j, last))
  end
  redis.call('DEL', KEYS[i])
end
local forgotten = string.format('(%d', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', forgotten)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local folded = redis.call('ZPOPMIN', KEYS[2], excess)
  local newest = folded[#folded]
  local everything = redis.call('GET', KEYS[3])
  if not everything or tonumber(everything) < tonumber(newest) then
    redis.call('SET', KEYS[3], newest, 'PX', ARGV[2])
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {removed, redis.call('ZCARD', KEYS[1])}
"#;

/// Records that everything was invalidated now (a clear), unless a later time is recorded.
/// KEYS: the "everything" time. ARGV: now ms, memory ms.
pub(super) const INVALIDATE_EVERYTHING: &str = r#"
local everything = redis.call('GET', KEYS[1])
if not everything or tonumber(everything) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"#;
