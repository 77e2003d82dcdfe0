"""The Redis flash-claim gate: an admission filter in front of the database, which stays the truth.

Per template one hash holds `remaining` and the claim counts per user (`u:<user>`) and per user and day
(`d:<day>:<user>`); a second hash holds the grants in flight (`grant id -> user|day|ms`). A claim asks the
gate first (one Lua call, atomic); only granted claims reach the database, which repeats every check
with a unique row and a conditional stock update. After the commit the grant leaves the in-flight hash.

The gate may admit too many (the database refuses, and the refusal corrects the gate) but must not keep
refusing what the database would grant: `rebuild` recomputes the gate from the database plus the grants
still in flight, and runs after crashes and on a schedule (see `claims.reconcile`).

The fast refusal answers a sold-out drop or a user at their limit from Redis alone, before the request
touches the database (even its Idempotency-Key record). It stays exact about retries: the gate keeps, per
user, short hashes of the Idempotency-Keys that were granted (`k:<user>`), and a request carrying one of
those always goes the full way, so a retry of a successful claim still replays its first answer. It only
runs while the gate says the template is open (`open`, `starts_ms`, `ends_ms`), so paused or finished
templates get their own answers from the full path.
"""
import hashlib
import time
import uuid
from dataclasses import dataclass

from app.core.redis import get_redis, key

_CLAIM = """
if redis.call('exists', KEYS[1]) == 0 then return 'missing' end
local remaining = tonumber(redis.call('hget', KEYS[1], 'remaining') or '0')
if remaining <= 0 then return 'out_of_stock' end
local ufield = 'u:' .. ARGV[1]
if tonumber(redis.call('hget', KEYS[1], ufield) or '0') >= tonumber(ARGV[2]) then return 'limit_reached' end
local dfield = nil
if ARGV[3] ~= '' then
  dfield = 'd:' .. ARGV[3] .. ':' .. ARGV[1]
  if tonumber(redis.call('hget', KEYS[1], dfield) or '0') >= tonumber(ARGV[4]) then return 'daily_limit_reached' end
  redis.call('hincrby', KEYS[1], dfield, 1)
end
redis.call('hincrby', KEYS[1], 'remaining', -1)
redis.call('hincrby', KEYS[1], ufield, 1)
if ARGV[7] ~= '' then
  local kfield = 'k:' .. ARGV[1]
  local keys = redis.call('hget', KEYS[1], kfield)
  redis.call('hset', KEYS[1], kfield, keys and (keys .. ',' .. ARGV[7]) or ARGV[7])
end
redis.call('hset', KEYS[2], ARGV[5], ARGV[1] .. '|' .. ARGV[3] .. '|' .. ARGV[6] .. '|' .. ARGV[7])
return 'granted'
"""

# ARGV: user, key hash, now-ms. '' means "go the full way".
_FAST = """
local s = redis.call('hmget', KEYS[1], 'remaining', 'u:' .. ARGV[1], 'k:' .. ARGV[1], 'open', 'starts_ms', 'ends_ms', 'limit')
if not s[1] or s[4] ~= '1' then return '' end
local now = tonumber(ARGV[3])
if not s[7] or now < tonumber(s[5] or '0') or now >= tonumber(s[6] or '0') then return '' end
local used = tonumber(s[2] or '0')
if ARGV[2] ~= '' and s[3] and string.find(',' .. s[3] .. ',', ',' .. ARGV[2] .. ',', 1, true) then return '' end
if used >= tonumber(s[7]) then return 'limit_reached' end
if tonumber(s[1]) <= 0 then return 'out_of_stock' end
return ''
"""

# Undo a grant the database refused (once: only while it is still in flight). ARGV[4] says what the
# database knows: 'sold_out' pins remaining to 0, 'limit' pins the user's count to ARGV[5].
_RELEASE = """
if redis.call('hdel', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('exists', KEYS[1]) == 0 then return 1 end
if ARGV[6] ~= '' then
  local kfield = 'k:' .. ARGV[2]
  local keys = redis.call('hget', KEYS[1], kfield)
  if keys then
    local kept = {}
    for k in string.gmatch(keys, '[^,]+') do if k ~= ARGV[6] then table.insert(kept, k) end end
    if #kept > 0 then redis.call('hset', KEYS[1], kfield, table.concat(kept, ',')) else redis.call('hdel', KEYS[1], kfield) end
  end
end
redis.call('hincrby', KEYS[1], 'remaining', 1)
redis.call('hincrby', KEYS[1], 'u:' .. ARGV[2], -1)
if ARGV[3] ~= '' then redis.call('hincrby', KEYS[1], 'd:' .. ARGV[3] .. ':' .. ARGV[2], -1) end
if ARGV[4] == 'sold_out' then redis.call('hset', KEYS[1], 'remaining', 0) end
if ARGV[4] == 'limit' then redis.call('hset', KEYS[1], 'u:' .. ARGV[2], ARGV[5]) end
return 1
"""

# Replace the gate with the database's counts plus the grants still in flight.
# ARGV: remaining-from-db, now-ms, grace-ms, open, starts-ms, ends-ms, n-committed, committed ids...,
# then field/value pairs (u:<user> counts, d:<day>:<user> counts, k:<user> granted key hashes).
# Grants that committed are dropped from the in-flight hash (the database counts them); grants older
# than the grace period never committed and never will (their request died), so they are dropped too;
# the rest are in flight and keep their stock, their user's count and their key.
_REBUILD = """
local remaining = tonumber(ARGV[1])
local now, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[7])
local committed = {}
for i = 8, 7 + n do committed[ARGV[i]] = true end
local fields = {}
for i = 8 + n, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
local pending = redis.call('hgetall', KEYS[2])
local dropped, inflight = 0, 0
for i = 1, #pending, 2 do
  local grant, value = pending[i], pending[i + 1]
  local user, day, at, keyhash = string.match(value, '^([^|]*)|([^|]*)|(%d+)|([^|]*)$')
  if committed[grant] or now - tonumber(at) > grace then
    redis.call('hdel', KEYS[2], grant)
    dropped = dropped + 1
  else
    inflight = inflight + 1
    remaining = remaining - 1
    fields['u:' .. user] = tostring(tonumber(fields['u:' .. user] or '0') + 1)
    if day ~= '' then
      fields['d:' .. day .. ':' .. user] = tostring(tonumber(fields['d:' .. day .. ':' .. user] or '0') + 1)
    end
    if keyhash ~= '' then
      fields['k:' .. user] = fields['k:' .. user] and (fields['k:' .. user] .. ',' .. keyhash) or keyhash
    end
  end
end
redis.call('del', KEYS[1])
if remaining < 0 then remaining = 0 end
redis.call('hset', KEYS[1], 'remaining', remaining, 'open', ARGV[4], 'starts_ms', ARGV[5], 'ends_ms', ARGV[6])
for f, v in pairs(fields) do if v ~= '' and v ~= '0' then redis.call('hset', KEYS[1], f, v) end end
return {remaining, inflight, dropped}
"""


@dataclass(frozen=True)
class Grant:
    id: str
    template_id: int
    user_id: int
    day: str
    key_hash: str


def key_hash(request_key: str | None) -> str:
    """A short, comma-free digest of an Idempotency-Key, as the gate stores it."""
    return hashlib.sha256(request_key.encode()).hexdigest()[:16] if request_key else ""


def _keys(template_id: int) -> list[str]:
    return [key("coupon-gate", template_id), key("coupon-gate", template_id, "inflight")]


def _script(name: str, source: str):
    redis = get_redis()
    cache = redis.__dict__.setdefault("_mmq_scripts", {})
    if name not in cache:
        cache[name] = redis.register_script(source)
    return cache[name]


def _ms() -> int:
    # Wall-clock milliseconds, not the app clock: in-flight ages must hold across processes and frozen tests.
    return int(time.time() * 1000)


def fast_refusal(*, template_id: int, user_id: int, request_key: str | None, now_ms: int) -> str:
    """'out_of_stock' or 'limit_reached' when Redis alone can tell; '' to go the full way."""
    outcome = _script("fast", _FAST)(keys=_keys(template_id)[:1], args=[user_id, key_hash(request_key), now_ms])
    return outcome.decode() if isinstance(outcome, bytes) else outcome


def try_claim(*, template_id: int, user_id: int, per_user_limit: int, day: str, per_day_limit: int,
              request_key: str | None = None) -> tuple[str, Grant | None]:
    """Ask the gate; returns ('granted', grant) or a refusal ('out_of_stock', 'limit_reached', ...) or 'missing'."""
    grant = Grant(id=uuid.uuid4().hex, template_id=template_id, user_id=user_id, day=day,
                  key_hash=key_hash(request_key))
    outcome = _script("claim", _CLAIM)(keys=_keys(template_id),
                                       args=[user_id, per_user_limit, day, per_day_limit, grant.id, _ms(), grant.key_hash])
    outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
    return outcome, grant if outcome == "granted" else None


def settle(grant: Grant) -> None:
    """The database committed the claim: the grant is no longer in flight."""
    get_redis().hdel(_keys(grant.template_id)[1], grant.id)


def release(grant: Grant, *, reason: str = "", user_count: int = 0) -> None:
    """The database refused or failed: give the grant back (`reason` 'sold_out' or 'limit' pins the truth)."""
    _script("release", _RELEASE)(keys=_keys(grant.template_id),
                                 args=[grant.id, grant.user_id, grant.day, reason, user_count, grant.key_hash])


def rebuild(*, template_id: int, remaining: int, user_counts: dict[int, int], day: str, day_counts: dict[int, int],
            user_keys: dict[int, list[str]], committed_grants: list[str], grace_seconds: float, is_open: bool,
            starts_ms: int, ends_ms: int, per_user_limit: int) -> tuple[int, int, int]:
    """Rewrite the gate from database counts; returns (remaining, grants in flight kept, grants dropped)."""
    fields: list = ["limit", per_user_limit]
    for user_id, count in user_counts.items():
        fields += [f"u:{user_id}", count]
    for user_id, count in day_counts.items():
        fields += [f"d:{day}:{user_id}", count]
    for user_id, hashes in user_keys.items():
        fields += [f"k:{user_id}", ",".join(h for h in hashes if h)]
    result = _script("rebuild", _REBUILD)(keys=_keys(template_id),
                                          args=[remaining, _ms(), int(grace_seconds * 1000), int(is_open), starts_ms,
                                                ends_ms, len(committed_grants), *committed_grants, *fields])
    return int(result[0]), int(result[1]), int(result[2])


def close(*, template_id: int) -> None:
    """Stop fast refusals for a template that is no longer open (paused): the full path answers."""
    get_redis().hset(_keys(template_id)[0], "open", 0)


def in_flight(*, template_id: int) -> list[str]:
    """Grant ids the gate handed out whose claims have not been settled or released."""
    return [g.decode() for g in get_redis().hkeys(_keys(template_id)[1])]


def snapshot(*, template_id: int) -> dict[str, int] | None:
    """The gate's counters (None when the gate is not loaded)."""
    raw = get_redis().hgetall(_keys(template_id)[0])
    if not raw:
        return None
    return {k.decode(): int(v) for k, v in raw.items() if k.startswith((b"u:", b"d:", b"remaining"))}


def drop(*, template_id: int) -> None:
    """Forget a template's gate (ended templates)."""
    get_redis().delete(*_keys(template_id))
