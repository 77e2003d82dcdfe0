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

Loading a gate and reconciling it with the database after a crash: `app.coupons.flash.loading`.
"""

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.accounts.service import SessionFence
from app.core.access import SessionUnverified
from app.core.clock import now_utc
from app.core.db import after_commit, db
from app.core.errors import ApiError, Conflict, NotFound
from app.core.lru import ProcessCache
from app.core.pagination import keyset_page
from app.coupons.flash import gate, id_pool, loading
from app.coupons.flash.gate import claim_day
from app.coupons.models import CouponShareCode, CouponTemplate, UserCoupon
from app.coupons.templates import claim_window_state, get_template

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


# Per process, read on every gated claim: rows that never change (share codes; live templates' facts,
# checked against the gate's token, which every rebuild renews).
_share_codes = ProcessCache(CACHE_LIMIT)
_facts = ProcessCache(CACHE_LIMIT)


def refusal(reason: str, **details) -> Conflict:
    message, code = REFUSALS[reason]
    return Conflict(message, code=code, errors=details or None)


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


def _origin(template_id: int, *, share_code: str | None, group_id: int | None, post_id: int | None) -> Origin:
    """Where a claim came from; a share code must be one of this template's cards (404 otherwise)."""
    if not share_code:
        return Origin(group_id=group_id, post_id=post_id)
    code = share_code.strip().upper()
    found = _share_codes.get(code)
    if found is None:
        card = db.session.scalar(select(CouponShareCode).where(CouponShareCode.code == code))
        if card is not None:
            found = _share_codes.put(
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
            _facts.put(template_id, facts)
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
    if not loading.load_gate(template_id=template_id, only_if_missing=True):
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
            id_pool.top_up(low_water=1)
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
    coupon = insert_claim(template, user_id=user_id, at=at, origin=origin, claim_key=digest)
    db.session.flush()
    if digest:
        # The view asks the gate first, which knows its own keys; this tells it about the database's.
        ttl = current_app.config["IDEMPOTENCY_TTL_SECONDS"]
        after_commit(
            lambda: gate.remember_database_claim(
                user_id=user_id, key_digest=digest, request_hash=request_hash, ttl_seconds=ttl
            )
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
