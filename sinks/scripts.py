"""The Lua scripts of dispatch and of the work-order lifecycle, in one place.

Each runs atomically on the server; the writers and readers that call them live in
:mod:`citywatch.sinks.writer` and :mod:`citywatch.sinks.lifecycle`.
"""

# KEYS: wo, audit, alerts, seen
# ARGV: 1 now_ms, 2 alert_id, 3 alert_json, 4 severity, 5 severity_rank, 6 ts,
#       7 closes_at_ms, 8 level_rank, 9 centre, 10 department, 11 level, 12 queue,
#       13 sign_sla_s, 14 resolve_sla_s, 15 subjects, 16 kinds, 17 departments,
#       18 alert_count hint, 19 inhibited, 20 creation fields (JSON object; one
#       argument instead of ~70 keeps the client's packing cheap)
# Returns {outcome, queue, state, sign_due_ms, resolve_due_ms}
UPSERT_LUA = """
local now = tonumber(ARGV[1])
local fresh = redis.call('SADD', KEYS[4], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local flat = {}
  for k, v in pairs(cjson.decode(ARGV[20])) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  redis.call('HSET', KEYS[1], unpack(flat))
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('XADD', KEYS[2], '*', 'action', 'created', 'state', 'dispatched',
             'by', 'citywatch', 'at', ARGV[1], 'alert', ARGV[2], 'queue', ARGV[12])
  local h = redis.call('HMGET', KEYS[1], 'sign_due_ms', 'resolve_due_ms')
  return {'created', ARGV[12], 'dispatched', h[1], h[2]}
end
local h = redis.call('HMGET', KEYS[1], 'queued', 'queue', 'state', 'sign_due_ms',
                     'resolve_due_ms', 'severity_rank', 'level', 'created_ms', 'ts',
                     'incident_closes_at_ms')
if fresh == 0 then
  if h[1] == '1' then return {'repeat', h[2], h[3], h[4], h[5]} end
  return {'requeue', h[2], h[3], h[4], h[5]}
end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'alert_count', 1)
redis.call('HSET', KEYS[1], 'subjects', ARGV[15], 'kinds', ARGV[16], 'departments', ARGV[17],
           'updated_ms', ARGV[1])
if ARGV[6] > h[9] then redis.call('HSET', KEYS[1], 'ts', ARGV[6]) end
if tonumber(ARGV[7]) > tonumber(h[10]) then
  redis.call('HSET', KEYS[1], 'incident_closes_at_ms', ARGV[7])
end
local sign_due, resolve_due = tonumber(h[4]), tonumber(h[5])
local created = tonumber(h[8])
local audit = {'action', 'alert_merged', 'state', h[3], 'by', 'citywatch', 'at', ARGV[1],
               'alert', ARGV[2], 'severity', ARGV[4], 'inhibited', ARGV[19]}
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
local unsigned = (h[3] == 'dispatched' or h[3] == 'escalated')
if unsigned and tonumber(ARGV[8]) > ranks[h[7]] and ARGV[12] ~= h[2] then
  sign_due = now + 1000 * tonumber(ARGV[13])
  redis.call('HSET', KEYS[1], 'centre', ARGV[9], 'department', ARGV[10], 'level', ARGV[11],
             'queue', ARGV[12], 'queued', '0', 'sign_due_ms', sign_due)
  redis.call('XADD', KEYS[2], '*', 'action', 'rerouted', 'state', h[3], 'by', 'citywatch',
             'at', ARGV[1], 'from', h[2], 'queue', ARGV[12], 'reason', 'incident grew')
  return {'rerouted', ARGV[12], h[3], tostring(sign_due), tostring(resolve_due)}
end
return {'merged', h[2], h[3], tostring(sign_due), tostring(resolve_due)}
"""


# KEYS: wo, audit.  ARGV: 1 action, 2 by, 3 now_ms, 4 allowed states (comma list),
# 5 new state ('' keeps it), 6 extra condition, 7 audit details JSON, 8.. field pairs.
# Extra conditions: 'sign_due' (sign deadline passed), 'not_overdue', ''.
TRANSITION_LUA = """
local h = redis.call('HMGET', KEYS[1], 'state', 'sign_due_ms', 'overdue', 'resolve_due_ms')
local st = h[1]
if not st then return {'missing', ''} end
local ok = false
for s in string.gmatch(ARGV[4], '[^,]+') do if s == st then ok = true end end
if not ok then return {'refused', st} end
local now = tonumber(ARGV[3])
if ARGV[6] == 'sign_due' and tonumber(h[2]) > now then return {'not_due', st} end
if ARGV[6] == 'resolve_due' and (h[3] == '1' or tonumber(h[4]) > now) then
  return {'not_due', st}
end
local new = ARGV[5]
if new == '' then new = st end
local fields = {'state', new, 'updated_ms', ARGV[3]}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[1] == 'return' then redis.call('HINCRBY', KEYS[1], 'returns', 1) end
if ARGV[1] == 'escalate' then redis.call('HINCRBY', KEYS[1], 'escalations', 1) end
local audit = {'action', ARGV[1], 'state', new, 'from', st, 'by', ARGV[2], 'at', ARGV[3]}
if ARGV[7] ~= '' then audit[#audit + 1] = 'details'; audit[#audit + 1] = ARGV[7] end
redis.call('XADD', KEYS[2], '*', unpack(audit))
return {'ok', st}
"""
