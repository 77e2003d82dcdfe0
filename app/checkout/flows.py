"""Own checkout's use cases that change an order together with its coupon, or send it on to the orders domain.

- Placing prices the lines with the coupon, holds the coupon, asks WeChat for a prepay id, and all of it
  commits at once: if WeChat refuses, nothing was written and the coupon stays free.
- A payment is applied once: the order moves to paid by one conditional update and the payment row is
  unique per order and per WeChat transaction, so retried notifications change nothing. The amount must
  equal the order's payable amount.
- Unpaid orders expire after CHECKOUT_PAYMENT_MINUTES (15), or the buyer cancels one sooner: either way
  WeChat is asked first (a payment may have happened), then the WeChat order is closed so it can no
  longer be paid, then the coupon is released. A payment that still arrives for such an order (a race
  WeChat should not allow) is kept, and the coupon taken back if it is still free.
- Refunds (`app.checkout.refunds`) go through WeChat's refund API and apply once WeChat reports them done.
- A paid order completes CHECKOUT_COMPLETE_DAYS (10) after payment (a job), as a union order completes
  when its merchant reports receipt; a wholly refunded order never does. Completion starts the affiliate
  pipeline's holding period, after which the order's commission settles.
- Paid orders enter the affiliate pipeline (attribution, commission ledger) through
  `app.orders.flows.ingest_order`, as source "own" keyed by out_trade_no, from a queued job after the
  payment or refund committed. Each payment and refund moves the order's version; the job sends the whole
  current state, so replays and reordering are harmless, and a sweeper resends any order still behind.
"""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException

from app.accounts import service as accounts
from app.catalog import service as catalog
from app.checkout import service
from app.checkout.models import CheckoutOrder, CheckoutOrderLine, CheckoutPayment, CheckoutRefund
from app.checkout.service import CLOSED_UNPAID, PAID_STATES, PlacedOrder
from app.core.clock import DEFAULT_ZONE, now_utc
from app.core.db import db, use_case
from app.core.errors import ApiError, Conflict, Invalid, NotFound, UpstreamError
from app.core.jobs import batch_job, job
from app.coupons import service as coupons
from app.orders import flows as orders
from app.wechat import service as wechat

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 3  # entering the pipeline loses a race to the order's own webhook or sweeper: run it again


def _priceable_lines(requested: list[dict]) -> tuple[list[coupons.Line], dict]:
    ids = [item["product_id"] for item in requested]
    if len(set(ids)) != len(ids):
        raise Invalid(
            "List each product once, with its quantity.",
            code="duplicate_order_lines",
            errors={"lines": ["Duplicate product_id."]},
        )
    products = catalog.require_products(product_ids=ids)
    refused = sorted(p.id for p in products.values() if p.source != "own" or not p.is_active)
    if refused:
        raise Invalid(
            "Only our own, active products can be bought here.",
            code="product_not_purchasable",
            errors={"product_ids": refused},
        )
    lines = [
        coupons.Line(
            product_id=item["product_id"],
            category_id=products[item["product_id"]].category_id,
            unit_price_fen=products[item["product_id"]].price_fen,
            quantity=item["quantity"],
        )
        for item in requested
    ]
    return lines, products


def place_order(
    *, user_id: int, lines: list[dict], coupon_id: int | None, share_code: str | None, client_ip: str
) -> PlacedOrder:
    """Price, hold the coupon, create the WeChat prepay and return the pay parameters — all or nothing."""
    priceable, products = _priceable_lines(lines)
    priced = coupons.quote_order(user_id=user_id, lines=priceable, coupon_id=coupon_id)
    if priced.subtotal_fen < 1:
        raise Invalid("The order comes to nothing; there is nothing to pay.", code="order_amount_zero")
    user = accounts.get_user(user_id=user_id)
    at = now_utc()
    order = CheckoutOrder(
        out_trade_no=service.out_trade_no(at),
        user_id=user_id,
        status="pending_payment",
        subtotal_fen=priced.subtotal_fen,
        discount_fen=priced.discount_fen,
        payable_fen=priced.payable_fen,
        refunded_fen=0,
        coupon_id=coupon_id,
        share_code=share_code,
        expires_at=at + timedelta(minutes=service.payment_minutes()),
        created_at=at,
        updated_at=at,
    )
    db.session.add(order)
    db.session.flush()
    rows = []
    for line, discount in zip(priceable, priced.line_discounts_fen):
        rows.append(
            CheckoutOrderLine(
                order_id=order.id,
                product_id=line.product_id,
                title=products[line.product_id].title[:255],
                unit_price_fen=line.unit_price_fen,
                quantity=line.quantity,
                amount_fen=line.amount_fen,
                discount_fen=discount,
                paid_fen=line.amount_fen - discount,
                refunded_fen=0,
            )
        )
    db.session.add_all(rows)
    if coupon_id is not None:
        coupons.reserve_coupon(coupon_id=coupon_id, user_id=user_id, order_id=order.id)
    title = rows[0].title if len(rows) == 1 else f"{rows[0].title} 等{len(rows)}件"
    pay = wechat.pay_client()
    called_back = service.notify_url(setting="WECHAT_PAY_NOTIFY_URL", path="/api/v1/webhooks/wechatpay")
    with wechat.translated_errors("the payment"):
        prepay = pay.order.create(
            trade_type="JSAPI",
            body=title[:120],
            total_fee=order.payable_fen,
            notify_url=called_back,
            client_ip=client_ip,
            user_id=user.openid,
            out_trade_no=order.out_trade_no,
            time_start=at.astimezone(DEFAULT_ZONE),
            time_expire=order.expires_at.astimezone(DEFAULT_ZONE),
            attach=str(order.id),
        )
    order.prepay_id = prepay["prepay_id"]
    db.session.flush()
    return PlacedOrder(order=order, lines=rows, pay_params=service.pay_params(order=order))


def _apply_payment(
    *, order: CheckoutOrder, transaction_id: str, amount_fen: int, openid: str, source: str, payload: dict
) -> str:
    """Record a confirmed payment once; returns 'applied' or 'duplicate'."""
    if amount_fen != order.payable_fen:
        log.error(
            "payment %s for order %s: %s fen, expected %s", transaction_id, order.id, amount_fen, order.payable_fen
        )
        raise Conflict(
            "The paid amount does not match the order.",
            code="payment_amount_mismatch",
            errors={"expected_fen": order.payable_fen, "paid_fen": amount_fen},
        )
    at = now_utc()
    moved = db.session.execute(
        update(CheckoutOrder)
        .where(CheckoutOrder.id == order.id, CheckoutOrder.status.in_(("pending_payment", *CLOSED_UNPAID)))
        .values(status="paid", paid_at=at, updated_at=at, version=1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        existing = db.session.scalar(select(CheckoutPayment).where(CheckoutPayment.order_id == order.id))
        if existing is not None and existing.transaction_id == transaction_id:
            return "duplicate"
        raise Conflict("This order was already paid by another transaction.", code="order_already_paid")
    was_released = order.status in CLOSED_UNPAID
    db.session.add(
        CheckoutPayment(
            order_id=order.id,
            transaction_id=transaction_id,
            amount_fen=amount_fen,
            openid=openid,
            source=source,
            payload=payload,
            created_at=at,
        )
    )
    if order.coupon_id is not None:
        taken = (
            coupons.reclaim_coupon(coupon_id=order.coupon_id, order_id=order.id)
            if was_released
            else coupons.consume_coupon(coupon_id=order.coupon_id, order_id=order.id)
        )
        if not taken:
            # Money arrived for an order whose coupon was freed and spent elsewhere: keep the payment, flag it.
            log.error("order %s paid after its coupon %s was released and reused", order.id, order.coupon_id)
    db.session.flush()
    return "applied"


def handle_notification(*, xml: bytes) -> str:
    """Verify and apply a WeChat Pay notification; safe to receive any number of times."""
    pay = wechat.pay_client()
    try:
        data = pay.parse_payment_result(xml)
    except (InvalidSignatureException, ValueError, TypeError, KeyError, AttributeError):
        raise ApiError("The notification's signature does not verify.", status=400, code="invalid_signature") from None
    config = current_app.config
    if data.get("appid") != config["WECHAT_APPID"] or data.get("mch_id") != config["WECHAT_PAY_MCH_ID"]:
        raise ApiError("The notification is for another merchant.", status=400, code="wrong_merchant")
    if data.get("return_code") != "SUCCESS" or data.get("result_code") != "SUCCESS":
        return "not_paid"
    order = db.session.scalar(select(CheckoutOrder).where(CheckoutOrder.out_trade_no == str(data.get("out_trade_no"))))
    if order is None:
        raise NotFound("No order has this out_trade_no.", code="order_not_found")
    transaction_id = str(data.get("transaction_id") or "")
    if not transaction_id:
        raise ApiError("The notification carries no transaction id.", status=400, code="invalid_notification")
    outcome = _apply_payment(
        order=order,
        transaction_id=transaction_id,
        amount_fen=int(data.get("total_fee", -1)),
        openid=str(data.get("openid", "")),
        source="notification",
        payload={k: v for k, v in data.items() if k != "sign"},
    )
    if outcome == "applied":
        service.queue_for_affiliate(order_id=order.id)
    return outcome


@batch_job
def expire_unpaid_orders(*, limit: int = 200) -> dict[str, int]:
    """Expire orders unpaid past their deadline, after asking WeChat, each a use case of its own (a scheduled job;
    idempotent)."""
    due = db.session.scalars(
        select(CheckoutOrder)
        .where(CheckoutOrder.status == "pending_payment", CheckoutOrder.expires_at <= now_utc())
        .order_by(CheckoutOrder.expires_at)
        .limit(limit)
    ).all()
    counts = {"expired": 0, "paid": 0, "skipped": 0}
    for order in due:
        with use_case():
            outcome = _close_unpaid(order, closed_as="expired")
        if outcome in counts:
            counts[outcome] += 1
    return counts


def close_for_cancel(*, order_id: int, user_id: int) -> None:
    """The buyer's cancel, first part: close her unpaid order at WeChat and free the coupon, or record the payment
    WeChat reports instead (either stands whatever `cancel_order` then answers; idempotent)."""
    order = service.get_order(order_id=order_id, user_id=user_id)
    if order.status == "pending_payment":
        _close_unpaid(order, closed_as="cancelled")


def cancel_order(*, order_id: int, user_id: int) -> CheckoutOrder:
    """The buyer's cancel, as `close_for_cancel` left it: the cancelled order, 409 `order_already_paid` when it was
    paid, 502 `wechat_pay_unavailable` when WeChat could not say whether it was."""
    order = service.get_order(order_id=order_id, user_id=user_id)
    if order.status == "pending_payment":
        raise UpstreamError(
            "WeChat Pay could not confirm the order is unpaid; try again shortly.", code="wechat_pay_unavailable"
        )
    if order.status in PAID_STATES:
        raise Conflict(
            "The order is paid; ask for a refund instead.", code="order_already_paid", errors={"status": order.status}
        )
    return order


def _close_unpaid(order: CheckoutOrder, *, closed_as: str) -> str:
    """Close an unpaid order as `closed_as` after asking WeChat: the outcome, 'paid' or 'skipped'."""
    pay = wechat.pay_client()
    try:
        state = pay.order.query(out_trade_no=order.out_trade_no)
    except WeChatPayException as exc:
        state = {"trade_state": "NOTEXIST"} if exc.errcode == "ORDERNOTEXIST" else None
    except Exception:
        state = None
    if state is None:
        return "skipped"
    if state.get("trade_state") in ("SUCCESS", "REFUND"):
        try:
            with db.session.begin_nested():  # a payment refused here changes nothing; the notification decides
                _apply_payment(
                    order=order,
                    transaction_id=str(state["transaction_id"]),
                    amount_fen=int(state["total_fee"]),
                    openid=str(state.get("openid", "")),
                    source="query",
                    payload=dict(state),
                )
        except ApiError:
            return "skipped"
        service.queue_for_affiliate(order_id=order.id)
        return "paid"
    if state.get("trade_state") != "NOTEXIST":
        try:
            pay.order.close(order.out_trade_no)
        except WeChatPayException as exc:
            if exc.errcode != "ORDERCLOSED":
                return "skipped"  # ORDERPAID: the notification is on its way
        except Exception:
            return "skipped"
    at = now_utc()
    moved = db.session.execute(
        update(CheckoutOrder)
        .where(CheckoutOrder.id == order.id, CheckoutOrder.status == "pending_payment")
        .values(status=closed_as, updated_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved and order.coupon_id is not None:
        coupons.release_coupon(coupon_id=order.coupon_id, order_id=order.id)
    return closed_as if moved else "unchanged"


@job
def complete_paid_orders(*, limit: int = 500) -> int:
    """Complete orders paid CHECKOUT_COMPLETE_DAYS ago and not wholly refunded (a scheduled job; idempotent)."""
    at = now_utc()
    due = db.session.scalars(
        select(CheckoutOrder.id)
        .where(
            CheckoutOrder.status.in_(("paid", "partially_refunded")),
            CheckoutOrder.completed_at.is_(None),
            CheckoutOrder.paid_at <= at - timedelta(days=service.complete_days()),
        )
        .order_by(CheckoutOrder.id)
        .limit(limit)
    ).all()
    completed = []
    for order_id in due:
        moved = db.session.execute(
            update(CheckoutOrder)
            .where(
                CheckoutOrder.id == order_id,
                CheckoutOrder.completed_at.is_(None),
                CheckoutOrder.status.in_(("paid", "partially_refunded")),
            )
            .values(completed_at=at, updated_at=at, version=CheckoutOrder.version + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved:
            service.queue_for_affiliate(order_id=order_id)
            completed.append(order_id)
    return len(completed)


@job(retry_on=(IntegrityError,), attempts=PUSH_ATTEMPTS)
def push_to_affiliate(*, order_id: int) -> str:
    """Send an order's current state into the affiliate pipeline (a queued job; idempotent)."""
    order = db.session.get(CheckoutOrder, order_id, populate_existing=True)
    if order is None or order.version == 0 or order.version <= order.affiliate_version:
        return "up_to_date"
    refunded_at = db.session.scalar(
        select(func.max(CheckoutRefund.settled_at)).where(
            CheckoutRefund.order_id == order.id, CheckoutRefund.status == "succeeded"
        )
    )
    event_at = max(at for at in (order.paid_at, order.completed_at, refunded_at) if at)
    lines = [
        {
            "line_id": str(line.id),
            "product_id": line.product_id,
            "quantity": line.quantity,
            "paid_fen": line.paid_fen,
            "refunded_fen": line.refunded_fen,
        }
        for line in service.order_lines(order_id=order.id)
    ]
    version = order.version
    status = "refunded" if order.status == "refunded" else "completed" if order.completed_at else "paid"
    result = orders.ingest_order(
        source="own",
        external_id=order.out_trade_no,
        status=status,
        version=version,
        event_at=event_at,
        lines=lines,
        buyer_id=order.user_id,
        tracking_code=order.share_code,
        paid_at=order.paid_at,
        completed_at=order.completed_at,
    )
    db.session.execute(
        update(CheckoutOrder)
        .where(CheckoutOrder.id == order_id, CheckoutOrder.affiliate_version < version)
        .values(affiliate_version=version)
        .execution_options(synchronize_session=False)
    )
    return result.outcome


@batch_job
def resend_to_affiliate(*, limit: int = 500) -> int:
    """Push orders whose latest payment or refund the pipeline has not taken in, each a use case of its own (a
    scheduled sweeper)."""
    behind = db.session.scalars(
        select(CheckoutOrder.id)
        .where(CheckoutOrder.version > CheckoutOrder.affiliate_version)
        .order_by(CheckoutOrder.id)
        .limit(limit)
    ).all()
    for order_id in behind:
        try:
            push_to_affiliate(order_id=order_id)
        except Exception:
            log.exception("order %s could not enter the affiliate pipeline; will retry", order_id)
    return len(behind)
