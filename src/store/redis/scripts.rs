//! The Lua scripts a [`RedisStore`](super::RedisStore) runs: each one atomic in Redis.
//!
//! Every script that adds an entry to the entries index or takes one out keeps the sizes
//! record (`…:sizes`, see [`Keys::sizes`](super::keys::Keys::sizes)) in step with it: one
//! field per member of the index holding its value's length, and their total. So the total is
//! the bytes of the indexed entries, whichever instance stored or removed them. The helpers
//! they share (`sizes_lua!`) open each of them.

/// Lua helpers for the sizes record, the first lines of every script that adds or removes
/// entries (a macro, so that `concat!` puts them in front of each script's literal).
///
/// - `now_ms()`: Redis's clock (`TIME`), the one that expires the entries, in ms.
/// - `forget(sizes, names, first, last)`: takes the sizes of `names[first..last]` off the
///   total and drops their fields (a name without one, already forgotten, counts nothing).
/// - `forget_all(sizes, names)`: the same for any number of names, 500 at a time (Lua's
///   `unpack` is bounded).
/// - `trim(entries, sizes, now)`: drops the expired members of the entries index, and their
///   sizes, at most 1,000 a call (so that one script never holds Redis long after a mass
///   expiry; the next calls take the rest): how an entry Redis expired leaves the total.
/// - `tally(entries, sizes)`: `{live entries, their bytes}` (the bytes of expired entries not
///   trimmed yet included). An empty index takes the record
///   with it, so whatever drift the total held is gone once the index empties (a clear).
macro_rules! sizes_lua {
    () => {
        r#"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function forget(sizes, names, first, last)
  local known = redis.call('HMGET', sizes, unpack(names, first, last))
  local freed = 0
  for i = 1, #known do
    freed = freed + (tonumber(known[i]) or 0)
  end
  if freed ~= 0 then
    redis.call('HINCRBY', sizes, 'total', string.format('%d', -freed))
  end
  redis.call('HDEL', sizes, unpack(names, first, last))
end
local function forget_all(sizes, names)
  for j = 1, #names, 500 do
    forget(sizes, names, j, math.min(j + 499, #names))
  end
end
local function trim(entries, sizes, now)
  local expired = redis.call('ZRANGE', entries, '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
  forget_all(sizes, expired)
  for j = 1, #expired, 500 do
    redis.call('ZREM', entries, unpack(expired, j, math.min(j + 499, #expired)))
  end
end
local function tally(entries, sizes)
  if redis.call('ZCARD', entries) == 0 then
    redis.call('DEL', sizes)
    return {0, 0}
  end
  local live = redis.call('ZCOUNT', entries, string.format('(%d', now_ms()), '+inf')
  local total = tonumber(redis.call('HGET', sizes, 'total')) or 0
  return {live, math.max(0, total)}
end
"#
    };
}

/// Deletes a fill lock only if this instance holds it.
pub(super) const RELEASE_LOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Stores an entry unless an invalidation may cover it: unless one of its tags (or
/// everything) was invalidated after its fill started, less the clock margin, or its fill
/// started so long ago that the record of such an invalidation may be gone. Indexes it in the
/// entries index and under its tags, and records its size (replacing the size of the value it
/// replaces). Atomic: no invalidation can come between the check and the write.
///
/// An index (of all entries, or of a tag's) is a sorted set of entry keys scored by when each
/// entry expires (Redis's clock, `TIME`, the one that expires the entries). Every write to an
/// index also drops its expired members (from the entries index: with their sizes), so an
/// index holds the live entries written to it plus at most those removed early by another
/// index's invalidation and not yet expired; the index itself, and the sizes record with the
/// entries index, expires with its longest-lived entry.
///
/// A large value comes uploaded (a plain `SET` of a key of its own, which Redis takes without a
/// copy) and is moved to the entry (`RENAME`, constant time), so the script never copies it: a
/// 32 MiB value as an argument held Redis for about 75 ms (two copies), every client waiting.
///
/// KEYS: entry, the "everything" time, the entries index, the invalidation records, the
/// uploaded value (or the entry again when the value is an argument), the sizes record, then
/// the entry's tag indexes.
/// ARGV: value (empty when uploaded), ttl ms, fill start ms, margin ms, oldest fill start
/// accepted ms, then the record name of each tag (`ARGV[i - 1]` for `KEYS[i]`).
/// Returns {1, live entries, their bytes} when stored, {0, -1, -1} when refused (the upload
/// deleted).
pub(super) const PUT: &str = concat!(
    sizes_lua!(),
    r#"
local entry, entries, sizes = KEYS[1], KEYS[3], KEYS[6]
local uploaded = ARGV[1] == ''
local function refuse()
  if uploaded then redis.call('DEL', KEYS[5]) end
  return {0, -1, -1}
end
if tonumber(ARGV[3]) <= tonumber(ARGV[5]) then return refuse() end
local start = tonumber(ARGV[3]) - tonumber(ARGV[4])
local everything = redis.call('GET', KEYS[2])
if everything and tonumber(everything) >= start then return refuse() end
for i = 6, #ARGV do
  local at = redis.call('ZSCORE', KEYS[4], ARGV[i])
  if at and tonumber(at) >= start then return refuse() end
end
if uploaded and redis.call('EXISTS', KEYS[5]) == 0 then return {0, -1, -1} end
local ttl = tonumber(ARGV[2])
local now = now_ms()
local size
if uploaded then
  size = redis.call('STRLEN', KEYS[5])
  redis.call('RENAME', KEYS[5], entry)
  redis.call('PEXPIRE', entry, ttl)
else
  size = #ARGV[1]
  redis.call('SET', entry, ARGV[1], 'PX', ttl)
end
local replaced = tonumber(redis.call('HGET', sizes, entry)) or 0
redis.call('HSET', sizes, entry, size)
redis.call('HINCRBY', sizes, 'total', size - replaced)
local function expire(key)
  redis.call('PEXPIRE', key, ttl, 'NX')
  redis.call('PEXPIRE', key, ttl, 'GT')
end
local function index(set)
  redis.call('ZADD', set, now + ttl, entry)
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  expire(set)
end
redis.call('ZADD', entries, now + ttl, entry)
trim(entries, sizes, now)
expire(entries)
expire(sizes)
for i = 7, #KEYS do
  index(KEYS[i])
end
local counted = tally(entries, sizes)
return {1, counted[1], counted[2]}
"#
);

/// Records each tag as invalidated now, then removes every entry listed in its index (from the
/// entries index and the sizes record too), and the index, in one atomic step.
///
/// The records are one sorted set (record name -> time), so an invalidation costs the same
/// few dozen bytes whatever the tag. Records older than their memory are dropped: a fill that
/// old is refused by the put script anyway. Past the cap, the oldest records are folded into
/// the "everything" time (raised to the newest of them): fills that started before it are
/// refused whatever their tags, so no invalidation is lost, only fills that have run for a
/// while during a flood of invalidations are refused too.
///
/// KEYS: the entries index, the invalidation records, the "everything" time, the sizes
/// record, then tag indexes.
/// ARGV: now ms, memory ms, most records, then the record name of each tag (`ARGV[i - 1]` for
/// `KEYS[i]`).
/// Returns {entries removed, live entries, their bytes}.
pub(super) const INVALIDATE_TAGS: &str = concat!(
    sizes_lua!(),
    r#"
local entries, sizes = KEYS[1], KEYS[4]
local removed = 0
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[2], 'GT', ARGV[1], ARGV[i - 1])
  local members = redis.call('ZRANGE', KEYS[i], 0, -1)
  for j = 1, #members, 500 do
    local last = math.min(j + 499, #members)
    removed = removed + redis.call('DEL', unpack(members, j, last))
    redis.call('ZREM', entries, unpack(members, j, last))
    forget(sizes, members, j, last)
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
trim(entries, sizes, now_ms())
local counted = tally(entries, sizes)
return {removed, counted[1], counted[2]}
"#
);

/// The length of each key's value: 0 for a key that is gone or is not a string (a value a
/// lookup could not read either). Reads only.
/// KEYS: the keys. Returns their lengths, in order.
pub(super) const LENGTHS: &str = r#"#!lua flags=no-writes
local lengths = {}
for i = 1, #KEYS do
  local len = redis.pcall('STRLEN', KEYS[i])
  if type(len) ~= 'number' then len = 0 end
  lengths[i] = len
end
return lengths
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

/// Deletes entries, and takes them out of the entries index and the sizes record. It only
/// frees memory, so it may run while Redis is out of memory (`allow-oom`).
/// KEYS: the entries index, the sizes record, then the entries.
/// Returns {entries deleted, live entries, their bytes}.
pub(super) const REMOVE: &str = concat!(
    "#!lua flags=allow-oom",
    sizes_lua!(),
    r#"
local entries, sizes = KEYS[1], KEYS[2]
local names = {}
for i = 3, #KEYS do
  names[#names + 1] = KEYS[i]
end
local deleted = 0
for j = 1, #names, 500 do
  local last = math.min(j + 499, #names)
  deleted = deleted + redis.call('DEL', unpack(names, j, last))
  redis.call('ZREM', entries, unpack(names, j, last))
  forget(sizes, names, j, last)
end
trim(entries, sizes, now_ms())
local counted = tally(entries, sizes)
return {deleted, counted[1], counted[2]}
"#
);

/// Drops the expired members of the entries index (and their sizes) and counts what is left:
/// how a read refreshes the figures now and then (in the read's round trip, so it must not
/// fail where the read would not: it only frees memory, and may run while Redis is out of
/// memory, `allow-oom`).
/// KEYS: the entries index, the sizes record. Returns {live entries, their bytes}.
pub(super) const TALLY: &str = concat!(
    "#!lua flags=allow-oom",
    sizes_lua!(),
    r#"
trim(KEYS[1], KEYS[2], now_ms())
return tally(KEYS[1], KEYS[2])
"#
);
