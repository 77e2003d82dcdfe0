"""The fan-out engine's worker side: send a chunk of deliveries in named steps, and settle customer-group messages.

A chunk goes through `claim` (committed before anything leaves, so a crash mid-send leaves `sending` for the
reconciler), `render` (reads only: every payload comes from its occurrence's snapshot), `send` (robots
concurrently, customer groups through WeCom; nothing written) and `record` (the outcomes, only onto rows still
`sending`). `app.delivery.tasks.send_chunk` runs each step in its own transaction.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from flask import current_app
from sqlalchemy import Row, select, update
from wechatpy.exceptions import WeChatClientException

from app.core.clock import now_utc
from app.core.db import db, upsert_insert
from app.core.errors import ApiError
from app.core.redis import get_redis
from app.delivery import channels, kinds
from app.delivery.channels import CUSTOMER_GROUP, ROBOT, SANDBOX
from app.delivery.engine import misfire_grace
from app.delivery.models import Delivery, PostOccurrence, SandboxMessage
from app.groups import service as groups
from app.groups.service import DeliveryTarget
from app.wechat import service as wechat

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)
CONFIRMATION_WINDOW = timedelta(days=3)
SENT = channels.Outcome("sent")


@dataclass
class Chunk:
    """A chunk of deliveries on its way: what was claimed, what each renders to, and each outcome."""

    now: datetime
    requested: int
    claimed: list[Row] = field(default_factory=list)
    targets: dict[int, DeliveryTarget] = field(default_factory=dict)
    robots: dict[int, str] = field(default_factory=dict)
    payloads: dict[int, dict] = field(default_factory=dict)
    outcomes: dict[int, channels.Outcome] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, state: str, n: int = 1) -> None:
        self.counts[state] = self.counts.get(state, 0) + n


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_MAX, BACKOFF_BASE * (2 ** max(0, attempts - 1)))


def claim(delivery_ids: list[int]) -> Chunk:
    """Step 1: late first attempts become missed, robots over their limit wait, the rest move pending → sending.

    A job run twice claims nothing the second time: only the worker whose update moved a row may send it.
    """
    chunk = Chunk(now=now_utc(), requested=len(delivery_ids))
    now = chunk.now
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
    late = {r.id for r in rows if r.attempts == 0 and r.manual_retries == 0 and now - r.due_at > misfire_grace()}
    if late:
        chunk.count(
            "missed",
            db.session.execute(
                update(Delivery)
                .where(Delivery.id.in_(late), Delivery.state == "pending")
                .values(
                    state="missed",
                    error_code="misfire",
                    error_message="not sent within the grace period after its time",
                    finished_at=now,
                    updated_at=now,
                )
            ).rowcount,
        )
    rows = [r for r in rows if r.id not in late and r.available_at <= now]
    chunk.targets = groups.delivery_targets(group_ids=list({r.group_id for r in rows}))
    rows = [r for r in rows if r.group_id in chunk.targets]
    robots = {
        r.id: channels.robot_id(chunk.targets[r.group_id].credentials.get("webhook_key", ""))
        for r in rows
        if r.channel == ROBOT
    }
    waits = dict(zip(robots, channels.RobotLimiter(get_redis()).take_many(list(robots.values()))))
    for delivery_id, wait_ms in waits.items():
        if wait_ms:
            _defer(delivery_id, now=now, wait_ms=wait_ms, reason="rate limit held back")
            chunk.count("deferred")
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
    chunk.claimed = [r for r in rows if r.id in claimed]
    chunk.robots = {i: robot for i, robot in robots.items() if i in claimed}
    return chunk


def render(chunk: Chunk) -> None:
    """Step 2: each claimed delivery's payload from its occurrence's snapshot (reads only; a refusal is final)."""
    if not chunk.claimed:
        return
    snapshots = dict(
        db.session.execute(
            select(PostOccurrence.id, PostOccurrence.snapshot).where(
                PostOccurrence.id.in_({r.occurrence_id for r in chunk.claimed})
            )
        ).all()
    )
    for r in chunk.claimed:
        try:
            chunk.payloads[r.id] = kinds.render(
                snapshots[r.occurrence_id],
                channel=r.channel,
                group_id=r.group_id,
                credentials=chunk.targets[r.group_id].credentials,
            )
        except ApiError as exc:
            chunk.outcomes[r.id] = channels.Outcome("dead", error_code=exc.code, error_message=exc.message[:500])


def _http_session():
    session = current_app.extensions.get("delivery_http")
    if session is None:
        session = channels.new_http_session(current_app.config["DELIVERY_SEND_CONCURRENCY"])
        current_app.extensions["delivery_http"] = session
    return session


def send(chunk: Chunk) -> None:
    """Step 3: robots concurrently, then customer groups; sandbox groups are recorded in `record`. Writes nothing."""
    sendable = [r for r in chunk.claimed if r.id in chunk.payloads]
    robot_rows = [r for r in sendable if r.channel == ROBOT]
    if robot_rows:
        session, url = _http_session(), current_app.config["WECOM_WEBHOOK_URL"]
        timeout = current_app.config["WECHAT_TIMEOUT_SECONDS"]
        workers = min(len(robot_rows), current_app.config["DELIVERY_SEND_CONCURRENCY"])
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(
                lambda r: channels.send_robot(
                    session,
                    url=url,
                    payload=chunk.payloads[r.id],
                    timeout=timeout,
                    webhook_key=chunk.targets[r.group_id].credentials["webhook_key"],
                ),
                robot_rows,
            )
            chunk.outcomes.update(zip((r.id for r in robot_rows), results))
    for r in sendable:
        if r.channel == CUSTOMER_GROUP:
            chunk.outcomes[r.id] = channels.send_customer_group(payload=chunk.payloads[r.id])


def record(chunk: Chunk) -> dict[str, int]:
    """Step 4: sandbox groups get their message, and every outcome lands on rows this worker still holds."""
    finished = now_utc()
    for r in chunk.claimed:
        if r.channel == SANDBOX and r.id in chunk.payloads:
            db.session.execute(
                upsert_insert(SandboxMessage)
                .values(delivery_id=r.id, group_id=r.group_id, payload=chunk.payloads[r.id], created_at=chunk.now)
                .on_conflict_do_nothing()
            )
            chunk.outcomes[r.id] = SENT
    plain_sent = [r.id for r in chunk.claimed if chunk.outcomes[r.id] == SENT]
    if plain_sent:
        db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(plain_sent), Delivery.state == "sending")
            .values(state="sent", error_code=None, error_message="", finished_at=finished, updated_at=finished)
        )
    limiter = channels.RobotLimiter(get_redis())
    for r in chunk.claimed:
        outcome = chunk.outcomes[r.id]
        if outcome.state == "deferred":
            limiter.cool_down(chunk.robots[r.id])
        if outcome != SENT:
            _record(r.id, outcome, attempts=r.attempts + 1, now=finished)
        chunk.count(outcome.state)
    log.info("sent chunk of %d: %s", chunk.requested, chunk.counts)
    return chunk.counts


def _defer(
    delivery_id: int,
    *,
    now: datetime,
    wait_ms: int,
    reason: str,
    from_state: str = "pending",
    undo_attempt: bool = False,
) -> None:
    """Back to pending, not before `wait_ms` from now (rate limits are no failure: the attempt is given back)."""
    values = {
        "state": "pending",
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


# -- customer groups ---------------------------------------------------------------------------------------

GROUP_STATUS = {  # WeCom's per-group status of a mass message → (state, code, message); 0 is "not sent yet"
    1: ("sent", None, ""),
    2: ("dead", "not_a_friend", "the group is no longer the host's customer group"),
    3: ("dead", "already_received", "the group already received a mass message today"),
}


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
            result = wechat.group_mass_message_result(msgid=msgid, sender=sender)
        except (WeChatClientException, requests.RequestException) as exc:
            log.warning("group message result for %s unavailable: %s", msgid, exc)
            continue
        status = {item.get("chat_id"): item.get("status") for item in result.get("send_list", [])}
        for r in members:
            chat_status = status.get(targets[r.group_id].credentials["chat_id"], 0)
            if chat_status in GROUP_STATUS:
                state, code, message = GROUP_STATUS[chat_status]
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
    return counts
