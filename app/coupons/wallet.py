"""A user's coupons: listing by state, the best one for a product, and the expiry job."""

from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update

from app.catalog import service as catalog
from app.core.clock import now_utc
from app.core.db import db
from app.core.jobs import job
from app.core.pagination import keyset_page
from app.coupons.flash import drain
from app.coupons.models import CouponTemplate, UserCoupon
from app.coupons.pricing import Line, quote
from app.coupons.templates import rule_of


@dataclass(frozen=True)
class BestCoupon:
    coupon: UserCoupon | None
    template: CouponTemplate | None
    discount_fen: int
    payable_fen: int
    subtotal_fen: int


def list_coupons(
    *, user_id: int, status: str, cursor: str | None, limit: int
) -> tuple[list[tuple[UserCoupon, CouponTemplate]], str | None]:
    """The user's coupons in one state, newest claim first.

    available: not used and still valid (a coupon held by an unpaid order is listed with status
    `reserved`; it comes back if that order expires). used: paid with. expired: validity passed unused.
    Coupons claimed a moment ago through the gate are landed first, so they are listed at once.
    """
    drain.ensure_landed(user_id=user_id)
    at = now_utc()
    stmt = (
        select(UserCoupon, CouponTemplate)
        .join(CouponTemplate, CouponTemplate.id == UserCoupon.template_id)
        .where(UserCoupon.user_id == user_id)
    )
    if status == "available":
        stmt = stmt.where(UserCoupon.status.in_(("available", "reserved")), UserCoupon.valid_until > at)
    elif status == "used":
        stmt = stmt.where(UserCoupon.status == "used")
    else:
        # The expiry job runs every few minutes; a coupon past its validity is expired from that instant.
        stmt = stmt.where(
            or_(UserCoupon.status == "expired", and_(UserCoupon.status == "available", UserCoupon.valid_until <= at))
        )
    return keyset_page(
        stmt,
        columns=[UserCoupon.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda row: (row[0].id,),
        session=db.session,
    )


def display_status(coupon: UserCoupon) -> str:
    """The state a user sees (a coupon past validity reads as expired before the job marks it)."""
    if coupon.status == "available" and coupon.valid_until <= now_utc():
        return "expired"
    return coupon.status


def usable_coupons(*, user_id: int) -> list[tuple[UserCoupon, CouponTemplate]]:
    """Coupons the user can spend right now."""
    at = now_utc()
    return list(
        db.session.execute(
            select(UserCoupon, CouponTemplate)
            .join(CouponTemplate, CouponTemplate.id == UserCoupon.template_id)
            .where(
                UserCoupon.user_id == user_id,
                UserCoupon.status == "available",
                UserCoupon.valid_from <= at,
                UserCoupon.valid_until > at,
            )
            .order_by(UserCoupon.valid_until, UserCoupon.id)
        ).all()
    )


def best_for_product(*, user_id: int, product_id: int, quantity: int) -> BestCoupon:
    """The held coupon that takes the most off `quantity` of a product (ties: the one expiring first).

    Coupons are spent only in our own checkout, so a union product is offered none.
    """
    product = catalog.get_active_product(product_id=product_id)
    lines = [
        Line(
            product_id=product.id, category_id=product.category_id, unit_price_fen=product.price_fen, quantity=quantity
        )
    ]
    best = BestCoupon(None, None, 0, lines[0].amount_fen, lines[0].amount_fen)
    if product.source != "own":
        return best
    drain.ensure_landed(user_id=user_id)
    for coupon, template in usable_coupons(user_id=user_id):
        priced = quote(lines, rule_of(template))
        if priced.applies and priced.discount_fen > best.discount_fen:
            best = BestCoupon(coupon, template, priced.discount_fen, priced.payable_fen, priced.subtotal_fen)
    return best


@job
def expire_coupons() -> int:
    """Mark unused coupons past their validity expired (a scheduled job; reserved ones wait for their order)."""
    at = now_utc()
    return db.session.execute(
        update(UserCoupon)
        .where(UserCoupon.status == "available", UserCoupon.valid_until <= at)
        .values(status="expired", expired_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
