"""The fan-out engine: plan occurrences, dispatch due ones into delivery rows, hand them to RQ, send, reconcile.

Exactly once rests on three guards: an occurrence is dispatched by one conditional update in the same
transaction that writes its deliveries; deliveries are unique per (post, group, occurrence); and a delivery
is sent only by the worker whose conditional update moved it pending → sending. A worker that dies after that
leaves the delivery `sending`, which the reconciler turns into `unknown` (never re-sent automatically).
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import requests
from flask import current_app
from rq import Queue
from sqlalchemy import case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from wechatpy.exceptions import WeChatClientException

from app.core.clock import now_utc
from app.core.db import UTCDateTime, db
from app.core.errors import ApiError
from app.core.queue import enqueue, queue
from app.core.redis import get_redis
from app.delivery import channels, kinds, schedule
from app.delivery.models import Delivery, Post, PostOccurrence, PostTarget, SandboxMessage
from app.groups import service as groups
from app.wechat.clients import clients

log = logging.getLogger(__name__)

CUSTOMER_GROUP = "wecom_customer_group"
CHUNK_SIZE = 100
DISPATCH_BATCH = 20
MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
CONFIRMATION_WINDOW = timedelta(days=3)
SENT = channels.Outcome("sent")
SEND_JOB = "app.delivery.tasks.send_chunk"
TICK = timedelta(seconds=0.5)  # the delivery-tick interval in tasks.py


def misfire_grace() -> timedelta:
    return timedelta(seconds=current_app.config["DELIVERY_MISFIRE_GRACE_SECONDS"])


def _insert_ignoring_conflicts(model):
    dialect = db.session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
    return stmt.on_conflict_do_nothing()


# -- planning ----------------------------------------------------------------------------------------------


def post_targets(post: Post) -> dict:
    """Arguments for the groups service: who a post targets (hosts only ever reach their own groups)."""
    from app.accounts import service as accounts

    operator = "operator" in accounts.roles_of(accounts.get_user(user_id=post.author_id))
    group_ids = None
    if post.target_mode == "groups":
        group_ids = list(db.session.scalars(select(PostTarget.group_id).where(PostTarget.post_id == post.id)))
    return {
        "group_ids": group_ids,
        "group_filter": post.target_filter if post.target_mode == "filter" else None,
        "host_id": None if operator else post.author_id,
    }


def plan_post(post: Post, *, now: datetime | None = None) -> int:
    """Make sure each time zone of the post's groups has its next occurrence planned; returns how many were added."""
    if post.status != "active":
        return 0
    now = now or now_utc()
    added = 0
    zones = groups.target_timezones(**post_targets(post))
    for tz in zones:
        if db.session.scalar(
            select(PostOccurrence.id)
            .where(
                PostOccurrence.post_id == post.id, PostOccurrence.timezone == tz, PostOccurrence.state == "scheduled"
            )
            .limit(1)
        ):
            continue
        last = db.session.scalar(
            select(func.max(PostOccurrence.due_at)).where(
                PostOccurrence.post_id == post.id, PostOccurrence.timezone == tz
            )
        )
        fire = schedule.next_fire(
            post.schedule, tz, after=last or post.starts_at - timedelta(microseconds=1), not_before=post.starts_at
        )
        if fire is None:
            continue
        stmt = _insert_ignoring_conflicts(PostOccurrence).values(
            post_id=post.id,
            timezone=tz,
            slot=schedule.slot_of(fire, tz),
            due_at=fire,
            state="scheduled",
            post_version=post.version,
            deliveries_count=0,
            error="",
            created_at=now,
        )
        added += db.session.execute(stmt).rowcount
    # With groups to post into and nothing left to plan in any of their zones, every schedule has ended.
    if zones and not db.session.scalar(
        select(PostOccurrence.id).where(PostOccurrence.post_id == post.id, PostOccurrence.state == "scheduled").limit(1)
    ):
        post.status = "finished"
    return added


def plan_all() -> int:
    """Plan every active post (a job: picks up new time zones of filter targets and ended schedules)."""
    added = 0
    for post in db.session.scalars(select(Post).where(Post.status == "active").order_by(Post.id)):
        added += plan_post(post)
    db.session.commit()
    return added


def drop_future_occurrences(post_id: int, *, state: str | None = None) -> None:
    """Edit, pause and cancel reach only occurrences that have not gone out yet."""
    future = (PostOccurrence.post_id == post_id) & (PostOccurrence.state == "scheduled")
    if state is None:
        db.session.query(PostOccurrence).filter(future).delete(synchronize_session=False)
    else:
        db.session.execute(update(PostOccurrence).where(future).values(state=state))


# -- dispatch ----------------------------------------------------------------------------------------------


def dispatch_due() -> int:
    """Claim due occurrences one by one and write their deliveries; returns how many deliveries were written."""
    written = 0
    now = now_utc()
    seen: set[int] = set()
    while True:
        due = [
            i
            for i in db.session.scalars(
                select(PostOccurrence.id)
                .where(PostOccurrence.state == "scheduled", PostOccurrence.due_at <= now)
                .order_by(PostOccurrence.due_at, PostOccurrence.id)
                .limit(DISPATCH_BATCH)
            )
            if i not in seen
        ]
        db.session.rollback()
        if not due:
            return written
        for occurrence_id in due:
            seen.add(occurrence_id)
            written += dispatch_occurrence(occurrence_id=occurrence_id)


def dispatch_occurrence(*, occurrence_id: int) -> int:
    """Claim one occurrence and write one delivery per target group, in one transaction."""
    now = now_utc()
    occurrence = db.session.get(PostOccurrence, occurrence_id)
    post = db.session.get(Post, occurrence.post_id) if occurrence else None
    if post is None:
        return 0
    missed = now - occurrence.due_at > misfire_grace()
    state, error, frozen = (
        ("missed", "scheduler was down past the grace period", None) if missed else ("dispatched", "", None)
    )
    if post.status != "active":
        state, error = "cancelled", f"post is {post.status}"
    elif not missed:
        try:
            frozen = kinds.snapshot(
                post_id=post.id,
                kind=post.kind,
                content=post.content,
                author_id=post.author_id,
                occurrence_id=occurrence.id,
            )
        except ApiError as exc:
            state, error = "refused", f"{exc.code}: {exc.message}"
    claimed = db.session.execute(
        update(PostOccurrence)
        .where(PostOccurrence.id == occurrence_id, PostOccurrence.state == "scheduled")
        .values(state=state, error=error, snapshot=frozen, dispatched_at=now)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return 0
    written, ready = 0, []
    if state in ("dispatched", "missed"):
        written, ready = _write_deliveries(
            post, occurrence, now=now, state="pending" if state == "dispatched" else "missed"
        )
        db.session.execute(
            update(PostOccurrence).where(PostOccurrence.id == occurrence_id).values(deliveries_count=written)
        )
    plan_post(post, now=now)
    db.session.commit()
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
    _hand_to_rq(sorted(ready))
    return written


def _write_deliveries(post: Post, occurrence: PostOccurrence, *, now: datetime, state: str) -> tuple[int, list[int]]:
    """Insert the occurrence's deliveries in bulk; returns how many rows and the ids ready for RQ."""
    targets = post_targets(post)
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
    error = "" if state == "pending" else "scheduler was down past the grace period"
    written, ready = 0, []
    queued_at = now if state == "pending" else None
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
        columns = [
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
        inserted = list(
            db.session.scalars(_insert_ignoring_conflicts(Delivery).from_select(columns, rows).returning(Delivery.id))
        )
        written += len(inserted)
        if state == "pending":
            ready += inserted
        written += _refuse_over_quota(post, occurrence, target_select, now=now)
    return written, ready


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
    released = db.session.execute(
        update(Delivery)
        .where(Delivery.state == "failed", Delivery.available_at <= now)
        .values(state="pending", queued_at=None, updated_at=now)
    ).rowcount
    db.session.commit()
    return released


def enqueue_ready(limit: int = 50_000) -> int:
    """Mark ready pending deliveries as queued and put them on RQ in chunks; returns how many."""
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
    db.session.commit()
    _hand_to_rq(ids)
    return len(ids)


def _hand_to_rq(ids: list[int]) -> None:
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


def _wait_for_imminent() -> None:
    """Sleep until an occurrence due within the next tick, so it goes out on its second, not up to a tick late."""
    now = now_utc()
    next_due = db.session.scalar(select(func.min(PostOccurrence.due_at)).where(PostOccurrence.state == "scheduled"))
    db.session.rollback()
    if next_due is not None and now < next_due <= now + TICK:
        time.sleep((next_due - now).total_seconds())


def tick() -> None:
    """The scheduler's heartbeat for deliveries: dispatch what is due, release retries, hand work to RQ."""
    _wait_for_imminent()
    dispatch_due()
    release_retries()
    enqueue_ready()


# -- sending -----------------------------------------------------------------------------------------------


def _http_session():
    session = current_app.extensions.get("delivery_http")
    if session is None:
        session = channels.new_http_session(current_app.config["DELIVERY_SEND_CONCURRENCY"])
        if current_app.config["WECHAT_SANDBOX"]:
            from app.core.config import SANDBOX_BASE_URL
            from app.wechat.sandbox import mount_in_process

            mount_in_process(session, SANDBOX_BASE_URL, current_app._get_current_object())
        current_app.extensions["delivery_http"] = session
    return session


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_MAX, BACKOFF_BASE * (2 ** max(0, attempts - 1)))


def send_chunk(delivery_ids: list[int]) -> dict[str, int]:
    """Send a chunk of deliveries (an RQ job; safe to run twice); returns counts per outcome."""
    now = now_utc()
    rows = list(
        db.session.execute(
            select(
                Delivery.id,
                Delivery.group_id,
                Delivery.occurrence_id,
                Delivery.channel,
                Delivery.attempts,
                Delivery.manual_retries,
                Delivery.due_at,
                Delivery.available_at,
            ).where(Delivery.id.in_(delivery_ids), Delivery.state == "pending")
        )
    )
    counts: dict[str, int] = {}
    late = [r.id for r in rows if r.attempts == 0 and r.manual_retries == 0 and now - r.due_at > misfire_grace()]
    if late:
        counts["missed"] = db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(late), Delivery.state == "pending")
            .values(
                state="missed",
                error_code="misfire",
                error_message="not sent within the grace period after its time",
                finished_at=now,
                updated_at=now,
            )
        ).rowcount
    rows = [r for r in rows if r.id not in set(late) and r.available_at <= now]
    targets = groups.delivery_targets(group_ids=list({r.group_id for r in rows}))
    rows = [r for r in rows if r.group_id in targets]
    robots = {
        r.id: channels.robot_id(targets[r.group_id].credentials.get("webhook_key", ""))
        for r in rows
        if r.channel == "wecom_webhook"
    }
    limiter = channels.RobotLimiter(get_redis())
    waits = dict(zip(robots, limiter.take_many(list(robots.values()))))
    for delivery_id, wait_ms in waits.items():
        if wait_ms:
            _defer(delivery_id, now=now, wait_ms=wait_ms, state="pending", reason="rate limit held back")
            counts["deferred"] = counts.get("deferred", 0) + 1
    go = [r.id for r in rows if not waits.get(r.id)]
    claimed = (
        set(
            db.session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(go), Delivery.state == "pending")
                .values(state="sending", attempts=Delivery.attempts + 1, sending_at=now, updated_at=now)
                .returning(Delivery.id)
            )
        )
        if go
        else set()
    )
    db.session.commit()
    rows = [r for r in rows if r.id in claimed]
    frozen = (
        dict(
            db.session.execute(
                select(PostOccurrence.id, PostOccurrence.snapshot).where(
                    PostOccurrence.id.in_({r.occurrence_id for r in rows})
                )
            ).all()
        )
        if rows
        else {}
    )
    outcomes: dict[int, channels.Outcome] = {}
    payloads: dict[int, dict] = {}
    for r in rows:
        target = targets[r.group_id]
        try:
            payloads[r.id] = kinds.render(
                frozen[r.occurrence_id],
                channel=r.channel,
                group_id=r.group_id,
                host_id=target.host_id,
                credentials=target.credentials,
            )
        except kinds.Skip as skip:
            outcomes[r.id] = channels.Outcome("skipped", error_code=skip.code, error_message=skip.reason)
        except ApiError as exc:
            db.session.rollback()
            outcomes[r.id] = channels.Outcome("dead", error_code=exc.code, error_message=exc.message[:500])
    sendable = [r for r in rows if r.id in payloads]
    robot_rows = [r for r in sendable if r.channel == "wecom_webhook"]
    if robot_rows:
        session, url = _http_session(), current_app.config["WECOM_WEBHOOK_URL"]
        timeout = current_app.config["WECHAT_TIMEOUT_SECONDS"]
        with ThreadPoolExecutor(
            max_workers=min(len(robot_rows), current_app.config["DELIVERY_SEND_CONCURRENCY"])
        ) as pool:
            results = pool.map(
                lambda r: channels.send_robot(
                    session,
                    url=url,
                    payload=payloads[r.id],
                    timeout=timeout,
                    webhook_key=targets[r.group_id].credentials["webhook_key"],
                ),
                robot_rows,
            )
            outcomes.update(zip((r.id for r in robot_rows), results))
    for r in sendable:
        if r.channel == CUSTOMER_GROUP:
            outcomes[r.id] = channels.send_customer_group(clients().wecom, payload=payloads[r.id])
        elif r.channel == "sandbox":
            db.session.execute(
                _insert_ignoring_conflicts(SandboxMessage).values(
                    delivery_id=r.id, group_id=r.group_id, payload=payloads[r.id], created_at=now
                )
            )
            outcomes[r.id] = SENT
    finished = now_utc()
    plain_sent = [r.id for r in rows if outcomes[r.id] == SENT]
    if plain_sent:
        db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(plain_sent), Delivery.state == "sending")
            .values(state="sent", error_code=None, error_message="", finished_at=finished, updated_at=finished)
        )
    for r in rows:
        outcome = outcomes[r.id]
        if outcome.state == "deferred":
            limiter.cool_down(robots[r.id])
        if outcome != SENT:
            _record(r.id, outcome, attempts=r.attempts + 1, now=finished)
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    db.session.commit()
    log.info("sent chunk of %d: %s", len(delivery_ids), counts)
    return counts


def _defer(
    delivery_id: int,
    *,
    now: datetime,
    wait_ms: int,
    state: str,
    reason: str,
    from_state: str = "pending",
    undo_attempt: bool = False,
) -> None:
    values = {
        "state": state,
        "queued_at": None,
        "available_at": now + timedelta(milliseconds=wait_ms),
        "updated_at": now,
        "error_message": reason,
    }
    if undo_attempt:
        values["attempts"] = Delivery.attempts - 1
    db.session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.state == from_state).values(**values)
    )


def _record(delivery_id: int, outcome: channels.Outcome, *, attempts: int, now: datetime) -> None:
    """Write a send's outcome, only onto a delivery this worker still holds (sending)."""
    if outcome.state == "deferred":
        _defer(
            delivery_id,
            now=now,
            wait_ms=outcome.retry_after_ms,
            state="pending",
            from_state="sending",
            undo_attempt=True,
            reason=f"WeCom {outcome.error_code}: cooling down ({outcome.error_message})",
        )
        return
    state = outcome.state
    values = {
        "state": state,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "updated_at": now,
    }
    if state == "failed" and attempts >= MAX_ATTEMPTS:
        values["state"] = "dead"
    if values["state"] == "failed":
        values["available_at"] = now + _backoff(attempts)
    if state in ("sent", "submitted"):
        values["external_id"] = outcome.external_id
    if values["state"] in ("sent", "dead", "unknown", "skipped"):
        values["finished_at"] = now
    db.session.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "sending").values(**values))


# -- reconciling -------------------------------------------------------------------------------------------


def reconcile() -> dict[str, int]:
    """Stuck sends become unknown; pending deliveries whose job was lost are handed over again; plans refresh."""
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
    db.session.commit()
    planned = plan_all()
    return {"unknown": unknown, "requeued": requeued, "planned": planned}


def poll_customer_groups() -> dict[str, int]:
    """Ask WeCom how submitted mass messages went (the host confirms in WeCom) and settle their deliveries."""
    now = now_utc()
    rows = list(
        db.session.execute(
            select(Delivery.id, Delivery.group_id, Delivery.external_id, Delivery.sending_at)
            .where(Delivery.state == "submitted")
            .order_by(Delivery.id)
            .limit(500)
        )
    )
    targets = groups.delivery_targets(group_ids=list({r.group_id for r in rows}))
    counts: dict[str, int] = {}
    by_msg: dict[tuple[str, str], list] = {}
    for r in rows:
        if r.group_id in targets:
            by_msg.setdefault((r.external_id, targets[r.group_id].credentials["sender"]), []).append(r)
    for (msgid, sender), members in by_msg.items():
        try:
            result = clients().wecom.post(
                "externalcontact/get_groupmsg_send_result", data={"msgid": msgid, "userid": sender, "limit": 1000}
            )
        except (WeChatClientException, requests.RequestException) as exc:
            log.warning("group message result for %s unavailable: %s", msgid, exc)
            continue
        status = {item.get("chat_id"): item.get("status") for item in result.get("send_list", [])}
        for r in members:
            chat_status = status.get(targets[r.group_id].credentials["chat_id"], 0)
            if chat_status == 1:
                state, code, message = "sent", None, ""
            elif chat_status in (2, 3):
                state, code = "dead", {2: "not_a_friend", 3: "already_received"}[chat_status]
                message = {
                    2: "the group is no longer the host's customer group",
                    3: "the group already received a mass message today",
                }[chat_status]
            elif r.sending_at and now - r.sending_at > CONFIRMATION_WINDOW:
                state, code, message = "dead", "not_confirmed", "the host did not confirm the mass message in WeCom"
            else:
                continue
            counts[state] = (
                counts.get(state, 0)
                + db.session.execute(
                    update(Delivery)
                    .where(Delivery.id == r.id, Delivery.state == "submitted")
                    .values(state=state, error_code=code, error_message=message, finished_at=now, updated_at=now)
                ).rowcount
            )
    db.session.commit()
    return counts
