"""The Lua scripts of dispatch and of the work-order lifecycle, in one place.

Each script is one whole state change: the work order's hash, its audit line, its
queue entry, the index ``{P}:index:{wo}``, the due sets ``{P}:due:{sign}`` /
``{P}:due:{resolve}`` and the live feed are written in the same atomic call, so no
crash, connection cut or racing officer can leave them disagreeing. Each script is
idempotent: the upsert by alert id (``{P}:wo:{WO}:seen``), a lifecycle transition by
its transition id (``{P}:wo:{WO}:done``); a repeat changes nothing.

Every key a script touches starts with the prefix's hash tag ``{P}`` (see
:mod:`citywatch.sinks.keys`), so on a Redis Cluster each call runs on the one node
that owns the prefix's slot; the queue keys a script derives from a queue name are
built from the tagged prefix it is passed (``ARGV`` "prefix" is ``Keys.root``).

Due sets follow the state after every change: an order is in ``{P}:due:{sign}``
exactly while unsigned (dispatched or escalated), scored by ``sign_due_ms``, and in
``{P}:due:{resolve}`` exactly while open and not yet flagged overdue, scored by
``resolve_due_ms``. A move to another queue (reroute, reassign, escalate)
acknowledges and deletes the old queue entry, so an open order has exactly one.

The callers: :mod:`citywatch.sinks.writer` (upsert, and the merge of two incidents'
work orders) and :mod:`citywatch.sinks.lifecycle` (transitions).
"""

# Shared by both scripts (prepended): queue key names, due-set upkeep, queue moves.
_COMMON = """
local function qkey(prefix, q) return prefix .. ':queue:{' .. q .. '}' end
local OPEN = {dispatched = true, escalated = true, signed = true, handling = true,
              returned = true}
local UNSIGNED = {dispatched = true, escalated = true}
-- KEYS of the dues: ks = {due_sign, due_resolve}
local function set_dues(wo, wo_id, ks)
  local h = redis.call('HMGET', wo, 'state', 'sign_due_ms', 'resolve_due_ms', 'overdue')
  if UNSIGNED[h[1]] then redis.call('ZADD', ks[1], h[2], wo_id)
  else redis.call('ZREM', ks[1], wo_id) end
  if OPEN[h[1]] and h[4] ~= '1' then redis.call('ZADD', ks[2], h[3], wo_id)
  else redis.call('ZREM', ks[2], wo_id) end
end
-- Drop the order's current queue entry (acknowledged, deleted) and add one to `queue`.
local function move_entry(prefix, wo, queues, queue, fields)
  local h = redis.call('HMGET', wo, 'queue', 'queue_entry')
  if h[2] and h[2] ~= '' then
    redis.call('XACK', qkey(prefix, h[1]), 'officers', h[2])
    redis.call('XDEL', qkey(prefix, h[1]), h[2])
  end
  local id = redis.call('XADD', qkey(prefix, queue), '*', unpack(fields))
  redis.call('SADD', queues, queue)
  redis.call('HSET', wo, 'queued', '1', 'queue_entry', id)
  return id
end
"""

# KEYS: 1 wo, 2 audit, 3 alerts, 4 seen, 5 queues, 6 index, 7 due_sign, 8 due_resolve,
#       9 feed
# ARGV: 1 now_ms, 2 alert_id, 3 alert_json, 4 severity, 5 severity_rank, 6 ts,
#       7 closes_at_ms, 8 level_rank, 9 centre, 10 department, 11 level, 12 queue,
#       13 sign_sla_s, 14 resolve_sla_s, 15 subjects, 16 kinds, 17 departments,
#       18 alert_count hint, 19 inhibited, 20 creation fields (JSON object; one
#       argument instead of ~70 keeps the client's packing cheap), 21 tagged prefix,
#       22 queue entry values (JSON array: wo incident kind severity subject zone level ts),
#       23 feed maxlen, 24 incident id now (moves when an earlier alert comes late or
#       incidents merge; the order keeps its id), 25 incident first_ts
# Returns {outcome, queue, state}: created, merged, rerouted, repeat or requeue (an
# order left unqueued by an older version, queued now).
UPSERT_LUA = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local prefix = ARGV[21]
local dues = {KEYS[7], KEYS[8]}
local v = cjson.decode(ARGV[22])
local wo_id = v[1]
local function entry(queue)
  local centre, dept = string.match(queue, '^(.-)|(.*)$')
  return {'wo', v[1], 'incident', v[2], 'kind', v[3], 'severity', v[4], 'subject', v[5],
          'zone', v[6], 'centre', centre, 'department', dept, 'level', v[7], 'ts', v[8]}
end
local function feed(event, queue)
  local f = entry(queue)
  table.insert(f, 1, event); table.insert(f, 1, 'event')
  f[#f + 1] = 'alert'; f[#f + 1] = ARGV[3]
  redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[23], '*', unpack(f))
end
local fresh = redis.call('SADD', KEYS[4], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local flat = {}
  for k, x in pairs(cjson.decode(ARGV[20])) do flat[#flat + 1] = k; flat[#flat + 1] = x end
  redis.call('HSET', KEYS[1], unpack(flat))
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('XADD', KEYS[2], '*', 'action', 'created', 'state', 'dispatched',
             'by', 'citywatch', 'at', ARGV[1], 'alert', ARGV[2], 'queue', ARGV[12])
  local id = redis.call('XADD', qkey(prefix, ARGV[12]), '*', unpack(entry(ARGV[12])))
  redis.call('SADD', KEYS[5], ARGV[12])
  redis.call('HSET', KEYS[1], 'queued', '1', 'queue_entry', id)
  redis.call('ZADD', KEYS[6], ARGV[1], wo_id)
  set_dues(KEYS[1], wo_id, dues)
  feed('created', ARGV[12])
  return {'created', ARGV[12], 'dispatched'}
end
local h = redis.call('HMGET', KEYS[1], 'queued', 'queue', 'state', 'sign_due_ms',
                     'resolve_due_ms', 'severity_rank', 'level', 'created_ms', 'ts',
                     'incident_closes_at_ms', 'queue_entry', 'first_ts')
if fresh == 0 then
  if h[1] == '1' then return {'repeat', h[2], h[3]} end
  -- Left unqueued by an older version (two round trips): queue it once, index it.
  local have = h[11] and h[11] ~= '' and
               #redis.call('XRANGE', qkey(prefix, h[2]), h[11], h[11]) > 0
  if have then
    redis.call('HSET', KEYS[1], 'queued', '1')
  else
    local id = redis.call('XADD', qkey(prefix, h[2]), '*', unpack(entry(h[2])))
    redis.call('SADD', KEYS[5], h[2])
    redis.call('HSET', KEYS[1], 'queued', '1', 'queue_entry', id)
  end
  redis.call('ZADD', KEYS[6], 'NX', h[8], wo_id)
  set_dues(KEYS[1], wo_id, dues)
  feed('created', h[2])
  return {'requeue', h[2], h[3]}
end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'alert_count', 1)
redis.call('HSET', KEYS[1], 'subjects', ARGV[15], 'kinds', ARGV[16], 'departments', ARGV[17],
           'updated_ms', ARGV[1], 'incident', ARGV[24])
if ARGV[6] > h[9] then redis.call('HSET', KEYS[1], 'ts', ARGV[6]) end
if ARGV[25] < h[12] then redis.call('HSET', KEYS[1], 'first_ts', ARGV[25]) end
if tonumber(ARGV[7]) > tonumber(h[10]) then
  redis.call('HSET', KEYS[1], 'incident_closes_at_ms', ARGV[7])
end
local sign_due, resolve_due = tonumber(h[4]), tonumber(h[5])
local created = tonumber(h[8])
local audit = {'action', 'alert_merged', 'state', h[3], 'by', 'citywatch', 'at', ARGV[1],
               'alert', ARGV[2], 'severity', ARGV[4], 'inhibited', ARGV[19],
               'incident', ARGV[24]}
redis.call('XADD', KEYS[2], '*', unpack(audit))
if tonumber(ARGV[5]) > tonumber(h[6]) then
  sign_due = math.min(sign_due, created + 1000 * tonumber(ARGV[13]))
  resolve_due = math.min(resolve_due, created + 1000 * tonumber(ARGV[14]))
  redis.call('HSET', KEYS[1], 'severity', ARGV[4], 'severity_rank', ARGV[5],
             'sign_due_ms', sign_due, 'resolve_due_ms', resolve_due)
  redis.call('XADD', KEYS[2], '*', 'action', 'severity_raised', 'state', h[3],
             'by', 'citywatch', 'at', ARGV[1], 'severity', ARGV[4])
end
local ranks = {town = 0, county = 1, city = 2}
if UNSIGNED[h[3]] and tonumber(ARGV[8]) > ranks[h[7]] and ARGV[12] ~= h[2] then
  sign_due = now + 1000 * tonumber(ARGV[13])
  move_entry(prefix, KEYS[1], KEYS[5], ARGV[12], entry(ARGV[12]))
  redis.call('HSET', KEYS[1], 'centre', ARGV[9], 'department', ARGV[10], 'level', ARGV[11],
             'queue', ARGV[12], 'sign_due_ms', sign_due)
  redis.call('XADD', KEYS[2], '*', 'action', 'rerouted', 'state', h[3], 'by', 'citywatch',
             'at', ARGV[1], 'from', h[2], 'queue', ARGV[12], 'reason', 'incident grew')
  set_dues(KEYS[1], wo_id, dues)
  feed('rerouted', ARGV[12])
  return {'rerouted', ARGV[12], h[3]}
end
set_dues(KEYS[1], wo_id, dues)
feed('merged', h[2])
return {'merged', h[2], h[3]}
"""
)

# KEYS: 1 wo, 2 audit, 3 done, 4 queues, 5 due_sign, 6 due_resolve, 7 feed
# ARGV: 1 action, 2 by, 3 now_ms, 4 allowed states (comma list), 5 new state ('' keeps
#       it), 6 extra condition, 7 audit details JSON, 8 transition id, 9 tagged prefix,
#       10 feed maxlen, 11 move ('' or JSON {centre, department, level}; '' parts keep
#       the current one), 12 ack ('1': acknowledge the queue entry), 13.. field pairs.
# Extra conditions: 'sign_due' (sign deadline passed), 'resolve_due', ''.
# Returns {outcome, state before}: ok, repeat (this transition id was applied),
# missing, refused or not_due.
TRANSITION_LUA = (
    _COMMON
    + """
local wo_id = string.match(KEYS[1], '{([^{}]*)}$')  -- {P}:wo:{WO}: the last braces
local h = redis.call('HMGET', KEYS[1], 'state', 'sign_due_ms', 'overdue', 'resolve_due_ms',
                     'queue', 'queue_entry', 'sign_sla_s', 'centre', 'department', 'level')
local st = h[1]
if not st then return {'missing', ''} end
if redis.call('SISMEMBER', KEYS[3], ARGV[8]) == 1 then return {'repeat', st} end
local ok = false
for s in string.gmatch(ARGV[4], '[^,]+') do if s == st then ok = true end end
if not ok then return {'refused', st} end
local now = tonumber(ARGV[3])
if ARGV[6] == 'sign_due' and tonumber(h[2]) > now then return {'not_due', st} end
if ARGV[6] == 'resolve_due' and (h[3] == '1' or tonumber(h[4]) > now) then
  return {'not_due', st}
end
local prefix = ARGV[9]
local new = ARGV[5]
if new == '' then new = st end
local details = ARGV[7]
if ARGV[12] == '1' and h[6] and h[6] ~= '' then
  redis.call('XACK', qkey(prefix, h[5]), 'officers', h[6])
end
local fields = {'state', new, 'updated_ms', ARGV[3]}
for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
if ARGV[11] ~= '' then
  local m = cjson.decode(ARGV[11])
  local centre = m.centre ~= '' and m.centre or h[8]
  local dept = m.department ~= '' and m.department or h[9]
  local level = m.level ~= '' and m.level or h[10]
  local queue = centre .. '|' .. dept
  local sign_due = now + 1000 * (tonumber(h[7]) or 3600)
  local e = redis.call('HMGET', KEYS[1], 'incident', 'kind', 'severity', 'subject', 'zone',
                       'ts')
  move_entry(prefix, KEYS[1], KEYS[4], queue,
             {'kind', e[2] or '', 'severity', e[3] or '', 'subject', e[4] or '',
              'zone', e[5] or '', 'ts', e[6] or '', 'wo', wo_id, 'incident', e[1] or '',
              'centre', centre, 'department', dept, 'level', level})
  for _, x in ipairs({'centre', centre, 'department', dept, 'level', level, 'queue', queue,
                      'sign_due_ms', tostring(sign_due), 'signed_by', ''}) do
    fields[#fields + 1] = x
  end
  details = '{"from":' .. cjson.encode(h[5]) .. ',"to":' .. cjson.encode(queue) .. '}'
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[1] == 'return' then redis.call('HINCRBY', KEYS[1], 'returns', 1) end
if ARGV[1] == 'escalate' then redis.call('HINCRBY', KEYS[1], 'escalations', 1) end
set_dues(KEYS[1], wo_id, {KEYS[5], KEYS[6]})
local audit = {'action', ARGV[1], 'state', new, 'from', st, 'by', ARGV[2], 'at', ARGV[3]}
if details ~= '' then audit[#audit + 1] = 'details'; audit[#audit + 1] = details end
redis.call('XADD', KEYS[2], '*', unpack(audit))
local w = redis.call('HMGET', KEYS[1], 'queue', 'kind', 'severity', 'subject', 'zone',
                     'centre', 'department', 'ts')
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[10], '*', 'event', ARGV[1], 'wo', wo_id,
           'state', new, 'by', ARGV[2], 'queue', w[1], 'kind', w[2] or '',
           'severity', w[3] or '', 'subject', w[4] or '', 'zone', w[5] or '',
           'centre', w[6] or '', 'department', w[7] or '', 'ts', w[8] or '')
redis.call('SADD', KEYS[3], ARGV[8])
return {'ok', st}
"""
)

# Two incidents became one: the work order of the one opened later (KEYS[1..3]) is
# merged into the survivor's (KEYS[4..5]). The absorbed order keeps everything officers
# wrote on it (signed_by, feedback, ...) and its audit trail; its state becomes
# ``merged`` (its former state in ``merged_state``, the survivor in ``merged_into``), its
# queue entry is acknowledged and it leaves the due sets. The survivor's audit records
# the absorbed order and its state; an unsigned survivor takes over the sign-off (and
# handling) of an absorbed order an officer had signed, so the incident is not escalated
# under the officer already on it. Each order gets a feed entry.
# KEYS: 1 from wo, 2 from audit, 3 from done, 4 into wo, 5 into audit, 6 due_sign,
#       7 due_resolve, 8 feed
# ARGV: 1 now_ms, 2 transition id, 3 tagged prefix, 4 feed maxlen, 5 incident id, 6 by,
#       7 from id, 8 into id
# Returns {outcome, state before}: ok, repeat (applied already, or merged before) or
# missing (no such order: its alerts were silenced or not dispatched yet).
MERGE_LUA = (
    _COMMON
    + """
local prefix, now, by = ARGV[3], ARGV[1], ARGV[6]
local dues = {KEYS[6], KEYS[7]}
local h = redis.call('HMGET', KEYS[1], 'state', 'queue', 'queue_entry', 'signed_by',
                     'signed_ms', 'handled_by', 'started_ms', 'alert_count')
local st = h[1]
if not st then return {'missing', ''} end
if st == 'merged' or redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then
  return {'repeat', st}
end
if h[3] and h[3] ~= '' then redis.call('XACK', qkey(prefix, h[2]), 'officers', h[3]) end
redis.call('HSET', KEYS[1], 'state', 'merged', 'merged_into', ARGV[8], 'merged_ms', now,
           'merged_state', st, 'updated_ms', now)
set_dues(KEYS[1], ARGV[7], dues)
redis.call('XADD', KEYS[2], '*', 'action', 'merged', 'state', 'merged', 'from', st,
           'by', by, 'at', now, 'into', ARGV[8], 'incident', ARGV[5])
local function feed(key, wo_id, event, state, other)
  local w = redis.call('HMGET', key, 'queue', 'kind', 'severity', 'subject', 'zone',
                       'centre', 'department', 'ts')
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[4], '*', 'event', event, 'wo', wo_id,
             'state', state, 'by', by, 'queue', w[1] or '', 'kind', w[2] or '',
             'severity', w[3] or '', 'subject', w[4] or '', 'zone', w[5] or '',
             'centre', w[6] or '', 'department', w[7] or '', 'ts', w[8] or '',
             'order', other, 'incident', ARGV[5])
end
feed(KEYS[1], ARGV[7], 'merged_into', 'merged', ARGV[8])
local t = redis.call('HMGET', KEYS[4], 'state', 'queue', 'queue_entry')
if t[1] then
  local signed = h[4] and h[4] ~= ''
  local state = t[1]
  local audit = {'action', 'absorbed', 'state', state, 'by', by, 'at', now,
                 'order', ARGV[7], 'order_state', st, 'alerts', h[8] or '0',
                 'incident', ARGV[5]}
  if signed then audit[#audit + 1] = 'signed_by'; audit[#audit + 1] = h[4] end
  if UNSIGNED[t[1]] and signed and (st == 'signed' or st == 'handling') then
    state = st
    if t[3] and t[3] ~= '' then
      redis.call('XACK', qkey(prefix, t[2]), 'officers', t[3])
    end
    local f = {'state', st, 'signed_by', h[4], 'signed_ms', h[5] or now, 'updated_ms', now}
    if st == 'handling' then
      f[#f + 1] = 'handled_by'; f[#f + 1] = h[6] or h[4]
      f[#f + 1] = 'started_ms'; f[#f + 1] = h[7] or now
    end
    redis.call('HSET', KEYS[4], unpack(f))
    set_dues(KEYS[4], ARGV[8], dues)
    audit[4] = st
    audit[#audit + 1] = 'from'; audit[#audit + 1] = t[1]
  end
  redis.call('XADD', KEYS[5], '*', unpack(audit))
  feed(KEYS[4], ARGV[8], 'absorbed', state, ARGV[7])
end
redis.call('SADD', KEYS[3], ARGV[2])
return {'ok', st}
"""
)

# KEYS: 1 a scratch key under the prefix.  Runs every command the scripts above use
# (and the sinks' own), on scratch keys it deletes again; returns the denied ones.
# Redis names no command when an ACL denies one inside a script, so this asks first.
PREFLIGHT_LUA = """
local k = KEYS[1]
local denied = {}
local function acl_denied(r)  -- other errors (OOM, READONLY) are the writes' to wait out
  return type(r) == 'table' and r.err and
         (string.find(r.err, "can't run this command", 1, true) or
          string.find(r.err, 'NOPERM', 1, true) or string.find(r.err, 'no permissions', 1, true))
end
local function try(cmd, ...)
  if acl_denied(redis.pcall(cmd, ...)) then denied[#denied + 1] = string.lower(cmd) end
end
try('EXISTS', k .. ':h')
try('HSET', k .. ':h', 'f', '1')
try('HMGET', k .. ':h', 'f')
try('HINCRBY', k .. ':h', 'n', 1)
try('HGETALL', k .. ':h')
try('RPUSH', k .. ':l', 'x')
try('SADD', k .. ':s', 'x')
try('SISMEMBER', k .. ':s', 'x')
try('ZADD', k .. ':z', 1, 'x')
try('ZREM', k .. ':z', 'x')
local id = redis.pcall('XADD', k .. ':x', '*', 'f', '1')
if acl_denied(id) then denied[#denied + 1] = 'xadd' end
if type(id) ~= 'string' then id = '0-1' end
try('XADD', k .. ':x', 'MAXLEN', '~', 10, '*', 'f', '1')
try('XRANGE', k .. ':x', id, id)
try('XACK', k .. ':x', 'officers', id)
try('XDEL', k .. ':x', id)
try('DEL', k .. ':h', k .. ':l', k .. ':s', k .. ':z', k .. ':x')
return denied
"""
