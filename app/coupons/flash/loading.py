"""Building a template's gate from the database, and reconciling the two after crashes (and on a schedule).

The database stays the truth: `load_gate` writes a gate from the template's rows plus the claim stream's
entries not landed yet (in flight). `reconcile` (CLI, and every minute) lands the stream, repairs a
template's counter from its rows and rebuilds each live gate.
"""

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update

from app.core.clock import now_utc
from app.core.db import db, use_case
from app.core.http import MAX_ID
from app.core.jobs import batch_job
from app.core.redis import get_redis, key
from app.coupons.flash import drain, gate, id_pool
from app.coupons.models import CouponTemplate, UserCoupon

log = logging.getLogger(__name__)

LOAD_LOCK_SECONDS = 10
# Well inside the load lock; a drain batch takes well under a second.
LOAD_DRAIN_WAIT_SECONDS = 5
RECONCILE_DRAIN_SECONDS = 30


@dataclass(frozen=True)
class ReconcileReport:
    template_id: int
    claimed: int
    stock: int
    gate_remaining: int | None
    in_flight: int
    refused: int
    db_repaired: bool


def load_gate(*, template_id: int, only_if_missing: bool = False) -> bool:
    """(Re)build a template's gate from the database; one process at a time. Returns whether it ran."""
    redis = get_redis()
    lock = key("coupon-gate-load", template_id)
    if not redis.set(lock, 1, nx=True, ex=LOAD_LOCK_SECONDS):
        return False
    try:
        if only_if_missing and gate.state(template_id=template_id) is not None:
            return True
        id_pool.top_up()
        return _rebuild(template_id, wait_seconds=LOAD_DRAIN_WAIT_SECONDS) is not None
    finally:
        redis.delete(lock)


def _rebuild(template_id: int, *, wait_seconds: float) -> tuple[int, int] | None:
    """Rewrite the gate from the rows plus the stream's entries not landed yet; returns (remaining, in flight).

    None when a drain still runs after `wait_seconds`: no drain may land (and delete) an entry between
    the rows' count and the stream's, or the entry would be in neither and the gate would grant it again.
    """
    with drain.held_off(wait_seconds=wait_seconds) as held:
        return _rebuild_held(template_id) if held else None


def _rebuild_held(template_id: int) -> tuple[int, int]:
    template = db.session.get(CouponTemplate, template_id, populate_existing=True)
    # Order matters: first which of the stream's entries the database holds, then the counts. An entry
    # the drain had landed but not yet deleted is counted twice (the gate refuses one claim too many
    # until the next reconcile), never not at all (the gate would grant beyond the stock).
    in_stream = gate.in_flight(template_id=template_id)
    landed = []
    for start in range(0, len(in_stream), 500):
        landed += db.session.scalars(
            select(UserCoupon.gate_grant).where(UserCoupon.gate_grant.in_(in_stream[start : start + 500]))
        ).all()
    user_counts = dict(
        db.session.execute(
            select(UserCoupon.user_id, func.count())
            .where(UserCoupon.template_id == template_id)
            .group_by(UserCoupon.user_id)
        ).all()
    )
    day, today = gate.claim_day(now_utc())
    day_counts = {}
    if template.per_day_limit:
        day_counts = dict(
            db.session.execute(
                select(UserCoupon.user_id, func.count())
                .where(UserCoupon.template_id == template_id, UserCoupon.claim_day == day)
                .group_by(UserCoupon.user_id)
            ).all()
        )
    ends = template.claim_ends_at if template.valid_until is None else min(template.claim_ends_at, template.valid_until)
    state = template.status if template.status in ("paused", "ended") else "active"
    remaining, in_flight, over = gate.rebuild(
        template_id=template_id,
        remaining=template.stock - sum(user_counts.values()),
        state=state,
        starts_ms=int(template.claim_starts_at.timestamp() * 1000),
        ends_ms=int(ends.timestamp() * 1000),
        per_user_limit=template.per_user_limit,
        per_day_limit=template.per_day_limit or 0,
        today=today,
        token=uuid.uuid4().hex,
        landed_grants=landed,
        user_counts=user_counts,
        day_counts=day_counts,
    )
    if over:
        log.error("coupon template %s: %s grant(s) in flight beyond the stock", template_id, over)
    # A pause or an end that committed since the read above closed (or dropped) the gate before this write.
    status = db.session.scalar(select(CouponTemplate.status).where(CouponTemplate.id == template_id))
    if status == "ended" and state != "ended":
        gate.drop(template_id=template_id)
    elif status == "paused" and state == "active":
        gate.close(template_id=template_id, state="paused")
    return remaining, in_flight


def _repair_counter(template_id: int) -> bool:
    """Set the claimed counter to the rows' count, should they ever disagree (the rows win): a use case of its own."""
    with use_case():
        # The row lock first: a claim or drain committing meanwhile is then either counted or still to come.
        db.session.execute(select(CouponTemplate.id).where(CouponTemplate.id == template_id).with_for_update())
        rows = db.session.scalar(
            select(func.count()).select_from(UserCoupon).where(UserCoupon.template_id == template_id)
        )
        repaired = (
            db.session.execute(
                update(CouponTemplate)
                .where(CouponTemplate.id == template_id, CouponTemplate.claimed != rows)
                .values(claimed=rows)
                .execution_options(synchronize_session=False)
            ).rowcount
            > 0
        )
    if repaired:
        log.error("coupon template %s: claimed counter disagreed with its rows; set to %s", template_id, rows)
    return repaired


@batch_job
def reconcile(*, template_id: int | None = None) -> list[ReconcileReport]:
    """Make Redis and the database agree for live Redis-gated templates (after a crash, and on a schedule).

    The drain lands the stream a batch per use case, then each template's counter is repaired in a use case of
    its own before its gate is rebuilt.
    """
    drain.drain(wait_seconds=RECONCILE_DRAIN_SECONDS)
    stmt = select(CouponTemplate.id).where(
        CouponTemplate.status.in_(("active", "paused")), CouponTemplate.claim_gate == "redis"
    )
    if template_id is not None:
        stmt = select(CouponTemplate.id).where(CouponTemplate.id == template_id) if 0 < template_id <= MAX_ID else None
    reports = []
    for tid in db.session.scalars(stmt).all() if stmt is not None else []:
        repaired = _repair_counter(tid)
        template = db.session.get(CouponTemplate, tid, populate_existing=True)
        refused = len(gate.refused(template_id=tid))
        if refused:
            log.error(
                "coupon template %s: %s granted claim(s) refused by the database (see the refused stream)", tid, refused
            )
        if template.status not in ("active", "paused") or template.claim_gate != "redis":
            gate.drop(template_id=tid)
            reports.append(
                ReconcileReport(
                    tid, template.claimed, template.stock, None, len(gate.in_flight(template_id=tid)), refused, repaired
                )
            )
            continue
        rebuilt = _rebuild(tid, wait_seconds=RECONCILE_DRAIN_SECONDS)
        if rebuilt is None:
            log.error(
                "coupon template %s: a drain ran for %ss; its gate is rebuilt next time", tid, RECONCILE_DRAIN_SECONDS
            )
        remaining, in_flight = rebuilt or (None, len(gate.in_flight(template_id=tid)))
        reports.append(ReconcileReport(tid, template.claimed, template.stock, remaining, in_flight, refused, repaired))
    return reports


@batch_job
def reconcile_all() -> int:
    """The scheduled reconcile."""
    return len(reconcile())
