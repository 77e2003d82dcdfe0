"""Click counting through Redis: the redirect does one Lua call; a job persists the stream in batches.

A click is added to a Redis stream only if the same buyer did not click the same code in the last
minute (a SET NX EX key in the same script). The persist job reads the stream through a consumer group,
inserts the rows (the stream entry id is unique in `clicks`, so a replay inserts nothing twice), records
the group engagement of a known buyer in the same transaction, and
acknowledges and deletes the entries only after the commit. Entries a crashed consumer left pending are
claimed again, so nothing is lost on a restart.
"""
import json
import os
import socket
from datetime import datetime, timezone

from flask import current_app
from redis.exceptions import ResponseError
from sqlalchemy.dialects import postgresql, sqlite

from app.affiliate.models import Click
from app.core.db import db
from app.core.redis import get_redis, key
from app.groups import service as groups

STREAM = "clicks"
GROUP = "persist"
DEDUPE_SECONDS = 60
LINK_CACHE_SECONDS = 24 * 3600
CLAIM_IDLE_MS = 30_000

# KEYS: link cache, dedupe key, stream. ARGV: dedupe seconds, time (ms), buyer id, visitor, via.
# Returns nil when the link is not cached, else {counted (0/1), link json}.
_CLICK = """
local link = redis.call('get', KEYS[1])
if not link then return nil end
if redis.call('set', KEYS[2], 1, 'NX', 'EX', ARGV[1]) then
  redis.call('xadd', KEYS[3], '*', 'l', link, 't', ARGV[2], 'b', ARGV[3], 'v', ARGV[4], 'w', ARGV[5])
  return {1, link}
end
return {0, link}
"""


def link_cache_key(code: str) -> str:
    return key("share-link", code)


def cache_link(code: str, payload: dict) -> str:
    """Keep what a click needs about a link in Redis, so the redirect never reads the database."""
    text = json.dumps(payload, separators=(",", ":"))
    get_redis().set(link_cache_key(code), text, ex=LINK_CACHE_SECONDS)
    return text


def record(*, code: str, buyer_id: int | None, visitor: str | None, via: str, at: datetime) -> tuple[bool, dict] | None:
    """Count a click unless the same buyer clicked this code within a minute; None when the link is not cached."""
    redis = get_redis()
    script = current_app.extensions.get("click_script")
    if script is None:
        script = current_app.extensions["click_script"] = redis.register_script(_CLICK)
    who = f"u{buyer_id}" if buyer_id is not None else f"v{visitor}"
    answer = script(keys=[link_cache_key(code), key("click-seen", code, who), key(STREAM)],
                    args=[DEDUPE_SECONDS, int(at.timestamp() * 1000), buyer_id or "", visitor or "", via])
    if answer is None:
        return None
    return bool(answer[0]), json.loads(answer[1])


def _consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _ensure_group(redis) -> None:
    try:
        redis.xgroup_create(key(STREAM), GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _row(entry_id: bytes, fields: dict) -> dict:
    link = json.loads(fields[b"l"])
    buyer = fields.get(b"b", b"").decode()
    visitor = fields.get(b"v", b"").decode()
    return {
        "stream_id": entry_id.decode(), "share_link_id": link["id"], "code": link["code"], "sharer_id": link["sharer_id"],
        "product_id": link["product_id"], "group_id": link["group_id"], "post_id": link["post_id"],
        "content_id": link["content_id"], "host_id": link["host_id"], "content_author_id": link["content_author_id"],
        "buyer_id": int(buyer) if buyer else None, "visitor": visitor or None, "via": fields[b"w"].decode(),
        "clicked_at": datetime.fromtimestamp(int(fields[b"t"]) / 1000, tz=timezone.utc),
    }


def _insert_ignoring_replays(rows: list[dict]) -> None:
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(Click).on_conflict_do_nothing(index_elements=["stream_id"]), rows)


def _record_engagements(rows: list[dict]) -> None:
    """A known buyer clicking a group's link is an engagement on the fan ladder (idempotent by stream id)."""
    candidates = [row for row in rows if row["buyer_id"] is not None and row["group_id"] is not None]
    members = groups.current_members(pairs={(row["group_id"], row["buyer_id"]) for row in candidates})
    for row in candidates:
        if (row["group_id"], row["buyer_id"]) in members:
            groups.record_member_event(group_id=row["group_id"], user_id=row["buyer_id"], kind="clicked",
                                       occurred_at=row["clicked_at"], ref=f"click:{row['stream_id']}", commit=False)


def persist(*, batch_size: int = 1000) -> int:
    """Move counted clicks from the Redis stream into the database; returns how many entries were handled."""
    redis = get_redis()
    _ensure_group(redis)
    consumer = _consumer()
    handled = 0
    reclaim_from = "0-0"
    while True:
        entries = []
        if reclaim_from is not None:
            # Redis 6.2 answers [next, entries]; Redis 7 adds the ids of entries deleted meanwhile.
            reclaim_from, entries = redis.xautoclaim(key(STREAM), GROUP, consumer, CLAIM_IDLE_MS,
                                                     start_id=reclaim_from, count=batch_size)[:2]
            if reclaim_from in (b"0-0", "0-0"):
                reclaim_from = None
        if not entries:
            answer = redis.xreadgroup(GROUP, consumer, {key(STREAM): ">"}, count=batch_size)
            entries = answer[0][1] if answer else []
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return handled
        rows = [_row(entry_id, fields) for entry_id, fields in entries]
        _insert_ignoring_replays(rows)
        _record_engagements(rows)
        db.session.commit()
        ids = [entry_id for entry_id, _ in entries]
        redis.xack(key(STREAM), GROUP, *ids)
        redis.xdel(key(STREAM), *ids)
        handled += len(entries)


def backlog() -> int:
    """Clicks counted in Redis and not yet persisted."""
    return get_redis().xlen(key(STREAM))
