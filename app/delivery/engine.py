"""The fan-out engine's clock side: dispatch due occurrences into delivery rows, hand them to RQ, reconcile.

Exactly once rests on three guards: an occurrence is dispatched by one conditional update in the same
transaction that writes its deliveries (and makes what each group's message needs: share codes, a drip's
point); deliveries are unique per (post, group, occurrence); and a delivery is sent only by the worker whose
conditional update moved it pending → sending (`app.delivery.sending`). A worker that dies after that leaves
the delivery `sending`, which the reconciler turns into `unknown` (never re-sent automatically).

These are the steps of the jobs in `app.delivery.tasks`, which run each in its own transaction; they only flush.
"""

import logging
from datetime import datetime, timedelta

from flask import current_app
from rq import Queue
from sqlalchemy import case, func, literal, select, update

from app.core.clock import now_utc
from app.core.db import UTCDateTime, after_commit, db, upsert_insert
from app.core.errors import ApiError
from app.core.queue import enqueue, queue
from app.delivery import flows, kinds, planning
from app.delivery.channels import CUSTOMER_GROUP
from app.delivery.models import Delivery, Post, PostOccurrence
from app.groups import service as groups

log = logging.getLogger(__name__)

CHUNK_SIZE = 100
DISPATCH_BATCH = 20
SEND_JOB = "app.delivery.tasks.send_chunk"
TICK = timedelta(seconds=0.5)  # the delivery-tick interval in tasks.py
MISSED_REASON = "scheduler was down past the grace period"
# Delivery columns written by the INSERT … SELECT of an occurrence's deliveries, in the order of its SELECT.
DELIVERY_COLUMNS = [
    "post_id",
    "occurrence_id",
    "group_id",
    "channel",
    "state",
    "attempts",
    "manual_retries",
    "due_at",
    "available_at",
    "quota_day",
    "error_message",
    "queued_at",
    "created_at",
    "updated_at",
]


def misfire_grace() -> timedelta:
    return timedelta(seconds=current_app.config["DELIVERY_MISFIRE_GRACE_SECONDS"])


# -- dispatch ----------------------------------------------------------------------------------------------


def next_due_at() -> datetime | None:
    """When the earliest planned occurrence is due."""
    return db.session.scalar(select(func.min(PostOccurrence.due_at)).where(PostOccurrence.state == "scheduled"))


def due_occurrences(*, now: datetime, passed: set[int]) -> list[int]:
    """The next batch of due occurrences, earliest first, leaving out those this run has passed already."""
    return [
        i
        for i in db.session.scalars(
            select(PostOccurrence.id)
            .where(PostOccurrence.state == "scheduled", PostOccurrence.due_at <= now)
            .order_by(PostOccurrence.due_at, PostOccurrence.id)
            .limit(DISPATCH_BATCH + len(passed))
        )
        if i not in passed
    ][:DISPATCH_BATCH]


def _outcome(post: Post, occurrence: PostOccurrence, *, now: datetime) -> tuple[str, str, dict | None]:
    """What becomes of a due occurrence: (state, error, snapshot); the snapshot is checked against its sources."""
    if now - occurrence.due_at > misfire_grace():
        return "missed", MISSED_REASON, None
    if post.status != "active":
        return "cancelled", f"post is {post.status}", None
    kind = kinds.of(post.kind)
    try:
        shared = kind.snapshot(post.content, author=planning.post_author(post))
    except ApiError as exc:
        return "refused", f"{exc.code}: {exc.message}", None
    return "dispatched", "", {"post_id": post.id, "kind": post.kind, "content": post.content, **shared}


def dispatch_occurrence(*, occurrence_id: int) -> int:
    """Claim one occurrence, write one delivery per target group and make each group's message ready.

    Runs as one transaction: a second dispatcher's claim finds the occurrence taken and writes nothing.
    Returns how many deliveries were written; the ready ones are handed to RQ once this commits.
    """
    now = now_utc()
    occurrence = db.session.get(PostOccurrence, occurrence_id)
    post = db.session.get(Post, occurrence.post_id) if occurrence else None
    if post is None:
        return 0
    state, error, frozen = _outcome(post, occurrence, now=now)
    claimed = db.session.execute(
        update(PostOccurrence)
        .where(PostOccurrence.id == occurrence_id, PostOccurrence.state == "scheduled")
        .values(state=state, error=error, snapshot=frozen, dispatched_at=now)
    ).rowcount
    if not claimed:
        return 0
    written, ready = 0, []
    if state in ("dispatched", "missed"):
        rows, written = _write_deliveries(
            post, occurrence, now=now, state="pending" if state == "dispatched" else "missed"
        )
        if state == "dispatched":
            per_group = kinds.of(post.kind).per_group
            ready = _make_messages(frozen, occurrence, rows, now=now) if per_group else [i for i, _ in rows]
        db.session.execute(
            update(PostOccurrence)
            .where(PostOccurrence.id == occurrence_id)
            .values(deliveries_count=written, snapshot=frozen)
        )
    planning.plan_post(post, now=now)
    log.info(
        "occurrence %s of post %s (%s, %s): %s, %d deliveries written",
        occurrence_id,
        post.id,
        occurrence.timezone,
        occurrence.slot,
        state,
        written,
    )
    # A crash before this hand-over leaves the rows queued but jobless: the reconciler hands them over again.
    after_commit(lambda: hand_to_rq(sorted(ready)))
    return written


def _make_messages(
    frozen: dict, occurrence: PostOccurrence, rows: list[tuple[int, int]], *, now: datetime
) -> list[int]:
    """Make what each pending delivery's message needs into the snapshot; returns the deliveries ready to send.

    A group that gets nothing this time ends `skipped`; one whose making was refused ends `dead` with why.
    """
    briefs = groups.group_briefs(group_ids=[group_id for _, group_id in rows])
    refused = flows.make_messages(
        frozen, targets=[briefs[group_id] for _, group_id in rows], occurrence_id=occurrence.id
    )
    for group_id, refusal in refused.items():
        state, code, message = (
            ("skipped", refusal.code, refusal.reason)
            if isinstance(refusal, kinds.Skip)
            else ("dead", refusal.code, refusal.message[:500])
        )
        db.session.execute(
            update(Delivery)
            .where(Delivery.occurrence_id == occurrence.id, Delivery.group_id == group_id, Delivery.state == "pending")
            .values(
                state=state, error_code=code, error_message=message, queued_at=None, finished_at=now, updated_at=now
            )
        )
    return [delivery_id for delivery_id, group_id in rows if group_id not in refused]


def _write_deliveries(
    post: Post, occurrence: PostOccurrence, *, now: datetime, state: str
) -> tuple[list[tuple[int, int]], int]:
    """Insert the occurrence's deliveries in bulk; returns the (id, group id) of those inserted `state`, and how
    many rows were written in all (customer groups over their daily cap get a dead row instead)."""
    targets = planning.post_targets(post)
    wanted_tags = (targets["group_filter"] or {}).get("tags")
    if wanted_tags:
        ids = [g.id for g in groups.target_groups(**targets, timezone=occurrence.timezone)]
        selects = [
            groups.target_groups_select(
                group_ids=ids[i : i + 5000], group_filter=None, host_id=None, timezone=occurrence.timezone
            )
            for i in range(0, len(ids), 5000)
        ]
    else:
        selects = [groups.target_groups_select(**targets, timezone=occurrence.timezone)]
    day = occurrence.slot[:10]
    error = "" if state == "pending" else MISSED_REASON
    queued_at = now if state == "pending" else None
    inserted: list[tuple[int, int]] = []
    written = 0
    for target_select in selects:
        src = target_select.subquery()
        rows = select(
            literal(post.id),
            literal(occurrence.id),
            src.c.id,
            src.c.channel,
            literal(state),
            literal(0),
            literal(0),
            literal(occurrence.due_at, UTCDateTime()),
            literal(now, UTCDateTime()),
            case((src.c.channel == CUSTOMER_GROUP, literal(day)), else_=None),
            literal(error),
            literal(queued_at, UTCDateTime()),
            literal(now, UTCDateTime()),
            literal(now, UTCDateTime()),
        ).where(src.c.id.is_not(None))  # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT
        statement = (
            upsert_insert(Delivery)
            .from_select(DELIVERY_COLUMNS, rows)
            .on_conflict_do_nothing()
            .returning(Delivery.id, Delivery.group_id)
        )
        batch = [(row.id, row.group_id) for row in db.session.execute(statement)]
        inserted += batch
        written += len(batch) + _refuse_over_quota(post, occurrence, target_select, now=now)
    return inserted, written


def _refuse_over_quota(post: Post, occurrence: PostOccurrence, target_select, *, now: datetime) -> int:
    """Customer groups that already had today's mass message get a dead delivery instead of a second one."""
    src = target_select.subquery()
    have = select(Delivery.group_id).where(Delivery.occurrence_id == occurrence.id)
    over = list(
        db.session.execute(
            select(src.c.id, src.c.channel).where(src.c.channel == CUSTOMER_GROUP, src.c.id.not_in(have))
        )
    )
    for group_id, channel in over:
        db.session.add(
            Delivery(
                post_id=post.id,
                occurrence_id=occurrence.id,
                group_id=group_id,
                channel=channel,
                state="dead",
                attempts=0,
                manual_retries=0,
                due_at=occurrence.due_at,
                available_at=now,
                error_code="daily_mass_message_cap",
                error_message="the group already gets a mass message on this day",
                created_at=now,
                updated_at=now,
            )
        )
    db.session.flush()
    return len(over)


# -- handing work to RQ ------------------------------------------------------------------------------------


def release_retries() -> int:
    """Failed deliveries whose backoff has passed go back to pending."""
    now = now_utc()
    return db.session.execute(
        update(Delivery)
        .where(Delivery.state == "failed", Delivery.available_at <= now)
        .values(state="pending", queued_at=None, updated_at=now)
    ).rowcount


def enqueue_ready(limit: int = 50_000) -> int:
    """Mark ready pending deliveries as queued; they are put on RQ in chunks once this commits. Returns how many."""
    now = now_utc()
    ready = (
        select(Delivery.id)
        .where(Delivery.state == "pending", Delivery.queued_at.is_(None), Delivery.available_at <= now)
        .order_by(Delivery.id)
        .limit(limit)
    )
    ids = sorted(
        db.session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(ready.scalar_subquery()), Delivery.queued_at.is_(None))
            .values(queued_at=now)
            .returning(Delivery.id)
        )
    )
    after_commit(lambda: hand_to_rq(ids))
    return len(ids)


def hand_to_rq(ids: list[int]) -> None:
    """Enqueue send jobs of CHUNK_SIZE deliveries each, in one Redis round trip when RQ is asynchronous."""
    if not ids:
        return
    chunks = [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]
    deliveries = queue("deliveries")
    if deliveries.is_async:
        deliveries.enqueue_many([Queue.prepare_data(SEND_JOB, args=(chunk,)) for chunk in chunks])
    else:
        for chunk in chunks:
            enqueue("deliveries", SEND_JOB, chunk)
    log.info("enqueued %d deliveries in %d jobs", len(ids), len(chunks))


# -- reconciling -------------------------------------------------------------------------------------------


def settle_stalled() -> dict[str, int]:
    """Stuck sends become unknown; pending deliveries whose job was lost are handed over again."""
    now = now_utc()
    stuck_after = timedelta(seconds=current_app.config["DELIVERY_SENDING_TIMEOUT_SECONDS"])
    requeue_after = timedelta(seconds=current_app.config["DELIVERY_REQUEUE_AFTER_SECONDS"])
    unknown = db.session.execute(
        update(Delivery)
        .where(Delivery.state == "sending", Delivery.sending_at < now - stuck_after)
        .values(
            state="unknown",
            error_code="worker_lost",
            finished_at=now,
            updated_at=now,
            error_message="the worker stopped while sending: the message may or may not have arrived",
        )
    ).rowcount
    requeued = db.session.execute(
        update(Delivery)
        .where(Delivery.state == "pending", Delivery.queued_at < now - requeue_after)
        .values(queued_at=None, updated_at=now)
    ).rowcount
    return {"unknown": unknown, "requeued": requeued}
