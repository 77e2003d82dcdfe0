"""Coupon cards: what a group post carries so moms can claim from it.

A card is a plain JSON object (`type: "coupon"`) with a share code; the code remembers who shared the
coupon into which group and post, and a claim made through it records that origin. The groups domain
calls `service.coupon_card(...)` when it schedules a coupon drop and posts the card as it is.
A coupon whose scope names a product that may not be advertised (a breast-milk substitute) gets no card: it
would advertise the product in groups.
"""

import secrets

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.catalog import service as catalog
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Conflict, NotFound
from app.core.money import yuan
from app.coupons import claims
from app.coupons.models import CouponShareCode, CouponTemplate
from app.coupons.templates import get_template, rule_of

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
CLAIM_PAGE = "pages/coupon/claim"


def headline(template: CouponTemplate) -> str:
    """The short offer text on a card, in the users' language."""
    if template.kind == "percent":
        # 折 is tenths of the price: exact to the basis point, so a card never promises more than it takes off.
        whole, rest = divmod(10000 - template.percent_off_bp, 1000)
        fold = f"{whole}.{rest:03d}".rstrip("0").rstrip(".")
        text = f"{fold}折 最高减{yuan(template.cap_fen)}元"
    elif template.kind == "threshold":
        text = f"满{yuan(template.threshold_fen)}减{yuan(template.amount_off_fen)}"
    else:
        text = f"立减{yuan(template.amount_off_fen)}元"
    if template.kind != "threshold" and template.threshold_fen:
        text += f"（满{yuan(template.threshold_fen)}可用）"
    return text


def _share_code(*, template_id: int, sharer_id: int, group_id: int | None, post_id: int | None) -> CouponShareCode:
    found = db.session.scalar(
        select(CouponShareCode)
        .where(
            CouponShareCode.template_id == template_id,
            CouponShareCode.sharer_id == sharer_id,
            CouponShareCode.group_id.is_(None) if group_id is None else CouponShareCode.group_id == group_id,
            CouponShareCode.post_id.is_(None) if post_id is None else CouponShareCode.post_id == post_id,
        )
        .limit(1)
    )
    if found is not None:
        return found
    for _ in range(5):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        candidate = CouponShareCode(
            code=code,
            template_id=template_id,
            sharer_id=sharer_id,
            group_id=group_id,
            post_id=post_id,
            created_at=now_utc(),
        )
        try:
            with db.session.begin_nested():
                db.session.add(candidate)
            return candidate
        except IntegrityError:
            continue
    raise Conflict("Could not allocate a share code; try again.", code="share_code_exhausted")


def refuse_unadvertisable(template: CouponTemplate) -> None:
    """422 `product_not_advertisable` if the coupon's scope names a product that may not be advertised."""
    catalog.require_advertisable(product_ids=sorted(rule_of(template).product_ids))


def render(template: CouponTemplate, share: CouponShareCode) -> dict:
    """The card payload (stable keys: group posts store and send it as it is)."""
    state, left = claims.availability([template])[template.id]
    return {
        "type": "coupon",
        "template_id": template.id,
        "share_code": share.code,
        "title": template.name,
        "headline": headline(template),
        "description": template.description,
        "kind": template.kind,
        "amount_off_fen": template.amount_off_fen,
        "threshold_fen": template.threshold_fen,
        "percent_off_bp": template.percent_off_bp,
        "cap_fen": template.cap_fen,
        "claim_starts_at": template.claim_starts_at,
        "claim_ends_at": template.claim_ends_at,
        "valid_until": template.valid_until,
        "valid_days": template.valid_days,
        "state": state,
        "claimable": state == "claimable",
        "stock_left": left,
        "group_id": share.group_id,
        "post_id": share.post_id,
        "miniprogram": {"appid": current_app.config["WECHAT_APPID"], "page": f"{CLAIM_PAGE}?code={share.code}"},
    }


def card_for(*, template_id: int, sharer_id: int, group_id: int | None, post_id: int | None) -> dict:
    """A card for a live template, with the sharer's share code (created on first use)."""
    template = get_template(template_id=template_id)
    if template.status in ("draft", "ended"):
        raise Conflict(
            "Only live coupons can be shared.", code="coupon_not_shareable", errors={"status": template.status}
        )
    refuse_unadvertisable(template)
    share = _share_code(template_id=template.id, sharer_id=sharer_id, group_id=group_id, post_id=post_id)
    return render(template, share)


def card_by_code(*, code: str) -> dict:
    """The card behind a share code (the landing page of a tapped card)."""
    share = db.session.scalar(select(CouponShareCode).where(CouponShareCode.code == code.strip().upper()))
    if share is None:
        raise NotFound("No such share code.", code="share_code_not_found")
    return render(db.session.get(CouponTemplate, share.template_id), share)
