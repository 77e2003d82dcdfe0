"""Click counting through Redis; a job persists the stream in batches.

The link cache holds "<link id> <landing url>" per code, so a click needs no database. Each process also
keeps the links it has seen for a minute, so a redirect to a known link needs no Redis round trip either:
its click goes to the process's write-behind buffer (`clickbuffer`), which counts it in Redis a moment
later. The first click on a link in a process, and clicks made in the app (whose answer says whether
the click counted), run the Lua call below synchronously. A click is added
to a Redis stream (link id, time, buyer or visitor, via) only if the same buyer did not click the same
code in the last minute (a SET NX EX key in the same script). The persist job reads the stream through
a consumer group, copies a batch into a temporary table (COPY on PostgreSQL) and inserts the clicks
with one INSERT … SELECT joined to `share_links` (the stream entry id is unique in `clicks`, so a replay
inserts nothing twice), records the group engagement of known buyers in the same transaction, and
acknowledges the entries only after the commit, trimming the stream up to the oldest entry still pending
(XTRIM drops whole nodes; XDEL would look up each entry). Entries a crashed consumer left pending are
claimed again, so nothing is lost on a restart.
"""

import json
import os
import socket
import time
from datetime import UTC, datetime

from flask import current_app
from redis.exceptions import ResponseError
from sqlalchemy import BigInteger, Column, MetaData, String, Table, insert, select, true
from sqlalchemy.schema import CreateTable

from app.affiliate.clickbuffer import ClickBuffer, PendingClick
from app.affiliate.models import Click, ShareLink
from app.core.db import UTCDateTime, after_commit, db, is_postgres, upsert_insert, use_case
from app.core.lru import ProcessCache
from app.core.redis import get_redis, key
from app.groups import service as groups

STREAM = "clicks"
GROUP = "persist"
DEDUPE_SECONDS = 60
LINK_CACHE_SECONDS = 24 * 3600
CLAIM_IDLE_MS = 30_000
BATCH_SIZE = 5000
# How long a process trusts the link (id, landing) it saw: a landing changed since reaches redirects this late.
LOCAL_LINK_SECONDS = 60
LOCAL_LINKS_MAX = 20_000

# KEYS: link cache, dedupe key, stream. ARGV: dedupe seconds, time (ms), buyer id, visitor, via.
# Returns nil when the link is not cached, else {counted (0/1), cached "<link id> <landing>"}.
_CLICK = """
local link = redis.call('get', KEYS[1])
if not link then return nil end
if redis.call('set', KEYS[2], 1, 'NX', 'EX', ARGV[1]) then
  redis.call('xadd', KEYS[3], '*', 'k', string.match(link, '^%d+'), 't', ARGV[2], 'b', ARGV[3], 'v', ARGV[4],
             'w', ARGV[5])
  return {1, link}
end
return {0, link}
"""

# KEYS: the stream. ARGV: the group, then the ids to acknowledge. Then trims every entry the group has
# delivered and nobody holds: those before the oldest pending one, or else up to the last delivered one.
_ACK_AND_TRIM = """
for i = 2, #ARGV, 1000 do
  redis.call('xack', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local pending = redis.call('xpending', KEYS[1], ARGV[1])
if pending[1] > 0 then
  return redis.call('xtrim', KEYS[1], 'MINID', pending[2])
end
for _, group in ipairs(redis.call('xinfo', 'groups', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
  if fields['name'] == ARGV[1] then
    local ms, seq = string.match(fields['last-delivered-id'], '^(%d+)-(%d+)$')
    return redis.call('xtrim', KEYS[1], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
  end
end
return 0
"""

# The batch being persisted, per database connection; PostgreSQL empties it at every commit.
_BATCH = Table(
    "click_batch",
    MetaData(),
    Column("stream_id", String(32)),
    Column("link_id", BigInteger),
    Column("buyer_id", BigInteger),
    Column("visitor", String(64)),
    Column("via", String(8)),
    Column("clicked_at", UTCDateTime()),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
_LINK_FIELDS = ("code", "sharer_id", "product_id", "group_id", "post_id", "content_id", "host_id", "content_author_id")


def link_cache_key(code: str) -> str:
    return key("share-dest", code)


def cache_link(code: str, payload: dict) -> str:
    """Keep what a click needs about a link (its id and landing url) in Redis, so the redirect never reads the database."""
    text = f"{payload['id']} {payload['landing']}"
    get_redis().set(link_cache_key(code), text, ex=LINK_CACHE_SECONDS)
    return text


def record(*, code: str, buyer_id: int | None, visitor: str | None, via: str, at: datetime) -> tuple[bool, dict] | None:
    """Count a click unless the same buyer clicked this code within a minute; None when the link is not cached.

    Returns (counted, {"id": link id, "landing": url}).
    """
    script = current_app.extensions.get("click_script")
    if script is None:
        script = current_app.extensions["click_script"] = get_redis().register_script(_CLICK)
    who = f"u{buyer_id}" if buyer_id is not None else f"v{visitor}"
    answer = script(
        keys=[link_cache_key(code), key("click-seen", code, who), key(STREAM)],
        args=[DEDUPE_SECONDS, int(at.timestamp() * 1000), buyer_id or "", visitor or "", via],
    )
    if answer is None:
        return None
    link_id, _, landing = answer[1].decode().partition(" ")
    _remember_link(code, int(link_id), landing)
    return bool(answer[0]), {"id": int(link_id), "landing": landing}


def record_later(*, code: str, buyer_id: int | None, visitor: str | None, via: str, at: datetime) -> str | None:
    """Queue a click on a link this process knows and return its landing url; None when the link is not known here.

    Whether the click counts (first in its minute for this buyer) is decided when the buffer reaches Redis.
    """
    known = _local_links().get(code)
    if known is None or known[2] < time.monotonic():
        return None
    who = f"u{buyer_id}" if buyer_id is not None else f"v{visitor}"
    _buffer().add(
        PendingClick(
            dedupe_key=key("click-seen", code, who),
            link_id=known[0],
            at_ms=int(at.timestamp() * 1000),
            buyer=str(buyer_id or ""),
            visitor=visitor or "",
            via=via,
        )
    )
    return known[1]


def flush_pending() -> int:
    """Send this process's queued clicks to Redis now; returns how many counted."""
    state = current_app.extensions.get("click_buffer")
    if state is None or state[0] != os.getpid():
        return 0
    return state[1].flush()


def _local_links() -> ProcessCache:
    """This process's links by code: (link id, landing, trusted until), the least recently clicked making room."""
    state = current_app.extensions.get("click_links")
    if state is None or state[0] != os.getpid():
        state = current_app.extensions["click_links"] = (os.getpid(), ProcessCache(LOCAL_LINKS_MAX))
    return state[1]


def _remember_link(code: str, link_id: int, landing: str) -> None:
    _local_links().put(code, (link_id, landing, time.monotonic() + LOCAL_LINK_SECONDS))


def _buffer() -> ClickBuffer:
    # Made in the process that uses it: a buffer (and its thread) never crosses a fork.
    state = current_app.extensions.get("click_buffer")
    if state is None or state[0] != os.getpid():
        buffer = ClickBuffer(
            get_redis(),
            stream_key=key(STREAM),
            dedupe_seconds=DEDUPE_SECONDS,
            linger_seconds=current_app.config["CLICK_WRITE_BEHIND_LINGER_SECONDS"],
        )
        state = current_app.extensions["click_buffer"] = (os.getpid(), buffer)
    return state[1]


def _consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _ensure_group(redis) -> None:
    try:
        redis.xgroup_create(key(STREAM), GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _row(entry_id: bytes, fields: dict) -> tuple:
    # Entries written before the cache held "<id> <landing>" carry the whole link as JSON in "l".
    link_id = int(fields[b"k"]) if b"k" in fields else json.loads(fields[b"l"])["id"]
    buyer, visitor = fields.get(b"b"), fields.get(b"v")
    return (
        entry_id.decode(),
        link_id,
        int(buyer) if buyer else None,
        visitor.decode() if visitor else None,
        fields[b"w"].decode(),
        datetime.fromtimestamp(int(fields[b"t"]) / 1000, tz=UTC),
    )


def _stage(rows: list[tuple]) -> None:
    """Put the batch in the connection's temporary table: COPY on PostgreSQL, one executemany elsewhere."""
    db.session.execute(CreateTable(_BATCH, if_not_exists=True))
    db.session.execute(_BATCH.delete())  # only non-empty inside a test's outer transaction, or on SQLite
    connection = db.session.connection()
    if is_postgres():
        names = ", ".join(c.name for c in _BATCH.columns)
        with (
            connection.connection.driver_connection.cursor() as cursor,
            cursor.copy(f"COPY {_BATCH.name} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        db.session.execute(insert(_BATCH), [dict(zip(_BATCH.columns.keys(), row)) for row in rows])


def _insert_ignoring_replays() -> None:
    """One INSERT … SELECT of the staged batch, with the link's fields copied onto each click."""
    batch = _BATCH.c
    source = (
        select(
            batch.stream_id,
            ShareLink.id,
            *(getattr(ShareLink, f) for f in _LINK_FIELDS),
            batch.buyer_id,
            batch.visitor,
            batch.via,
            batch.clicked_at,
        )
        .join_from(_BATCH, ShareLink, ShareLink.id == batch.link_id)
        .where(true())
    )  # SQLite needs a WHERE to tell the upsert's ON from the join's
    columns = ["stream_id", "share_link_id", *_LINK_FIELDS, "buyer_id", "visitor", "via", "clicked_at"]
    db.session.execute(
        upsert_insert(Click).from_select(columns, source).on_conflict_do_nothing(index_elements=["stream_id"])
    )


def _record_engagements() -> None:
    """A known buyer clicking a group's link is an engagement on the fan ladder (idempotent by stream id)."""
    batch = _BATCH.c
    rows = db.session.execute(
        select(ShareLink.group_id, batch.buyer_id, batch.stream_id, batch.clicked_at)
        .join_from(_BATCH, ShareLink, ShareLink.id == batch.link_id)
        .where(batch.buyer_id.is_not(None), ShareLink.group_id.is_not(None))
    )
    groups.record_member_events(
        events=[
            groups.MemberEventIn(
                group_id=r.group_id,
                user_id=r.buyer_id,
                kind="clicked",
                occurred_at=r.clicked_at,
                ref=f"click:{r.stream_id}",
            )
            for r in rows
        ]
    )


def persist(*, batch_size: int = BATCH_SIZE) -> int:
    """Move counted clicks from the Redis stream into the database; returns how many entries were handled.

    Each batch is a use case of its own (or joins the caller's: order ingestion persists the clicks first, in
    its transaction); its entries are acknowledged once it has committed, and stay pending otherwise, to be
    claimed again by a later run.
    """
    flush_pending()
    redis = get_redis()
    _ensure_group(redis)
    consumer = _consumer()
    handled = 0
    reclaim_from = "0-0"
    while True:
        entries, fresh = [], False
        if reclaim_from is not None:
            # Redis 6.2 answers [next, entries]; Redis 7 adds the ids of entries deleted meanwhile.
            reclaim_from, entries = redis.xautoclaim(
                key(STREAM), GROUP, consumer, CLAIM_IDLE_MS, start_id=reclaim_from, count=batch_size
            )[:2]
            if reclaim_from in (b"0-0", "0-0"):
                reclaim_from = None
        if not entries:
            answer = redis.xreadgroup(GROUP, consumer, {key(STREAM): ">"}, count=batch_size)
            entries, fresh = (answer[0][1] if answer else []), True
        caught_up = fresh and len(entries) < batch_size
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return handled
        rows = [_row(entry_id, fields) for entry_id, fields in entries]
        with use_case():
            _stage(rows)
            _insert_ignoring_replays()
            if any(row[2] is not None for row in rows):
                _record_engagements()
            ids = [entry_id for entry_id, _ in entries]
            after_commit(lambda ids=ids: _acknowledge(redis, ids))
        handled += len(entries)
        if caught_up:
            # Caught up: what arrives meanwhile waits for the next run, in one big batch, instead
            # of being chased in small ones that each pay the fixed cost of a round.
            return handled


def _acknowledge(redis, ids: list[bytes]) -> None:
    """Acknowledge persisted entries and trim every entry that no consumer still holds off the stream."""
    script = current_app.extensions.get("click_ack_script")
    if script is None:
        script = current_app.extensions["click_ack_script"] = redis.register_script(_ACK_AND_TRIM)
    script(keys=[key(STREAM)], args=[GROUP, *ids])


def backlog() -> int:
    """Clicks counted and not yet persisted (this process's queued clicks are counted in Redis first)."""
    flush_pending()
    return get_redis().xlen(key(STREAM))
