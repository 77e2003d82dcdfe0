"""What other domains use from coupons: pricing an order with a coupon, the coupon's order life cycle, cards.

The coupon steps of an order (reserve, release, consume, restore) join the caller's transaction (the
checkout owns it), so an order and its coupon always change together. Each is one conditional update.
"""

from datetime import datetime

from sqlalchemy import func, select, update

from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Conflict, NotFound
from app.core.http import MAX_ID
from app.coupons import cards
from app.coupons.flash import drain
from app.coupons.models import CouponTemplate, UserCoupon
from app.coupons.pricing import Line as Line  # the checkout prices its lines in this shape
from app.coupons.pricing import Quote, quote
from app.coupons.pricing import allocate as allocate  # and spreads refunds over them the same way
from app.coupons.templates import get_template_for, rule_of


def land_claims(*, user_id: int) -> None:
    """Land the user's granted flash claims still on their way to the database (run it as a use case of its own
    before work that needs them, so that work's refusal cannot undo it)."""
    drain.ensure_landed(user_id=user_id)


def quote_order(*, user_id: int, lines: list[Line], coupon_id: int | None) -> Quote:
    """Price order lines with one of the user's coupons (or none); a coupon that cannot apply is a 409.

    A coupon claimed a moment ago may still be on its way from the claim stream: run `land_claims` first, as
    its own use case (whatever it left is landed here, in the caller's).
    """
    if coupon_id is None:
        return quote(lines, None)
    drain.ensure_landed(user_id=user_id)
    coupon = db.session.get(UserCoupon, coupon_id) if 0 < coupon_id <= MAX_ID else None
    if coupon is None or coupon.user_id != user_id:
        raise NotFound("You hold no such coupon.", code="coupon_not_found")
    at = now_utc()
    if coupon.status != "available" or not coupon.valid_from <= at < coupon.valid_until:
        state = "expired" if coupon.status == "available" and at >= coupon.valid_until else coupon.status
        if coupon.status == "available" and at < coupon.valid_from:
            state = "not_yet_valid"
        raise Conflict("This coupon cannot be used now.", code="coupon_unavailable", errors={"state": state})
    priced = quote(lines, rule_of(db.session.get(CouponTemplate, coupon.template_id)))
    if not priced.applies:
        raise Conflict(
            "This coupon does not apply to these products.",
            code="coupon_not_applicable",
            errors={"reason": priced.reason or "no_discount", "eligible_fen": priced.eligible_fen},
        )
    return priced


def reserve_coupon(*, coupon_id: int, user_id: int, order_id: int) -> None:
    """Hold an available coupon for an unpaid order; two orders racing for one coupon: one wins."""
    at = now_utc()
    held = db.session.execute(
        update(UserCoupon)
        .where(
            UserCoupon.id == coupon_id,
            UserCoupon.user_id == user_id,
            UserCoupon.status == "available",
            UserCoupon.valid_from <= at,
            UserCoupon.valid_until > at,
        )
        .values(status="reserved", reserved_order_id=order_id, reserved_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not held:
        raise Conflict("This coupon is already used or held by another order.", code="coupon_unavailable")


def release_coupon(*, coupon_id: int, order_id: int) -> bool:
    """An unpaid order ended: its coupon is available again (or expired, if its validity passed meanwhile)."""
    at = now_utc()
    coupon = db.session.get(UserCoupon, coupon_id)
    status = "available" if coupon.valid_until > at else "expired"
    return (
        db.session.execute(
            update(UserCoupon)
            .where(
                UserCoupon.id == coupon_id, UserCoupon.status == "reserved", UserCoupon.reserved_order_id == order_id
            )
            .values(
                status=status, reserved_order_id=None, reserved_at=None, expired_at=at if status == "expired" else None
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def consume_coupon(*, coupon_id: int, order_id: int) -> bool:
    """The order was paid: its reserved coupon is used."""
    return (
        db.session.execute(
            update(UserCoupon)
            .where(
                UserCoupon.id == coupon_id, UserCoupon.status == "reserved", UserCoupon.reserved_order_id == order_id
            )
            .values(status="used", used_at=now_utc())
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def reclaim_coupon(*, coupon_id: int, order_id: int) -> bool:
    """An expired order was paid after all: its released coupon is used by it again, if still free."""
    return (
        db.session.execute(
            update(UserCoupon)
            .where(UserCoupon.id == coupon_id, UserCoupon.status == "available")
            .values(status="used", reserved_order_id=order_id, used_at=now_utc())
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def restore_coupon(*, coupon_id: int, order_id: int) -> bool:
    """The whole order was refunded: the coupon comes back, but only while it is still valid."""
    at = now_utc()
    return (
        db.session.execute(
            update(UserCoupon)
            .where(
                UserCoupon.id == coupon_id,
                UserCoupon.status == "used",
                UserCoupon.reserved_order_id == order_id,
                UserCoupon.valid_until > at,
            )
            .values(status="available", reserved_order_id=None, reserved_at=None, used_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def coupon_card(*, template_id: int, sharer_id: int, group_id: int | None = None, post_id: int | None = None) -> dict:
    """The card a group post carries for a live coupon (see `app.coupons.cards`)."""
    return cards.card_for(template_id=template_id, sharer_id=sharer_id, group_id=group_id, post_id=post_id)


def group_claim_count(*, group_id: int, since: datetime | None = None, until: datetime | None = None) -> int:
    """Coupons claimed from a group's cards (claimed_at in [since, until), all time by default)."""
    stmt = select(func.count()).select_from(UserCoupon).where(UserCoupon.origin_group_id == group_id)
    if since is not None:
        stmt = stmt.where(UserCoupon.claimed_at >= since)
    if until is not None:
        stmt = stmt.where(UserCoupon.claimed_at < until)
    return int(db.session.scalar(stmt) or 0)


def droppable_status(*, template_id: int, actor: Actor) -> str:
    """A droppable coupon's status (404 unless the actor issued it or operates; 422 `product_not_advertisable`
    if its scope names a product that may not be advertised)."""
    template = get_template_for(template_id=template_id, actor=actor)
    cards.refuse_unadvertisable(template)
    return template.status
