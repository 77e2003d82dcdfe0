"""The Redis flash-claim gate: an admission filter in front of the database, which stays the truth.

Per template one hash holds `remaining` and the claim counts per user (`u:<user>`) and per user and day
(`d:<day>:<user>`); a second hash holds the grants in flight (`grant id -> user|day|ms`). A claim asks the
gate first (one Lua call, atomic); only granted claims reach the database, which repeats every check
with a unique row and a conditional stock update. After the commit the grant leaves the in-flight hash.

The gate may admit too many (the database refuses, and the refusal corrects the gate) but must not keep
refusing what the database would grant: `rebuild` recomputes the gate from the database plus the grants
still in flight, and runs after crashes and on a schedule (see `claims.reconcile`).
"""
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
redis.call('hset', KEYS[2], ARGV[5], ARGV[1] .. '|' .. ARGV[3] .. '|' .. ARGV[6])
return 'granted'
"""

# Undo a grant the database refused (once: only while it is still in flight). ARGV[4] says what the
# database knows: 'sold_out' pins remaining to 0, 'limit' pins the user's count to ARGV[5].
_RELEASE = """
if redis.call('hdel', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('exists', KEYS[1]) == 0 then return 1 end
redis.call('hincrby', KEYS[1], 'remaining', 1)
redis.call('hincrby', KEYS[1], 'u:' .. ARGV[2], -1)
if ARGV[3] ~= '' then redis.call('hincrby', KEYS[1], 'd:' .. ARGV[3] .. ':' .. ARGV[2], -1) end
if ARGV[4] == 'sold_out' then redis.call('hset', KEYS[1], 'remaining', 0) end
if ARGV[4] == 'limit' then redis.call('hset', KEYS[1], 'u:' .. ARGV[2], ARGV[5]) end
return 1
"""

# Replace the gate with the database's counts plus the grants still in flight.
# ARGV: remaining-from-db, now-ms, grace-ms, n-committed, committed ids..., then field/value pairs.
# Grants that committed are dropped from the in-flight hash (the database counts them); grants older
# than the grace period never committed and never will (their request died), so they are dropped too;
# the rest are in flight and keep their stock and their user's count.
_REBUILD = """
local remaining = tonumber(ARGV[1])
local now, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local committed = {}
for i = 5, 4 + n do committed[ARGV[i]] = true end
local fields = {}
for i = 5 + n, #ARGV, 2 do fields[ARGV[i]] = tonumber(ARGV[i + 1]) end
local pending = redis.call('hgetall', KEYS[2])
local dropped, inflight = 0, 0
for i = 1, #pending, 2 do
  local grant, value = pending[i], pending[i + 1]
  local user, day, at = string.match(value, '^([^|]*)|([^|]*)|(%d+)$')
  if committed[grant] or now - tonumber(at) > grace then
    redis.call('hdel', KEYS[2], grant)
    dropped = dropped + 1
  else
    inflight = inflight + 1
    remaining = remaining - 1
    fields['u:' .. user] = (fields['u:' .. user] or 0) + 1
    if day ~= '' then fields['d:' .. day .. ':' .. user] = (fields['d:' .. day .. ':' .. user] or 0) + 1 end
  end
end
redis.call('del', KEYS[1])
if remaining < 0 then remaining = 0 end
redis.call('hset', KEYS[1], 'remaining', remaining)
for f, v in pairs(fields) do if v > 0 then redis.call('hset', KEYS[1], f, v) end end
return {remaining, inflight, dropped}
"""


@dataclass(frozen=True)
class Grant:
    id: str
    template_id: int
    user_id: int
    day: str


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


def try_claim(*, template_id: int, user_id: int, per_user_limit: int, day: str, per_day_limit: int) -> tuple[str, Grant | None]:
    """Ask the gate; returns ('granted', grant) or a refusal ('out_of_stock', 'limit_reached', ...) or 'missing'."""
    grant = Grant(id=uuid.uuid4().hex, template_id=template_id, user_id=user_id, day=day)
    outcome = _script("claim", _CLAIM)(keys=_keys(template_id),
                                       args=[user_id, per_user_limit, day, per_day_limit, grant.id, _ms()])
    outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
    return outcome, grant if outcome == "granted" else None


def settle(grant: Grant) -> None:
    """The database committed the claim: the grant is no longer in flight."""
    get_redis().hdel(_keys(grant.template_id)[1], grant.id)


def release(grant: Grant, *, reason: str = "", user_count: int = 0) -> None:
    """The database refused or failed: give the grant back (`reason` 'sold_out' or 'limit' pins the truth)."""
    _script("release", _RELEASE)(keys=_keys(grant.template_id), args=[grant.id, grant.user_id, grant.day, reason, user_count])


def rebuild(*, template_id: int, remaining: int, user_counts: dict[int, int], day: str,
            day_counts: dict[int, int], committed_grants: list[str], grace_seconds: float) -> tuple[int, int, int]:
    """Rewrite the gate from database counts; returns (remaining, grants in flight kept, grants dropped)."""
    fields: list = []
    for user_id, count in user_counts.items():
        fields += [f"u:{user_id}", count]
    for user_id, count in day_counts.items():
        fields += [f"d:{day}:{user_id}", count]
    result = _script("rebuild", _REBUILD)(keys=_keys(template_id),
                                          args=[remaining, _ms(), int(grace_seconds * 1000), len(committed_grants),
                                                *committed_grants, *fields])
    return int(result[0]), int(result[1]), int(result[2])


def in_flight(*, template_id: int) -> list[str]:
    """Grant ids the gate handed out whose claims have not been settled or released."""
    return [g.decode() for g in get_redis().hkeys(_keys(template_id)[1])]


def snapshot(*, template_id: int) -> dict[str, int] | None:
    """The gate's counters (None when the gate is not loaded)."""
    raw = get_redis().hgetall(_keys(template_id)[0])
    if not raw:
        return None
    return {k.decode(): int(v) for k, v in raw.items()}


def drop(*, template_id: int) -> None:
    """Forget a template's gate (ended templates)."""
    get_redis().delete(*_keys(template_id))
