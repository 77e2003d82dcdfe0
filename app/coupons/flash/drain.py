"""Landing granted claims: the drain moves the claim stream into the database in batches.

The gate grants from Redis alone and XADDs each grant to one stream; the drain (scheduled every second,
also run by reads that must see a user's fresh claims, by a drop's end, and first thing in every
reconcile) reads it through a consumer group, one drainer at a time (a Redis lock). Per batch it inserts
the rows, unique by grant id (`ON CONFLICT (gate_grant) DO NOTHING`: an entry landed before a crash lands
once), bumps each template's counter with one conditional update (`claimed + n <= stock`) in the same
transaction, and only after the commit acks and deletes the entries. Entries delivered to a drainer that
died before acking stay pending and are taken over by the next drain.

Each batch is a use case of its own. Run inside a caller's use case (a read that lands the user's claims,
a drop's end), the batches join the caller's transaction instead and their entries are acked once it has
committed: if it rolls back, they stay pending, and the next drain lands them.

The database keeps every invariant: the unique (template, user, seq) and (template, user, day, day_seq)
keys, the stock check. If it refuses a granted entry (it cannot while the gate is exact), the batch is
retried entry by entry, and each refused entry is logged and copied to the refused stream, which every
reconcile reports: a told-claimed coupon is never dropped silently.
"""

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from app.core.db import after_commit, db, in_use_case, is_postgres, upsert_insert, use_case
from app.core.jobs import batch_job
from app.core.redis import get_redis, key
from app.coupons.flash import gate, id_pool
from app.coupons.models import CouponTemplate, UserCoupon

log = logging.getLogger(__name__)

BATCH = 500

# On PostgreSQL a batch binds as one array per column: the statement's text never changes, so it is
# prepared once and nothing is compiled per batch (a VALUES list of 500 rows was, every time).
_PG_COLUMNS = (
    ("id", "bigint"),
    ("template_id", "bigint"),
    ("user_id", "bigint"),
    ("seq", "integer"),
    ("claim_day", "date"),
    ("day_seq", "integer"),
    ("gate_grant", "text"),
    ("claim_key", "text"),
    ("status", "text"),
    ("valid_from", "timestamptz"),
    ("valid_until", "timestamptz"),
    ("claimed_at", "timestamptz"),
    ("origin_share_code", "text"),
    ("origin_sharer_id", "bigint"),
    ("origin_group_id", "bigint"),
    ("origin_post_id", "bigint"),
)
_PG_INSERT = text(
    f"INSERT INTO user_coupons ({', '.join(name for name, _ in _PG_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{name} AS {kind}[])' for name, kind in _PG_COLUMNS)}) "
    "ON CONFLICT (gate_grant) DO NOTHING RETURNING template_id"
)


class StockRefused(Exception):
    """The conditional stock update refused a batch: the gate granted beyond the stock."""


@dataclass(frozen=True)
class Grant:
    entry_id: str
    template_id: int
    user_id: int
    coupon_id: int
    grant_id: str
    claimed_at: datetime
    seq: int
    claim_day: date | None
    day_seq: int | None
    share_code: str | None
    sharer_id: int | None
    group_id: int | None
    post_id: int | None
    key_digest: str | None

    @classmethod
    def parse(cls, entry_id: str, f: dict[str, str]) -> "Grant":
        def number(name):
            return int(f[name]) if f.get(name) else None

        return cls(
            entry_id=entry_id,
            template_id=int(f["t"]),
            user_id=int(f["u"]),
            coupon_id=int(f["c"]),
            grant_id=f["g"],
            claimed_at=datetime.fromtimestamp(int(f["ms"]) / 1000, tz=UTC),
            seq=int(f["seq"]),
            claim_day=datetime.strptime(f["day"], "%Y%m%d").date() if f.get("day") else None,
            day_seq=number("dseq"),
            share_code=f.get("sc") or None,
            sharer_id=number("sh"),
            group_id=number("gr"),
            post_id=number("p"),
            key_digest=f.get("k") or None,
        )

    def row(self, template: CouponTemplate) -> dict:
        if template.validity_kind == "window":
            valid_from, valid_until = template.valid_from, template.valid_until
        else:
            valid_from, valid_until = self.claimed_at, self.claimed_at + timedelta(days=template.valid_days)
        return {
            "id": self.coupon_id,
            "template_id": self.template_id,
            "user_id": self.user_id,
            "seq": self.seq,
            "claim_day": self.claim_day,
            "day_seq": self.day_seq,
            "gate_grant": self.grant_id,
            "claim_key": self.key_digest,
            "status": "available",
            "valid_from": valid_from,
            "valid_until": valid_until,
            "claimed_at": self.claimed_at,
            "origin_share_code": self.share_code,
            "origin_sharer_id": self.sharer_id,
            "origin_group_id": self.group_id,
            "origin_post_id": self.post_id,
        }


def _consumer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _insert(grants: list[Grant], templates: dict[int, CouponTemplate]) -> None:
    """One statement for the rows, one conditional update per template; raises if the database refuses."""
    rows = [g.row(templates[g.template_id]) for g in grants]
    if is_postgres():
        landed = Counter(db.session.scalars(_PG_INSERT, {name: [r[name] for r in rows] for name, _ in _PG_COLUMNS}))
    else:
        landed = Counter(
            db.session.scalars(
                upsert_insert(UserCoupon)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[UserCoupon.gate_grant])
                .returning(UserCoupon.template_id)
            )
        )
    for template_id, count in landed.items():
        moved = db.session.execute(
            update(CouponTemplate)
            .where(CouponTemplate.id == template_id, CouponTemplate.claimed + count <= CouponTemplate.stock)
            .values(claimed=CouponTemplate.claimed + count)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise StockRefused(template_id)


def _land(grants: list[Grant]) -> dict[str, str]:
    """Write a batch in the current transaction; returns the refusal reason per entry id the database refused."""
    wanted = {g.template_id for g in grants}
    templates = {t.id: t for t in db.session.scalars(select(CouponTemplate).where(CouponTemplate.id.in_(wanted)))}
    refused = {g.entry_id: "template_missing" for g in grants if g.template_id not in templates}
    grants = [g for g in grants if g.template_id in templates]
    if not grants:
        return refused
    try:
        with db.session.begin_nested():
            _insert(grants, templates)
        return refused
    except (IntegrityError, StockRefused):
        pass
    # Something in the batch is refused: land what the database takes, one entry at a time.
    for grant in grants:
        try:
            with db.session.begin_nested():
                _insert([grant], templates)
        except IntegrityError as exc:
            refused[grant.entry_id] = "conflict: " + str(exc.orig).splitlines()[0][:200]
        except StockRefused:
            refused[grant.entry_id] = "out_of_stock"
    for grant in grants:
        if grant.entry_id in refused:
            log.error(
                "coupon grant %s (template %s, user %s, coupon %s) refused by the database: %s",
                grant.grant_id,
                grant.template_id,
                grant.user_id,
                grant.coupon_id,
                refused[grant.entry_id],
            )
    return refused


def _lock(wait_seconds: float):
    timeout = current_app.config["COUPON_DRAIN_LOCK_SECONDS"]
    return get_redis().lock(
        key("coupon-drain"), timeout=timeout, blocking=wait_seconds > 0, blocking_timeout=wait_seconds or None
    )


def _release(lock) -> None:
    try:
        lock.release()
    except LockError:  # it expired under a stalled holder; another drain may have taken over meanwhile
        log.warning("coupon drain lock expired before release")


@contextmanager
def held_off(*, wait_seconds: float) -> Iterator[bool]:
    """Keep every drain out meanwhile (yields False when one still runs after `wait_seconds`).

    A gate rebuild reads the rows, then the stream: an entry landed and deleted in between would be in neither.
    """
    lock = _lock(wait_seconds)
    if not lock.acquire():
        yield False
        return
    try:
        yield True
    finally:
        _release(lock)


@batch_job
def drain(*, wait_seconds: float = 0) -> int:
    """Land granted claims from the stream; returns how many entries were settled (0 when another drainer runs).

    Inside a caller's use case: how many were landed in it, to be settled once it commits.
    """
    if not gate.stream_length():  # the common tick: nothing granted since the last drain
        return 0
    lock = _lock(wait_seconds)
    if not lock.acquire():
        return 0
    joined = in_use_case()
    try:
        gate.ensure_group()
        consumer, settled, reclaim = _consumer(), 0, True
        while entries := gate.next_entries(consumer=consumer, count=BATCH, reclaim=reclaim):
            with use_case():
                refused = _land([Grant.parse(entry_id, fields) for entry_id, fields in entries])
            if joined:
                after_commit(lambda entries=entries, refused=refused: gate.settle(entries, refused))
                settled += len(entries)
                reclaim = False  # what this call landed stays pending until the caller commits
            else:
                settled += gate.settle(entries, refused)
            lock.reacquire()
        if not joined:  # reserving ids takes its own short transaction: never while the caller holds a write lock
            id_pool.top_up()
        return settled
    finally:
        _release(lock)


def ensure_landed(*, user_id: int, wait_seconds: float = 5) -> None:
    """Read-your-writes: land the user's granted claims still in the stream before reading her coupons.

    Inside the caller's use case (the reads and the checkout that need them) they land in its transaction,
    which sees them at once; one pass lands the whole stream, the user's entries included.
    """
    deadline = time.monotonic() + wait_seconds
    while gate.not_landed(user_id=user_id) and time.monotonic() < deadline:
        # Waits for a drain already running (it may be landing this user's entries), then lands the rest.
        if not drain(wait_seconds=max(0.01, deadline - time.monotonic())) or in_use_case():
            return
