"""The Redis flash-claim gate: it decides every claim of a Redis-gated template, and hands the grants on.

Per template one hash holds the template's claim rules (`state` active/paused/ended, `starts_ms`,
`ends_ms`, `limit`, `day_limit`), `remaining` stock and the claim counts per user (`u:<user>`) and per
user and day (`d:<day>:<user>`), plus a token `v` that changes whenever the gate is rebuilt.

A claim is one Lua call, atomic: it replays the answer kept under the request's Idempotency-Key (per
user), or checks the rules, takes stock, takes a coupon id from the id pool (ids reserved from the
database's own sequence, see `id_pool`), remembers the answer under the key and XADDs the grant to the
claim stream. Nothing touches the database on the way. The drain (`drain`) lands the stream in the
database in batches; until it has, an entry is "in flight" and counts against stock and limits.

The database stays the truth: `rebuild` recomputes the gate from its rows plus the entries still in the
stream (after crashes and on a schedule, see `loading.reconcile`).
"""

import logging
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from redis.exceptions import ResponseError

from app.accounts import service as accounts
from app.accounts.service import SessionFence
from app.core.redis import get_redis, get_request_redis, key, run_script

STREAM = key("coupon-claims")
REFUSED_STREAM = key("coupon-claims", "refused")
ID_POOL = key("coupon-ids")
GROUP = "drain"
DURABILITY_RECHECK_SECONDS = 60
# Longer than an end takes from closing the gate to its commit (a drain waited out, at most half a minute).
ENDING_SECONDS = 120

log = logging.getLogger(__name__)
# Per process: where a Redis server was asked whether it is durable -> (when, answer).
_durability: dict[tuple, tuple[float, bool]] = {}
# Per process and coupon zone: the current day's bounds, its date and its key (every claim of a drop asks).
_claim_days: dict[str, tuple[datetime, datetime, date, str]] = {}

# KEYS: gate, idempotency record, stream, id pool, the user's count of entries not yet landed, and for a
# session the web process has not checked in Redis its cache entry and the user's generation (SessionFence).
# ARGV: user, template, request hash, now-ms, day, grant, share code, sharer, group, post, key digest, ttl,
# and with a fence the generation the session was cached under ('' for a session the process has not seen).
# Returns {outcome, answer, gate token}; the answer (granted or replayed) is "coupon|ms|share code|group|post".
# For an unseen session a fourth element carries its cache entry, verified here, for the process to keep.
_CLAIM = """
local seen = nil
if #KEYS > 5 then
  if ARGV[13] == '' then
    local entry = redis.call('get', KEYS[6])
    local ok, s = pcall(cjson.decode, entry or '')
    if not ok or type(s) ~= 'table' or type(s.session) ~= 'table' or s.session.user_id ~= tonumber(ARGV[1])
       or s.generation ~= tonumber(redis.call('get', KEYS[7]) or '0')
       or type(s.session.expires_ms) ~= 'number' or s.session.expires_ms <= tonumber(ARGV[4]) then
      return {'session_unverified', '', ''}
    end
    seen = entry
  elseif redis.call('exists', KEYS[6]) == 0 or (redis.call('get', KEYS[7]) or '0') ~= ARGV[13] then
    return {'session_unverified', '', ''}
  end
end
local function decide()
  local record = redis.call('get', KEYS[2])
  if record then
    local sep = string.find(record, '|', 1, true)
    if string.sub(record, 1, sep - 1) ~= ARGV[3] then return {'reused', '', ''} end
    local answer = string.sub(record, sep + 1)
    -- No answer: the database decided that claim (a template without a gate), and replays it itself.
    if answer ~= '' then return {'replay', answer, redis.call('hget', KEYS[1], 'v') or ''} end
  end
  local g = redis.call('hmget', KEYS[1], 'state', 'starts_ms', 'ends_ms', 'remaining', 'limit', 'day_limit',
                       'u:' .. ARGV[1], 'v')
  if not g[1] then return {'missing', '', ''} end
  if g[1] ~= 'active' then return {g[1], '', ''} end
  local now = tonumber(ARGV[4])
  if now < tonumber(g[2]) then return {'not_started', '', ''} end
  if now >= tonumber(g[3]) then return {'ended', '', ''} end
  if tonumber(g[7] or '0') >= tonumber(g[5]) then return {'limit_reached', '', ''} end
  if tonumber(g[4]) <= 0 then return {'out_of_stock', '', ''} end
  local dfield, day_seq = nil, ''
  if tonumber(g[6]) > 0 then
    dfield = 'd:' .. ARGV[5] .. ':' .. ARGV[1]
    local today = tonumber(redis.call('hget', KEYS[1], dfield) or '0')
    if today >= tonumber(g[6]) then return {'daily_limit_reached', '', ''} end
    day_seq = today + 1
  end
  local coupon = redis.call('lpop', KEYS[4])
  if not coupon then return {'no_ids', '', ''} end
  redis.call('hincrby', KEYS[1], 'remaining', -1)
  local seq = redis.call('hincrby', KEYS[1], 'u:' .. ARGV[1], 1)
  if dfield then redis.call('hincrby', KEYS[1], dfield, 1) end
  redis.call('xadd', KEYS[3], '*', 't', ARGV[2], 'u', ARGV[1], 'c', coupon, 'g', ARGV[6], 'ms', ARGV[4],
             'seq', seq, 'day', dfield and ARGV[5] or '', 'dseq', day_seq, 'sc', ARGV[7], 'sh', ARGV[8],
             'gr', ARGV[9], 'p', ARGV[10], 'k', ARGV[11])
  redis.call('incr', KEYS[5])
  local answer = coupon .. '|' .. ARGV[4] .. '|' .. ARGV[7] .. '|' .. ARGV[9] .. '|' .. ARGV[10]
  redis.call('set', KEYS[2], ARGV[3] .. '|' .. answer, 'EX', ARGV[12])
  return {'granted', answer, g[8] or ''}
end
local result = decide()
if seen then result[4] = seen end
return result
"""

# Push a block of ids unless this block was pushed before: two grants must never share an id.
# KEYS: pool, the block's marker. ARGV: the ids.
_ADD_IDS = """
if redis.call('set', KEYS[2], '1', 'NX', 'EX', 604800) then redis.call('rpush', KEYS[1], unpack(ARGV)) end
"""

# Replace the gate with the database's counts plus the stream's entries for this template that the
# database does not hold yet. KEYS: gate, stream, the template's ending mark. ARGV: template,
# remaining-from-db, state, starts-ms, ends-ms, limit, day limit, token, n landed grants, landed grant
# ids..., then field/value pairs (u:<user> and d:<today>:<user> counts from the database). An entry
# counts on its own day: one granted after midnight while the rebuild read yesterday's rows still counts
# against its user's new day.
_REBUILD = """
local tid, remaining = ARGV[1], tonumber(ARGV[2])
local n = tonumber(ARGV[9])
local landed = {}
for i = 10, 9 + n do landed[ARGV[i]] = true end
local fields = {}
for i = 10 + n, #ARGV, 2 do fields[ARGV[i]] = tonumber(ARGV[i + 1]) end
local in_flight = 0
for _, entry in ipairs(redis.call('xrange', KEYS[2], '-', '+')) do
  local f, e = entry[2], {}
  for i = 1, #f, 2 do e[f[i]] = f[i + 1] end
  if e.t == tid and not landed[e.g] then
    in_flight = in_flight + 1
    remaining = remaining - 1
    fields['u:' .. e.u] = (fields['u:' .. e.u] or 0) + 1
    if e.day and e.day ~= '' then
      local d = 'd:' .. e.day .. ':' .. e.u
      fields[d] = (fields[d] or 0) + 1
    end
  end
end
local over = 0
if remaining < 0 then over, remaining = -remaining, 0 end
-- While an end is under way (it closes the gate before its status commits), a rebuild that read the
-- template live must not open it again: grants after the end's drain would land past its budget release.
local state = ARGV[3]
if redis.call('exists', KEYS[3]) == 1 then state = 'ended' end
redis.call('del', KEYS[1])
redis.call('hset', KEYS[1], 'remaining', remaining, 'state', state, 'starts_ms', ARGV[4], 'ends_ms', ARGV[5],
           'limit', ARGV[6], 'day_limit', ARGV[7], 'v', ARGV[8])
local batch = {}
for f, v in pairs(fields) do
  if v > 0 then
    table.insert(batch, f)
    table.insert(batch, v)
    if #batch >= 1000 then redis.call('hset', KEYS[1], unpack(batch)); batch = {} end
  end
end
if #batch > 0 then redis.call('hset', KEYS[1], unpack(batch)) end
return {remaining, in_flight, over}
"""

# Settle drained entries: ack and delete each (once: only while it is pending), copy the ones the
# database refused to the refused stream, and count them off their user's not-yet-landed count.
# KEYS: stream, refused stream, then one not-landed counter per entry. ARGV: group, then per entry
# its id and '' (landed) or the refusal reason.
_SETTLE = """
local settled = 0
for j = 1, #KEYS - 2 do
  local id, reason = ARGV[2 * j], ARGV[2 * j + 1]
  if redis.call('xack', KEYS[1], ARGV[1], id) == 1 then
    if reason ~= '' then
      local entry = redis.call('xrange', KEYS[1], id, id)[1]
      if entry then
        local f = entry[2]
        table.insert(f, 'entry'); table.insert(f, id); table.insert(f, 'reason'); table.insert(f, reason)
        redis.call('xadd', KEYS[2], '*', unpack(f))
      end
    end
    redis.call('xdel', KEYS[1], id)
    if redis.call('decr', KEYS[2 + j]) <= 0 then redis.call('del', KEYS[2 + j]) end
    settled = settled + 1
  end
end
return settled
"""

# Only an existing gate is touched: a hash holding nothing but 'state' would read as a broken gate. Ending
# also marks the end as under way (KEYS[2]) for ARGV[2] seconds, whether or not a gate is loaded.
_CLOSE = """
if redis.call('exists', KEYS[1]) == 1 then redis.call('hset', KEYS[1], 'state', ARGV[1]) end
if ARGV[1] == 'ended' then redis.call('set', KEYS[2], '1', 'EX', ARGV[2]) end
return 0
"""


def claim_day(at: datetime) -> tuple[date, str]:
    """The calendar day (in the coupon zone, China by default) that per-day limits count in, and its key."""
    zone = current_app.config["COUPON_DAY_TIMEZONE"]
    known = _claim_days.get(zone)
    if known is not None and known[0] <= at < known[1]:
        return known[2], known[3]
    local = at.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic is wall-clock, so DST days fit.
    day = (
        midnight.astimezone(UTC),
        (midnight + timedelta(days=1)).astimezone(UTC),
        local.date(),
        local.strftime("%Y%m%d"),
    )
    _claim_days[zone] = day
    return day[2], day[3]


def _gate(template_id: int) -> str:
    return key("coupon-gate", template_id)


def _ending(template_id: int) -> str:
    return key("coupon-gate-ending", template_id)


def _record(user_id: int, key_digest: str) -> str:
    return key("coupon-claim-key", user_id, key_digest)


def remember_database_claim(*, user_id: int, key_digest: str, request_hash: str, ttl_seconds: int) -> None:
    """Record a claim the database decided under its key, so the gate refuses the key for another request."""
    get_redis().set(_record(user_id, key_digest), f"{request_hash}|", nx=True, ex=ttl_seconds)


def _not_landed(user_id: int | str) -> str:
    return key("coupon-claims", "not-landed", user_id)


def _script(name: str, source: str, *, client=None):
    redis = client or get_redis()
    cache = redis.__dict__.setdefault("_mmq_scripts", {})
    if name not in cache:
        cache[name] = redis.register_script(source)
    return cache[name]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def durable(*, client=None) -> bool:
    """Whether Redis fsyncs every write before it answers (AOF with appendfsync always); asked once a minute.

    A grant lives only in Redis until the drain lands it, so only then does a crash of Redis itself keep
    every coupon a user was told about. A server that hides CONFIG counts as not durable.
    """
    client = client or get_request_redis()
    where = tuple(
        sorted(
            (k, str(v))
            for k, v in client.connection_pool.connection_kwargs.items()
            if k in ("host", "port", "path", "unix_socket_path")
        )
    )
    known = _durability.get(where)
    if known is not None and time.monotonic() - known[0] < DURABILITY_RECHECK_SECONDS:
        return known[1]
    try:
        settings = {**client.config_get("appendonly"), **client.config_get("appendfsync")}
        durable_now = settings.get("appendonly") == "yes" and settings.get("appendfsync") == "always"
    except ResponseError:
        durable_now = False
    if not durable_now:
        log.error(
            "the coupon claim gate's Redis does not fsync every write (appendonly yes, appendfsync always): "
            "flash claims are refused until it does (COUPON_GATE_DURABILITY=off accepts the risk)"
        )
    _durability[where] = (time.monotonic(), durable_now)
    return durable_now


def claim(
    *,
    template_id: int,
    user_id: int,
    request_hash: str,
    now_ms: int,
    day: str,
    grant_id: str,
    share_code: str,
    sharer_id: int | None,
    group_id: int | None,
    post_id: int | None,
    key_digest: str,
    ttl_seconds: int,
    session_fence: SessionFence | None = None,
) -> tuple[str, str, str]:
    """Decide one claim; returns (outcome, answer, gate token).

    Outcomes: 'granted' and 'replay' (answer "coupon|ms|share code|group|post"), 'reused' (the key was
    used with another request), a refusal ('out_of_stock', 'limit_reached', 'daily_limit_reached',
    'not_started', 'ended', 'paused'), 'missing' (no gate loaded), 'no_ids' (the id pool is empty) or
    'session_unverified' (the `session_fence` failed; nothing was looked at).
    """

    def blank(v):
        return "" if v is None else v

    keys = [_gate(template_id), _record(user_id, key_digest), STREAM, ID_POOL, _not_landed(user_id)]
    args = [
        user_id,
        template_id,
        request_hash,
        now_ms,
        day,
        grant_id,
        blank(share_code),
        blank(sharer_id),
        blank(group_id),
        blank(post_id),
        key_digest,
        ttl_seconds,
    ]
    if session_fence is not None:
        keys += [session_fence.entry_key, session_fence.generation_key]
        args.append(blank(session_fence.generation))
    result = run_script(_script("claim", _CLAIM, client=get_request_redis()), keys=keys, args=args)
    if len(result) > 3:
        accounts.remember_verified_session(fence=session_fence, raw=result[3])
    outcome, answer, token = (_text(v) for v in result[:3])
    return outcome, answer, token


def rebuild(
    *,
    template_id: int,
    remaining: int,
    state: str,
    starts_ms: int,
    ends_ms: int,
    per_user_limit: int,
    per_day_limit: int,
    today: str,
    token: str,
    landed_grants: list[str],
    user_counts: dict[int, int],
    day_counts: dict[int, int],
) -> tuple[int, int, int]:
    """Rewrite the gate; returns (remaining, entries in flight, grants beyond the stock)."""
    fields: list = []
    for user_id, count in user_counts.items():
        fields += [f"u:{user_id}", count]
    for user_id, count in day_counts.items():
        fields += [f"d:{today}:{user_id}", count]
    result = _script("rebuild", _REBUILD)(
        keys=[_gate(template_id), STREAM, _ending(template_id)],
        args=[
            template_id,
            remaining,
            state,
            starts_ms,
            ends_ms,
            per_user_limit,
            per_day_limit,
            token,
            len(landed_grants),
            *landed_grants,
            *fields,
        ],
    )
    return int(result[0]), int(result[1]), int(result[2])


def close(*, template_id: int, state: str) -> None:
    """Stop granting ('paused' or 'ended'); claims are refused with that state from now on.

    'ended' also holds off rebuilds from opening the gate again until the end has committed (see `_REBUILD`).
    """
    _script("close", _CLOSE)(keys=[_gate(template_id), _ending(template_id)], args=[state, ENDING_SECONDS])


def end_abandoned(*, template_id: int) -> None:
    """An end that did not happen (its status update lost a race): rebuilds follow the database again."""
    get_redis().delete(_ending(template_id))


def snapshot(*, template_id: int) -> dict[str, int] | None:
    """The gate's counters (None when the gate is not loaded)."""
    raw = get_redis().hgetall(_gate(template_id))
    if not raw:
        return None
    return {k.decode(): int(v) for k, v in raw.items() if k.startswith((b"u:", b"d:", b"remaining"))}


def remaining(*, template_ids: list[int]) -> dict[int, int]:
    """Stock left per template whose gate is loaded (the others are left out)."""
    pipe = get_redis().pipeline(transaction=False)
    for template_id in template_ids:
        pipe.hget(_gate(template_id), "remaining")
    return {tid: int(v) for tid, v in zip(template_ids, pipe.execute()) if v is not None}


def state(*, template_id: int) -> str | None:
    """'active', 'paused' or 'ended' as the gate has it (None when not loaded)."""
    value = get_redis().hget(_gate(template_id), "state")
    return None if value is None else value.decode()


def drop(*, template_id: int) -> None:
    """Forget a template's gate (ended templates; entries in the stream still land)."""
    get_redis().delete(_gate(template_id))


def _entries(stream: str) -> list[tuple[str, dict[str, str]]]:
    return _entries_between(stream, "-", "+")


def _entries_between(stream: str, first: str, last: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (_text(entry_id), {_text(k): _text(v) for k, v in fields.items()})
        for entry_id, fields in get_redis().xrange(stream, first, last)
    ]


def in_flight(*, template_id: int) -> list[str]:
    """Grant ids of this template still in the stream (granted, not landed yet)."""
    return [f["g"] for _, f in _entries(STREAM) if f.get("t") == str(template_id)]


def refused(*, template_id: int | None = None) -> list[dict[str, str]]:
    """Granted claims the database refused (kept for an operator; they must not happen)."""
    return [f for _, f in _entries(REFUSED_STREAM) if template_id is None or f.get("t") == str(template_id)]


def refused_entries() -> list[tuple[str, dict[str, str]]]:
    """The refused stream's entries with their ids, newest first."""
    return _entries(REFUSED_STREAM)[::-1]


def refused_entry(*, entry_id: str) -> dict[str, str] | None:
    """One entry of the refused stream (None when it is not there)."""
    found = _entries_between(REFUSED_STREAM, entry_id, entry_id)
    return found[0][1] if found else None


def forget_refused(*, entry_id: str) -> None:
    """Delete a settled entry from the refused stream."""
    get_redis().xdel(REFUSED_STREAM, entry_id)


def not_landed(*, user_id: int) -> int:
    """How many of the user's granted claims are still in the stream."""
    return int(get_redis().get(_not_landed(user_id)) or 0)


def stream_length() -> int:
    """Entries in the claim stream (granted and not landed, or being landed)."""
    return int(get_redis().xlen(STREAM))


def ensure_group() -> None:
    """Create the drain's consumer group (from the stream's start, so no entry is skipped)."""
    redis = get_redis()
    try:
        redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):  # the group exists already: fine
            raise


def next_entries(*, consumer: str, count: int, reclaim: bool = True) -> list[tuple[str, dict[str, str]]]:
    """Entries to land: first (with `reclaim`) those delivered to a consumer that never acked them, then new ones."""
    redis = get_redis()
    reclaimed = (
        redis.xautoclaim(STREAM, GROUP, consumer, min_idle_time=0, start_id="0-0", count=count)[1] if reclaim else []
    )
    batch = [(entry_id, fields) for entry_id, fields in reclaimed if fields]
    if not batch:
        answer = redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
        batch = answer[0][1] if answer else []
    return [(_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}) for entry_id, fields in batch]


def settle(entries: list[tuple[str, dict[str, str]]], outcomes: dict[str, str]) -> int:
    """Ack and delete landed (or refused) entries; returns how many this call settled."""
    if not entries:
        return 0
    args: list = [GROUP]
    for entry_id, _ in entries:
        args += [entry_id, outcomes.get(entry_id, "")]
    keys = [STREAM, REFUSED_STREAM] + [_not_landed(fields["u"]) for _, fields in entries]
    return int(_script("settle", _SETTLE)(keys=keys, args=args))


def ids_left() -> int:
    """Coupon ids waiting in the pool."""
    return int(get_redis().llen(ID_POOL))


def add_ids(ids: list[int]) -> None:
    """Put a block of reserved coupon ids into the pool, once (a retried call adds nothing)."""
    if ids:
        _script("add_ids", _ADD_IDS)(keys=[ID_POOL, key("coupon-ids", "block", ids[0])], args=ids)
