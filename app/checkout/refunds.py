"""Refunds of own orders: asked of WeChat Pay, applied only once WeChat reports them done.

WeChat answering the refund request only means it accepted the refund; the money reaches the buyer later
(seconds for balance payments, days for bank cards), or never (REFUNDCLOSE, or CHANGE when the buyer's card
is gone). So a refund moves through two steps:

- Asking reserves the amount on the order (`refunding_fen`; with `refunded_fen` it can never pass what was
  paid, so concurrent refunds cannot over-refund), asks WeChat with an out_refund_no derived from the order
  (a retry asks for the same refund, never a second one) and records the refund as processing.
- Settling applies WeChat's final word once: a success moves the amount to `refunded_fen`, spreads it over
  the lines, brings the coupon back if the order is now wholly refunded and the coupon still valid, and
  sends the order to the affiliate pipeline, which reverses commission in proportion; a failure frees the
  reservation so the operator can refund again. WeChat's refund notification only says which refund to
  look at: its payload is encrypted with the merchant key but not signed, so the outcome is always taken
  from WeChat's refund query, which a scheduled job also runs for refunds whose notification never came.

Settling changes the coupon too and sends the order on to the orders domain: these are checkout's flows,
kept in their own module by use case (see `flows` for placing and paying).
"""

import logging
from datetime import timedelta
from xml.parsers.expat import ExpatError

from sqlalchemy import case, func, select, update
from wechatpy.exceptions import WeChatException

from app.checkout import service
from app.checkout.models import CheckoutOrder, CheckoutRefund
from app.core.clock import now_utc
from app.core.db import db, use_case
from app.core.errors import ApiError, Conflict, Invalid, NotFound
from app.core.jobs import batch_job
from app.coupons import service as coupons
from app.wechat import service as wechat

log = logging.getLogger(__name__)

REFUNDABLE = ("paid", "partially_refunded")
FAILED_WECHAT_STATES = ("REFUNDCLOSE", "CHANGE")
SYNC_AFTER = timedelta(seconds=30)  # leave a fresh refund to its notification first


def refund(*, order_id: int, amount_fen: int | None, reason: str, requested_by_id: int | None) -> CheckoutRefund:
    """Ask WeChat to refund part or all of a paid order; the refund applies once WeChat reports it done."""
    order = service.get_order(order_id=order_id)
    if order.status not in REFUNDABLE:
        raise Conflict(
            "Only paid orders can be refunded.", code="order_not_refundable", errors={"status": order.status}
        )
    left = order.payable_fen - order.refunded_fen - order.refunding_fen
    amount = left if amount_fen is None else amount_fen
    if left < 1:
        raise Conflict(
            "Refunds already under way cover the whole order.",
            code="refund_in_progress",
            errors={"refunding_fen": order.refunding_fen},
        )
    if not 1 <= amount <= left:
        raise Invalid(
            "The refund must be between 1 fen and what is left to refund.",
            code="refund_amount_invalid",
            errors={"amount_fen": [f"1..{left}"]},
        )
    at = now_utc()
    reserved = db.session.execute(
        update(CheckoutOrder)
        .where(
            CheckoutOrder.id == order.id,
            CheckoutOrder.status.in_(REFUNDABLE),
            CheckoutOrder.refunded_fen + CheckoutOrder.refunding_fen + amount <= CheckoutOrder.payable_fen,
        )
        .values(refunding_fen=CheckoutOrder.refunding_fen + amount, updated_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not reserved:
        raise Conflict("The order changed meanwhile; try again.", code="order_changed")
    seq = (
        db.session.scalar(select(func.count()).select_from(CheckoutRefund).where(CheckoutRefund.order_id == order.id))
        + 1
    )
    record = CheckoutRefund(
        order_id=order.id,
        seq=seq,
        out_refund_no=f"{order.out_trade_no}R{seq}",
        amount_fen=amount,
        reason=reason,
        requested_by_id=requested_by_id,
        status="processing",
        created_at=at,
    )
    db.session.add(record)
    called_back = service.notify_url(setting="WECHAT_PAY_REFUND_NOTIFY_URL", path="/api/v1/webhooks/wechatpay/refund")
    with wechat.translated_errors("the refund"):
        answer = wechat.pay_client().refund.apply(
            total_fee=order.payable_fen,
            refund_fee=amount,
            out_refund_no=record.out_refund_no,
            out_trade_no=order.out_trade_no,
            refund_desc=reason[:80] or None,
            notify_url=called_back,
        )
    record.wechat_refund_id = str(answer.get("refund_id", ""))
    db.session.flush()
    return record


def list_refunds(*, order_id: int) -> list[CheckoutRefund]:
    """Refunds of an order, oldest first."""
    return list(
        db.session.scalars(
            select(CheckoutRefund).where(CheckoutRefund.order_id == order_id).order_by(CheckoutRefund.seq)
        )
    )


def get_refund(*, refund_id: int) -> CheckoutRefund:
    """One refund (404 if unknown)."""
    refund = db.session.get(CheckoutRefund, refund_id)
    if refund is None:
        raise NotFound("No such refund.", code="refund_not_found")
    return refund


def _settle(refund: CheckoutRefund, wechat_status: str) -> str:
    """Apply WeChat's final word on a processing refund once: 'succeeded', 'failed' or 'unchanged'."""
    succeeded = wechat_status == "SUCCESS"
    at = now_utc()
    moved = db.session.execute(
        update(CheckoutRefund)
        .where(CheckoutRefund.id == refund.id, CheckoutRefund.status == "processing")
        .values(status="succeeded" if succeeded else "failed", wechat_status=wechat_status, settled_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        return "unchanged"
    amount = refund.amount_fen
    if not succeeded:
        db.session.execute(
            update(CheckoutOrder)
            .where(CheckoutOrder.id == refund.order_id)
            .values(refunding_fen=CheckoutOrder.refunding_fen - amount, updated_at=at)
            .execution_options(synchronize_session=False)
        )
        log.warning(
            "refund %s of order %s failed at WeChat (%s); %s fen free to refund again",
            refund.out_refund_no,
            refund.order_id,
            wechat_status,
            amount,
        )
        return "failed"
    db.session.execute(
        update(CheckoutOrder)
        .where(CheckoutOrder.id == refund.order_id)
        .values(
            refunding_fen=CheckoutOrder.refunding_fen - amount,
            refunded_fen=CheckoutOrder.refunded_fen + amount,
            status=case(
                (CheckoutOrder.refunded_fen + amount == CheckoutOrder.payable_fen, "refunded"),
                else_="partially_refunded",
            ),
            version=CheckoutOrder.version + 1,
            updated_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    order = db.session.get(CheckoutOrder, refund.order_id)
    db.session.refresh(order)
    lines = service.order_lines(order_id=order.id)
    for line, share in zip(lines, coupons.allocate(amount, [line.paid_fen - line.refunded_fen for line in lines])):
        line.refunded_fen += share
    if order.status == "refunded" and order.coupon_id is not None:
        restored = coupons.restore_coupon(coupon_id=order.coupon_id, order_id=order.id)
        db.session.execute(
            update(CheckoutRefund)
            .where(CheckoutRefund.id == refund.id)
            .values(coupon_restored=restored)
            .execution_options(synchronize_session=False)
        )
    db.session.flush()
    service.queue_for_affiliate(order_id=order.id)
    return "succeeded"


def sync_refund(*, refund_id: int) -> str:
    """Ask WeChat how a processing refund ended and apply it: 'succeeded', 'failed', 'processing' or 'unchanged'."""
    refund = get_refund(refund_id=refund_id)
    if refund.status != "processing":
        return "unchanged"
    with wechat.translated_errors("the refund query"):
        answer = wechat.pay_client().refund.query(out_refund_no=refund.out_refund_no)
    wechat_status = str(answer.get("refund_status_0") or "")
    if wechat_status == "SUCCESS" or wechat_status in FAILED_WECHAT_STATES:
        if int(answer.get("refund_fee_0") or -1) != refund.amount_fen:
            log.error(
                "WeChat reports refund %s as %s fen, we asked %s",
                refund.out_refund_no,
                answer.get("refund_fee_0"),
                refund.amount_fen,
            )
            raise Conflict(
                "WeChat reports another amount for this refund.",
                code="refund_amount_mismatch",
                errors={"expected_fen": refund.amount_fen, "reported_fen": answer.get("refund_fee_0")},
            )
        return _settle(refund, wechat_status)
    if wechat_status != "PROCESSING":
        log.warning(
            "refund %s: WeChat reports an unknown state %r; asking again later", refund.out_refund_no, wechat_status
        )
    return "processing"


def handle_refund_notification(*, xml: bytes) -> str:
    """WeChat's refund notification: decrypt it with the merchant key, then settle that refund by asking WeChat."""
    try:
        data = wechat.pay_client().parse_refund_notify_result(xml)
    except (WeChatException, ExpatError, ValueError, TypeError, KeyError, AttributeError):
        raise ApiError(
            "The refund notification does not decrypt with our key.", status=400, code="invalid_notification"
        ) from None
    if not isinstance(data, dict) or not data.get("out_refund_no"):
        raise ApiError("The refund notification names no refund.", status=400, code="invalid_notification")
    refund = db.session.scalar(select(CheckoutRefund).where(CheckoutRefund.out_refund_no == str(data["out_refund_no"])))
    if refund is None:
        raise NotFound("No refund has this out_refund_no.", code="refund_not_found")
    return sync_refund(refund_id=refund.id)


@batch_job
def sync_processing_refunds(*, limit: int = 100) -> dict[str, int]:
    """Settle refunds still processing a while after they were asked, each a use case of its own (a scheduled
    job; idempotent)."""
    due = db.session.scalars(
        select(CheckoutRefund.id)
        .where(CheckoutRefund.status == "processing", CheckoutRefund.created_at <= now_utc() - SYNC_AFTER)
        .order_by(CheckoutRefund.created_at)
        .limit(limit)
    ).all()
    outcomes: dict[str, int] = {}
    for refund_id in due:
        try:
            with use_case():
                outcome = sync_refund(refund_id=refund_id)
        except ApiError as exc:
            log.warning("refund %s could not be checked with WeChat (%s); will retry", refund_id, exc.code)
            outcome = "error"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
