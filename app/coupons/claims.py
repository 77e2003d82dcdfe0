"""Claiming coupons: two paths to one truth, and reconciliation after crashes.

Redis-gated templates (flash drops, the default): `claim_through_gate` decides a claim from Redis alone,
with no database statement on the way. One Lua call (see `gate`) checks the rules, takes stock, picks
the coupon's id from a pool reserved from the database sequence (`ids`), keeps the answer under the
request's Idempotency-Key and appends the grant to the claim stream. The answer is final the moment the
call returns; the drain (`drain`, every second) lands the stream in the database in batches, and reads
that must see a user's fresh coupons (her wallet, checkout) land her entries first. This path keeps its
Idempotency-Key records in Redis next to the gate (a retry replays the same coupon, the same key with
another request is 422); it never uses the database-backed `@idempotent`.

SQL-gated templates: `claim_in_sql`, one transaction with a unique claim row and a conditional stock
update (the comparison path, and fine for small coupons).

`reconcile` (CLI, and every minute) drains the stream, repairs a template's counter from its rows and
rebuilds each live gate from the database plus the entries still in the stream (in flight).
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.accounts.service import SessionFence
from app.core.access import SessionUnverified
from app.core.clock import now_utc
from app.core.db import commit, db
from app.core.errors import ApiError, Conflict, NotFound
from app.core.redis import get_redis, key
from app.coupons import drain, gate, ids
from app.coupons.models import CouponShareCode, CouponTemplate, UserCoupon
from app.coupons.templates import MAX_ID, claim_window_state, get_template

log = logging.getLogger(__name__)

REFUSALS = {
    "out_of_stock": ("All coupons of this drop have been claimed.", "coupon_out_of_stock"),
    "limit_reached": ("You already hold as many of these coupons as one person may claim.", "coupon_limit_reached"),
    "daily_limit_reached": (
        "You claimed as many of these as one person may today; come back tomorrow.",
        "coupon_daily_limit_reached",
    ),
    "not_started": ("This coupon cannot be claimed yet.", "coupon_not_started"),
    "ended": ("Claiming this coupon has ended.", "coupon_ended"),
    "paused": ("Claiming this coupon is paused.", "coupon_paused"),
}
SEQ_RETRIES = 3
GATE_RETRIES = 5
LOAD_LOCK_SECONDS = 10
# Well inside the load lock; a drain batch takes well under a second.
LOAD_DRAIN_WAIT_SECONDS = 5
RECONCILE_DRAIN_SECONDS = 30
CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class Origin:
    share_code: str | None = None
    sharer_id: int | None = None
    group_id: int | None = None
    post_id: int | None = None


@dataclass(frozen=True)
class TemplateFacts:
    """What a claim answer shows of its template; none of it changes once the template is live."""

    id: int
    name: str
    kind: str
    amount_off_fen: int
    threshold_fen: int
    percent_off_bp: int
    cap_fen: int
    scope: str
    validity_kind: str
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    token: str

    @classmethod
    def of(cls, template: CouponTemplate, token: str) -> "TemplateFacts":
        return cls(
            id=template.id,
            name=template.name,
            kind=template.kind,
            amount_off_fen=template.amount_off_fen,
            threshold_fen=template.threshold_fen,
            percent_off_bp=template.percent_off_bp,
            cap_fen=template.cap_fen,
            scope=template.scope,
            validity_kind=template.validity_kind,
            valid_from=template.valid_from,
            valid_until=template.valid_until,
            valid_days=template.valid_days,
            token=token,
        )


@dataclass(frozen=True)
class GrantedCoupon:
    """A coupon the gate granted, as its row will read once the drain has landed it (not an ORM object)."""

    id: int
    template_id: int
    user_id: int
    valid_from: datetime
    valid_until: datetime
    claimed_at: datetime
    origin_share_code: str | None
    origin_group_id: int | None
    origin_post_id: int | None
    status: str = "available"
    used_at: datetime | None = None
    reserved_order_id: int | None = None


@dataclass(frozen=True)
class Claimed:
    """A claim's answer. From the gate the coupon is not in the database yet (the drain lands it)."""

    coupon: GrantedCoupon
    template: TemplateFacts
    replayed: bool


@dataclass(frozen=True)
class ReconcileReport:
    template_id: int
    claimed: int
    stock: int
    gate_remaining: int | None
    in_flight: int
    refused: int
    db_repaired: bool


# Per process, read on every gated claim: rows that never change (share codes; live templates' facts,
# checked against the gate's token, which every rebuild renews).
_share_codes: dict[str, tuple[int, Origin]] = {}
_facts: dict[int, TemplateFacts] = {}
_claim_days: dict[str, tuple[datetime, datetime, date, str]] = {}


def refusal(reason: str, **details) -> Conflict:
    message, code = REFUSALS[reason]
    return Conflict(message, code=code, errors=details or None)


def claim_day(at: datetime) -> tuple[date, str]:
    """The calendar day (in the coupon zone, China by default) that per-day limits count in."""
    zone = current_app.config["COUPON_DAY_TIMEZONE"]
    known = _claim_days.get(zone)
    if known is not None and known[0] <= at < known[1]:
        return known[2], known[3]
    local = at.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Every claim of a drop asks: keep the day's bounds (aware arithmetic is wall-clock, so DST days fit).
    day = (
        midnight.astimezone(UTC),
        (midnight + timedelta(days=1)).astimezone(UTC),
        local.date(),
        local.strftime("%Y%m%d"),
    )
    _claim_days[zone] = day
    return day[2], day[3]


def _request_hash(template_id: int, *, share_code: str | None, group_id: int | None, post_id: int | None) -> str:
    """What an Idempotency-Key's claim was (one key, one request: the same key with another is refused)."""
    return hashlib.sha256(json.dumps([template_id, share_code, group_id, post_id]).encode()).hexdigest()[:32]


def key_digest(request_key: str | None) -> str:
    """A short digest of an Idempotency-Key, as claim rows and the gate's records keep it."""
    return hashlib.sha256(request_key.encode()).hexdigest()[:16] if request_key else ""


def _validity(template: CouponTemplate | TemplateFacts, at: datetime) -> tuple[datetime, datetime]:
    if template.validity_kind == "window":
        return template.valid_from, template.valid_until
    return at, at + timedelta(days=template.valid_days)


def _remember(cache: dict, name, value):
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[name] = value
    return value


def _origin(template_id: int, *, share_code: str | None, group_id: int | None, post_id: int | None) -> Origin:
    """Where a claim came from; a share code must be one of this template's cards (404 otherwise)."""
    if not share_code:
        return Origin(group_id=group_id, post_id=post_id)
    code = share_code.strip().upper()
    found = _share_codes.get(code)
    if found is None:
        card = db.session.scalar(select(CouponShareCode).where(CouponShareCode.code == code))
        if card is not None:
            found = _remember(
                _share_codes,
                code,
                (
                    card.template_id,
                    Origin(
                        share_code=card.code, sharer_id=card.sharer_id, group_id=card.group_id, post_id=card.post_id
                    ),
                ),
            )
    if found is None or found[0] != template_id:
        raise NotFound("This share code is not one of this coupon's cards.", code="share_code_not_found")
    return found[1]


def _facts_of(template_id: int, token: str) -> TemplateFacts:
    facts = _facts.get(template_id)
    if facts is None or not token or facts.token != token:
        facts = TemplateFacts.of(get_template(template_id=template_id), token)
        if token:
            _remember(_facts, template_id, facts)
    return facts


def _open_gate(template_id: int, at: datetime) -> bool:
    """The gate was not loaded: load it (True), or say the template has none (False, claim_gate 'sql')."""
    template = get_template(template_id=template_id)
    if claim_window_state(template, at) == "draft":
        raise NotFound("No such coupon.", code="coupon_not_found")
    if template.claim_gate != "redis":
        return False
    if template.status == "ended":
        raise refusal("ended")
    if not load_gate(template_id=template_id, only_if_missing=True):
        time.sleep(0.05)  # another process is loading it
    return True


def claim_through_gate(
    *,
    template_id: int,
    user_id: int,
    request_key: str,
    share_code: str | None = None,
    group_id: int | None = None,
    post_id: int | None = None,
    session_fence: SessionFence | None = None,
) -> Claimed | None:
    """Claim a coupon of a Redis-gated template from Redis alone; None when the template has no gate.

    A retry with the same `request_key` (the Idempotency-Key) replays the first answer, the same coupon;
    the same key with another template or body is 422 `idempotency_key_reused`. A `session_fence` is
    checked by the same Lua call, first; SessionUnverified when it fails (nothing else happened).
    """
    if current_app.config["COUPON_GATE_DURABILITY"] == "verify" and not gate.durable():
        if get_template(template_id=template_id).claim_gate != "redis":
            return None
        raise ApiError(
            "Flash claims are paused: the claim gate's store could lose them. Try again later.",
            status=503,
            code="coupon_gate_not_durable",
        )
    ms = int(now_utc().timestamp() * 1000)
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    origin = _origin(template_id, share_code=share_code, group_id=group_id, post_id=post_id)
    request_hash = _request_hash(template_id, share_code=share_code, group_id=group_id, post_id=post_id)
    args = {
        "template_id": template_id,
        "user_id": user_id,
        "request_hash": request_hash,
        "now_ms": ms,
        "day": claim_day(at)[1],
        "grant_id": uuid.uuid4().hex,
        "share_code": origin.share_code,
        "sharer_id": origin.sharer_id,
        "group_id": origin.group_id,
        "post_id": origin.post_id,
        "key_digest": key_digest(request_key),
        "ttl_seconds": current_app.config["IDEMPOTENCY_TTL_SECONDS"],
        "session_fence": session_fence,
    }
    for _ in range(GATE_RETRIES):
        outcome, answer, token = gate.claim(**args)
        if outcome == "session_unverified":
            raise SessionUnverified()
        if outcome == "no_ids":
            ids.top_up(low_water=1)
        elif outcome == "missing":
            if not _open_gate(template_id, at):
                return None
        else:
            break
    else:
        raise ApiError("The claim gate is being loaded; try again.", status=503, code="coupon_gate_busy")
    if outcome == "reused":
        raise ApiError(
            "This Idempotency-Key was used with a different request.", status=422, code="idempotency_key_reused"
        )
    if outcome not in ("granted", "replay"):
        raise refusal(outcome)
    coupon_id, granted_ms, code, group, post = answer.split("|")
    granted_at = datetime.fromtimestamp(int(granted_ms) / 1000, tz=UTC)
    facts = _facts_of(template_id, token)
    valid_from, valid_until = _validity(facts, granted_at)
    coupon = GrantedCoupon(
        id=int(coupon_id),
        template_id=template_id,
        user_id=user_id,
        valid_from=valid_from,
        valid_until=valid_until,
        claimed_at=granted_at,
        origin_share_code=code or None,
        origin_group_id=int(group) if group else None,
        origin_post_id=int(post) if post else None,
    )
    return Claimed(coupon=coupon, template=facts, replayed=outcome == "replay")


def _insert_claim(
    template: CouponTemplate,
    *,
    user_id: int,
    at: datetime,
    origin: Origin,
    claim_key: str,
    coupon_id: int | None = None,
) -> tuple[UserCoupon | None, str | None]:
    """Insert the claim row under its (template, user, seq) key; returns the row or the refusal reason."""
    day, _ = claim_day(at)
    valid_from, valid_until = _validity(template, at)
    for _ in range(SEQ_RETRIES):
        held = db.session.scalar(
            select(func.count())
            .select_from(UserCoupon)
            .where(UserCoupon.template_id == template.id, UserCoupon.user_id == user_id)
        )
        if held >= template.per_user_limit:
            return None, "limit_reached"
        day_seq = None
        if template.per_day_limit:
            today = db.session.scalar(
                select(func.count())
                .select_from(UserCoupon)
                .where(
                    UserCoupon.template_id == template.id, UserCoupon.user_id == user_id, UserCoupon.claim_day == day
                )
            )
            if today >= template.per_day_limit:
                return None, "daily_limit_reached"
            day_seq = today + 1
        coupon = UserCoupon(
            id=coupon_id,
            template_id=template.id,
            user_id=user_id,
            seq=held + 1,
            claim_day=day if template.per_day_limit else None,
            day_seq=day_seq,
            claim_key=claim_key or None,
            status="available",
            valid_from=valid_from,
            valid_until=valid_until,
            claimed_at=at,
            origin_share_code=origin.share_code,
            origin_sharer_id=origin.sharer_id,
            origin_group_id=origin.group_id,
            origin_post_id=origin.post_id,
        )
        try:
            with db.session.begin_nested():
                db.session.add(coupon)
        except IntegrityError:
            # The same user claiming twice at once: the other request holds this seq; count again.
            continue
        return coupon, None
    return None, "limit_reached"


def _take_stock(template: CouponTemplate) -> bool:
    """The conditional stock update: the single statement that makes overselling impossible."""
    return (
        db.session.execute(
            update(CouponTemplate)
            .where(
                CouponTemplate.id == template.id,
                CouponTemplate.status == "active",
                CouponTemplate.claimed < CouponTemplate.stock,
            )
            .values(claimed=CouponTemplate.claimed + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def claim_in_sql(
    *,
    template_id: int,
    user_id: int,
    request_key: str | None = None,
    share_code: str | None = None,
    group_id: int | None = None,
    post_id: int | None = None,
) -> UserCoupon:
    """Claim a coupon of a template without a gate (claim_gate 'sql') in one database transaction."""
    template = get_template(template_id=template_id)
    if template.claim_gate != "sql":
        raise ValueError(f"template {template_id} is claimed through its Redis gate")
    at = now_utc()
    state = claim_window_state(template, at)
    if state == "draft":
        raise NotFound("No such coupon.", code="coupon_not_found")
    if state != "claimable":
        raise refusal(state)
    origin = _origin(template.id, share_code=share_code, group_id=group_id, post_id=post_id)
    digest = key_digest(request_key)
    request_hash = _request_hash(template_id, share_code=share_code, group_id=group_id, post_id=post_id)
    try:
        coupon = insert_claim(template, user_id=user_id, at=at, origin=origin, claim_key=digest)
        commit()
    except BaseException:
        db.session.rollback()
        raise
    if digest:
        # The view asks the gate first, which knows its own keys; this tells it about the database's.
        gate.remember_database_claim(
            user_id=user_id,
            key_digest=digest,
            request_hash=request_hash,
            ttl_seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"],
        )
    return coupon


def insert_claim(
    template: CouponTemplate,
    *,
    user_id: int,
    at: datetime,
    origin: Origin,
    claim_key: str,
    coupon_id: int | None = None,
) -> UserCoupon:
    """The SQL claim: a row under the unique claim keys and the conditional stock update (no commit; refusals raise)."""
    if coupon_id is not None and db.session.get(UserCoupon, coupon_id) is not None:
        coupon_id = None  # the id is taken: the row gets a fresh one rather than a refusal
    coupon, reason = _insert_claim(
        template, user_id=user_id, at=at, origin=origin, claim_key=claim_key, coupon_id=coupon_id
    )
    if coupon is None:
        raise refusal(reason)
    if not _take_stock(template):
        current = db.session.get(CouponTemplate, template.id, populate_existing=True)
        raise refusal(
            "out_of_stock" if current.status == "active" else "paused" if current.status == "paused" else "ended"
        )
    return coupon


def load_gate(*, template_id: int, only_if_missing: bool = False) -> bool:
    """(Re)build a template's gate from the database; one process at a time. Returns whether it ran."""
    redis = get_redis()
    lock = key("coupon-gate-load", template_id)
    if not redis.set(lock, 1, nx=True, ex=LOAD_LOCK_SECONDS):
        return False
    try:
        if only_if_missing and gate.state(template_id=template_id) is not None:
            return True
        ids.top_up()
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
    day, today = claim_day(now_utc())
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
    """Set the claimed counter to the rows' count, should they ever disagree (the rows win)."""
    # The row lock first: a claim or drain committing meanwhile is then either counted or still to come.
    db.session.execute(select(CouponTemplate.id).where(CouponTemplate.id == template_id).with_for_update())
    rows = db.session.scalar(select(func.count()).select_from(UserCoupon).where(UserCoupon.template_id == template_id))
    repaired = (
        db.session.execute(
            update(CouponTemplate)
            .where(CouponTemplate.id == template_id, CouponTemplate.claimed != rows)
            .values(claimed=rows)
            .execution_options(synchronize_session=False)
        ).rowcount
        > 0
    )
    db.session.commit()
    if repaired:
        log.error("coupon template %s: claimed counter disagreed with its rows; set to %s", template_id, rows)
    return repaired


def reconcile(*, template_id: int | None = None) -> list[ReconcileReport]:
    """Make Redis and the database agree for live Redis-gated templates (after a crash, and on a schedule)."""
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


def reconcile_all() -> int:
    """The scheduled reconcile."""
    return len(reconcile())


def availability(templates: list[CouponTemplate]) -> dict[int, tuple[str, int]]:
    """(state, coupons left) per template as a claimer sees it now; flash drops count from their gate."""
    at = now_utc()
    live = gate.remaining(template_ids=[t.id for t in templates if t.claim_gate == "redis" and t.status == "active"])
    shown = {}
    for template in templates:
        left = live.get(template.id, max(0, template.stock - template.claimed))
        state = claim_window_state(template, at)
        shown[template.id] = ("out_of_stock" if state == "claimable" and left == 0 else state, left)
    return shown


def claimable_templates(*, cursor: str | None, limit: int) -> tuple[list[CouponTemplate], str | None]:
    """Live templates a mom could claim now or soon (the coupon centre)."""
    from app.core.pagination import keyset_page

    at = now_utc()
    stmt = select(CouponTemplate).where(CouponTemplate.status == "active", CouponTemplate.claim_ends_at > at)
    return keyset_page(
        stmt,
        columns=[CouponTemplate.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda t: (t.id,),
        session=db.session,
    )
