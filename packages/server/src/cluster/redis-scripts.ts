/**
 * The Lua scripts of the Redis cluster store: each is one atomic step that would race as several
 * commands (two nodes placing the same conference, two survivors cleaning up the same dead node).
 * They build their key names from the prefix in `ARGV[1]`, so they run on a single Redis server
 * (not Redis Cluster, where every key must be declared). Sent with EVAL each time: after a Redis
 * restart the script cache is empty, and EVAL needs no NOSCRIPT fallback.
 */

/** Highest node number: room numbers keep the node number in their bits above bit 20 (11 bits). */
export const MAX_NODE_NO = 2047;

/**
 * Claims or refreshes a node number. ARGV: prefix, node id, ttl ms, wanted number (0 = the lowest
 * free one). A number is free when its key is absent or ours, and the node that last held it (hash
 * `nodenos`) is this one or gone from the `nodes` set: a dead node's number stays reserved until a
 * survivor has cleaned it up, so its rooms' numbers never point at a newcomer. Returns the number,
 * or 0 when the wanted one (or every one) is taken.
 */
export const CLAIM_NODE_NO = `
local p, id, ttl, want = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local function free(n)
  local cur = redis.call('GET', p .. 'nodeno:' .. n)
  if cur then return cur == id end
  local last = redis.call('HGET', p .. 'nodenos', n)
  return (not last) or last == id or redis.call('SISMEMBER', p .. 'nodes', last) == 0
end
local function take(n)
  redis.call('SET', p .. 'nodeno:' .. n, id, 'PX', ttl)
  redis.call('HSET', p .. 'nodenos', n, id)
  return n
end
if want > 0 then
  if free(want) then return take(want) end
  return 0
end
for n = 1, ${MAX_NODE_NO} do
  if free(n) then return take(n) end
end
return 0
`;

/**
 * Records the host of conference `name` unless a live one is recorded. ARGV: prefix, name, chosen
 * node id, id of the owner read before (dead; may be replaced) or ''. Sets `conf:<name>` when it is
 * absent or still that dead owner, and keeps `confs:<owner>` (the names a node owns) in step.
 * Returns the owner now recorded.
 */
export const PLACE_CONFERENCE = `
local p, name, choice, dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local k = p .. 'conf:' .. name
local cur = redis.call('GET', k)
if (not cur) or cur == dead or cur == choice then
  redis.call('SET', k, choice)
  redis.call('SADD', p .. 'confs:' .. choice, name)
  if cur and cur ~= choice then redis.call('SREM', p .. 'confs:' .. cur, name) end
  return choice
end
return cur
`;

/** Deletes `conf:<name>` if node `id` owns it. ARGV: prefix, name, id. Returns 1 if deleted. */
export const RELEASE_CONFERENCE = `
local p, name, id = ARGV[1], ARGV[2], ARGV[3]
redis.call('SREM', p .. 'confs:' .. id, name)
if redis.call('GET', p .. 'conf:' .. name) == id then
  redis.call('DEL', p .. 'conf:' .. name)
  return 1
end
return 0
`;

/**
 * Removes node `id` from the cluster and returns what it held. ARGV: prefix, id, claimer id (or
 * the leave marker), marker ttl ms, the node's number, mode (`claim`: only if nobody claimed it
 * before, else returns nil; `leave`: always). Marks `dead:<id>`, then reads and deletes its rooms
 * and members, the conference names it owns, its registration, node number and set membership.
 * Returns `{ nodeInfoJson | nil, { { roomJson, { memberJson… } }… } }`.
 */
export const DROP_NODE = `
local p, id, by, ttl, no, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local marker = p .. 'dead:' .. id
if mode == 'claim' then
  if not redis.call('SET', marker, by, 'NX', 'PX', ttl) then return nil end
else
  redis.call('SET', marker, by, 'PX', ttl)
end
local info = redis.call('GET', p .. 'nodeinfo:' .. id) or redis.call('GET', p .. 'node:' .. id)
local rooms = redis.call('HGETALL', p .. 'rooms:' .. id)
local out = {}
for i = 1, #rooms, 2 do
  local mk = p .. 'members:' .. id .. ':' .. rooms[i]
  out[#out + 1] = { rooms[i + 1], redis.call('HVALS', mk) }
  redis.call('DEL', mk)
end
redis.call('DEL', p .. 'rooms:' .. id, p .. 'node:' .. id, p .. 'nodeinfo:' .. id)
for _, name in ipairs(redis.call('SMEMBERS', p .. 'confs:' .. id)) do
  if redis.call('GET', p .. 'conf:' .. name) == id then redis.call('DEL', p .. 'conf:' .. name) end
end
redis.call('DEL', p .. 'confs:' .. id)
if redis.call('GET', p .. 'nodeno:' .. no) == id then redis.call('DEL', p .. 'nodeno:' .. no) end
if redis.call('HGET', p .. 'nodenos', no) == id then redis.call('HDEL', p .. 'nodenos', no) end
redis.call('SREM', p .. 'nodes', id)
return { info, out }
`;
