"""Claiming coupons: the Redis gate in front, the database as the truth, and reconciliation after crashes.

A claim is told "claimed" only after its row committed, so a told-claimed coupon can never be lost: the
database has it. What a crash can leave behind is a gate grant whose request died before committing; the
reconcile (`flask coupons reconcile`, also scheduled) gives such grants back once they are older than the
grace period (longer than any request can run) and rewrites the gate from the database.
"""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Conflict, NotFound
from app.core.redis import get_redis, key
from app.coupons import gate
from app.coupons.models import CouponShareCode, CouponTemplate, UserCoupon
from app.coupons.templates import MAX_ID, claim_window_state, get_template

log = logging.getLogger(__name__)

REFUSALS = {
    "out_of_stock": ("All coupons of this drop have been claimed.", "coupon_out_of_stock"),
    "limit_reached": ("You already hold as many of these coupons as one person may claim.", "coupon_limit_reached"),
    "daily_limit_reached": ("You claimed as many of these as one person may today; come back tomorrow.",
                            "coupon_daily_limit_reached"),
    "not_started": ("This coupon cannot be claimed yet.", "coupon_not_started"),
    "ended": ("Claiming this coupon has ended.", "coupon_ended"),
    "paused": ("Claiming this coupon is paused.", "coupon_paused"),
}
SEQ_RETRIES = 3
LOAD_LOCK_SECONDS = 10


@dataclass(frozen=True)
class Origin:
    share_code: str | None = None
    sharer_id: int | None = None
    group_id: int | None = None
    post_id: int | None = None


@dataclass(frozen=True)
class ReconcileReport:
    template_id: int
    claimed: int
    stock: int
    gate_remaining: int | None
    in_flight_kept: int
    grants_dropped: int
    db_repaired: bool


def refusal(reason: str, **details) -> Conflict:
    message, code = REFUSALS[reason]
    return Conflict(message, code=code, errors=details or None)


def claim_day(at: datetime) -> tuple[datetime, str]:
    """The calendar day (in the coupon zone, China by default) that per-day limits count in."""
    local = at.astimezone(ZoneInfo(current_app.config.get("COUPON_DAY_TIMEZONE", "Asia/Shanghai")))
    return local.date(), local.strftime("%Y%m%d")


def _grace_seconds() -> float:
    return float(current_app.config.get("COUPON_GATE_GRACE_SECONDS", 120))


def _origin(template: CouponTemplate, *, share_code: str | None, group_id: int | None, post_id: int | None) -> Origin:
    if not share_code:
        return Origin(group_id=group_id, post_id=post_id)
    card = db.session.scalar(select(CouponShareCode).where(CouponShareCode.code == share_code.strip().upper()))
    if card is None or card.template_id != template.id:
        raise NotFound("This share code is not one of this coupon's cards.", code="share_code_not_found")
    return Origin(share_code=card.code, sharer_id=card.sharer_id, group_id=card.group_id, post_id=card.post_id)


def _validity(template: CouponTemplate, at: datetime) -> tuple[datetime, datetime]:
    if template.validity_kind == "window":
        return template.valid_from, template.valid_until
    return at, at + timedelta(days=template.valid_days)


def _insert_claim(template: CouponTemplate, *, user_id: int, at: datetime, origin: Origin, grant: gate.Grant | None,
                  claim_key: str | None):
    """Insert the claim row under its (template, user, seq) key; returns the row or the refusal reason."""
    day, _ = claim_day(at)
    valid_from, valid_until = _validity(template, at)
    for _ in range(SEQ_RETRIES):
        held = db.session.scalar(select(func.count()).select_from(UserCoupon)
                                 .where(UserCoupon.template_id == template.id, UserCoupon.user_id == user_id))
        if held >= template.per_user_limit:
            return None, "limit_reached", held
        day_seq = None
        if template.per_day_limit:
            today = db.session.scalar(select(func.count()).select_from(UserCoupon).where(
                UserCoupon.template_id == template.id, UserCoupon.user_id == user_id, UserCoupon.claim_day == day))
            if today >= template.per_day_limit:
                return None, "daily_limit_reached", held
            day_seq = today + 1
        coupon = UserCoupon(template_id=template.id, user_id=user_id, seq=held + 1,
                            claim_day=day if template.per_day_limit else None, day_seq=day_seq,
                            gate_grant=grant.id if grant else None, claim_key=claim_key or None, status="available", valid_from=valid_from,
                            valid_until=valid_until, claimed_at=at, origin_share_code=origin.share_code,
                            origin_sharer_id=origin.sharer_id, origin_group_id=origin.group_id,
                            origin_post_id=origin.post_id)
        try:
            with db.session.begin_nested():
                db.session.add(coupon)
        except IntegrityError:
            # The same user claiming twice at once: the other request holds this seq; count again.
            continue
        return coupon, None, held + 1
    return None, "limit_reached", template.per_user_limit


def _take_stock(template: CouponTemplate) -> bool:
    """The conditional stock update: the single statement that makes overselling impossible."""
    return db.session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == template.id, CouponTemplate.status == "active",
               CouponTemplate.claimed < CouponTemplate.stock)
        .values(claimed=CouponTemplate.claimed + 1).execution_options(synchronize_session=False)
    ).rowcount == 1


def _ask_gate(template: CouponTemplate, *, user_id: int, day_key: str, request_key: str | None) -> gate.Grant | None:
    """Ask the Redis gate; None means 'go straight to the database' (the gate is being loaded elsewhere)."""
    args = dict(template_id=template.id, user_id=user_id, per_user_limit=template.per_user_limit,
                day=day_key if template.per_day_limit else "", per_day_limit=template.per_day_limit or 0,
                request_key=request_key)
    outcome, grant = gate.try_claim(**args)
    if outcome == "missing":
        if not load_gate(template_id=template.id, only_if_missing=True):
            return None
        outcome, grant = gate.try_claim(**args)
    if outcome == "missing":
        return None
    if outcome != "granted":
        raise refusal(outcome)
    return grant


def fast_refusal(*, template_id: int, user_id: int, request_key: str | None) -> None:
    """Refuse a claim from Redis alone when the gate can tell (sold out, or the user at their limit)."""
    reason = gate.fast_refusal(template_id=template_id, user_id=user_id, request_key=request_key,
                               now_ms=int(now_utc().timestamp() * 1000))
    if reason:
        raise refusal(reason)


def claim(*, template_id: int, user_id: int, share_code: str | None = None, group_id: int | None = None,
          post_id: int | None = None, request_key: str | None = None) -> UserCoupon:
    """Claim one coupon of a template for a user; never beyond the stock or the user's limits.

    `request_key` is the request's Idempotency-Key, remembered (as a digest) so retries of a granted
    claim are never refused by the gate's fast path.
    """
    template = get_template(template_id=template_id)
    at = now_utc()
    state = claim_window_state(template, at)
    if state == "draft":
        raise NotFound("No such coupon.", code="coupon_not_found")
    if state != "claimable":
        raise refusal(state)
    origin = _origin(template, share_code=share_code, group_id=group_id, post_id=post_id)
    _, day_key = claim_day(at)
    grant = (_ask_gate(template, user_id=user_id, day_key=day_key, request_key=request_key)
             if template.claim_gate == "redis" else None)
    try:
        coupon, reason, held = _insert_claim(template, user_id=user_id, at=at, origin=origin, grant=grant,
                                             claim_key=gate.key_hash(request_key))
        if coupon is None:
            raise refusal(reason)
        if not _take_stock(template):
            current = db.session.get(CouponTemplate, template_id, populate_existing=True)
            reason = "out_of_stock" if current.status == "active" else ("paused" if current.status == "paused" else "ended")
            raise refusal(reason)
        db.session.commit()
    except Conflict as exc:
        db.session.rollback()
        if grant is not None:
            pins = {"coupon_out_of_stock": ("sold_out", 0), "coupon_limit_reached": ("limit", template.per_user_limit)}
            reason, count = pins.get(exc.code, ("", 0))
            gate.release(grant, reason=reason, user_count=count)
        raise
    except BaseException:
        db.session.rollback()
        if grant is not None:
            gate.release(grant)
        raise
    if grant is not None:
        gate.settle(grant)
    return coupon


def load_gate(*, template_id: int, only_if_missing: bool = False, grace_seconds: float | None = None) -> bool:
    """(Re)build a template's gate from the database; one process at a time. Returns whether it ran."""
    redis = get_redis()
    lock = key("coupon-gate-load", template_id)
    if not redis.set(lock, 1, nx=True, ex=LOAD_LOCK_SECONDS):
        return False
    try:
        if only_if_missing and gate.snapshot(template_id=template_id) is not None:
            return True
        _rebuild(template_id, _grace_seconds() if grace_seconds is None else grace_seconds)
        return True
    finally:
        redis.delete(lock)


def _rebuild(template_id: int, grace_seconds: float) -> tuple[int, int, int]:
    template = db.session.get(CouponTemplate, template_id, populate_existing=True)
    # Order matters: counts first, then the in-flight list, then which of those committed. A grant
    # committing in between is then counted at most once (or not at all: the gate admits one too many
    # and the database refuses it), never twice (which would refuse a coupon the database still has).
    user_counts: dict[int, int] = {}
    user_keys: dict[int, list[str]] = {}
    for user_id, claim_key in db.session.execute(select(UserCoupon.user_id, UserCoupon.claim_key).where(
            UserCoupon.template_id == template_id)):
        user_counts[user_id] = user_counts.get(user_id, 0) + 1
        if claim_key:
            user_keys.setdefault(user_id, []).append(claim_key)
    day, day_key = claim_day(now_utc())
    day_counts = {}
    if template.per_day_limit:
        day_counts = dict(db.session.execute(select(UserCoupon.user_id, func.count()).where(
            UserCoupon.template_id == template_id, UserCoupon.claim_day == day).group_by(UserCoupon.user_id)).all())
    total = sum(user_counts.values())
    in_flight = gate.in_flight(template_id=template_id)
    committed = []
    for start in range(0, len(in_flight), 500):
        chunk = in_flight[start:start + 500]
        committed += db.session.scalars(select(UserCoupon.gate_grant).where(UserCoupon.gate_grant.in_(chunk))).all()
    ends = template.claim_ends_at if template.valid_until is None else min(template.claim_ends_at, template.valid_until)
    return gate.rebuild(template_id=template_id, remaining=max(0, template.stock - total), user_counts=user_counts,
                        day=day_key, day_counts=day_counts, user_keys=user_keys, committed_grants=committed,
                        grace_seconds=grace_seconds, is_open=template.status == "active",
                        starts_ms=int(template.claim_starts_at.timestamp() * 1000), ends_ms=int(ends.timestamp() * 1000),
                        per_user_limit=template.per_user_limit)


def reconcile(*, template_id: int | None = None, grace_seconds: float | None = None) -> list[ReconcileReport]:
    """Make Redis agree with the database for live Redis-gated templates (after a crash, and on a schedule)."""
    grace = _grace_seconds() if grace_seconds is None else grace_seconds
    stmt = select(CouponTemplate.id).where(CouponTemplate.status.in_(("active", "paused")),
                                           CouponTemplate.claim_gate == "redis")
    if template_id is not None:
        stmt = select(CouponTemplate.id).where(CouponTemplate.id == template_id) if 0 < template_id <= MAX_ID else None
    ids = db.session.scalars(stmt).all() if stmt is not None else []
    reports = []
    for tid in ids:
        rows = db.session.scalar(select(func.count()).select_from(UserCoupon).where(UserCoupon.template_id == tid))
        # The counter and the rows change in one transaction; should they ever disagree, the rows win.
        repaired = db.session.execute(
            update(CouponTemplate).where(CouponTemplate.id == tid, CouponTemplate.claimed != rows)
            .values(claimed=rows).execution_options(synchronize_session=False)).rowcount > 0
        db.session.commit()
        if repaired:
            log.error("coupon template %s: claimed counter disagreed with its rows; set to %s", tid, rows)
        template = db.session.get(CouponTemplate, tid, populate_existing=True)
        if template.status not in ("active", "paused") or template.claim_gate != "redis":
            gate.drop(template_id=tid)
            reports.append(ReconcileReport(tid, template.claimed, template.stock, None, 0, 0, repaired))
            continue
        remaining, kept, dropped = _rebuild(tid, grace)
        reports.append(ReconcileReport(tid, template.claimed, template.stock, remaining, kept, dropped, repaired))
    return reports


def reconcile_all() -> int:
    """The scheduled reconcile (in-flight grants keep their grace)."""
    return len(reconcile())


def claimable_templates(*, cursor: str | None, limit: int) -> tuple[list[CouponTemplate], str | None]:
    """Live templates a mom could claim now or soon (the coupon centre)."""
    from app.core.pagination import keyset_page

    at = now_utc()
    stmt = select(CouponTemplate).where(CouponTemplate.status == "active", CouponTemplate.claim_ends_at > at)
    return keyset_page(stmt, columns=[CouponTemplate.id], kinds=[int], cursor=cursor, limit=limit,
                       key_of=lambda t: (t.id,), session=db.session)
