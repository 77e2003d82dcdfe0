"""Own checkout: place an order, pay it through WeChat Pay (JSAPI), expire it unpaid, refund it.

- Placing prices the lines with the coupon, holds the coupon, asks WeChat for a prepay id and commits all
  of it at once: if WeChat refuses, nothing was written and the coupon stays free.
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
  `app.orders.service.ingest_order`, as source "own" keyed by out_trade_no, from a queued job after the
  payment or refund committed. Each payment and refund moves the order's version; the job sends the whole
  current state, so replays and reordering are harmless, and a sweeper resends any order still behind.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_request_context, request
from rq import Retry
from sqlalchemy import func, select, update
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException

from app.accounts import service as accounts
from app.catalog import service as catalog
from app.checkout.models import CheckoutOrder, CheckoutOrderLine, CheckoutPayment, CheckoutRefund
from app.core.clock import now_utc
from app.core.db import commit, db
from app.core.errors import ApiError, Conflict, Invalid, NotFound, UpstreamError
from app.core.pagination import keyset_page
from app.core.queue import enqueue
from app.coupons import service as coupons
from app.coupons.pricing import Line
from app.wechat.clients import clients
from app.wechat.service import translated_errors

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_ID = 2**63 - 1
PAID_STATES = ("paid", "partially_refunded", "refunded")
CLOSED_UNPAID = ("expired", "cancelled")


@dataclass(frozen=True)
class PlacedOrder:
    order: CheckoutOrder
    lines: list[CheckoutOrderLine]
    pay_params: dict


def _payment_minutes() -> int:
    return current_app.config["CHECKOUT_PAYMENT_MINUTES"]


def _complete_days() -> int:
    return current_app.config["CHECKOUT_COMPLETE_DAYS"]


def notify_url(*, setting: str, path: str) -> str:
    """Where WeChat Pay calls us back: the URL configured under `setting`, else `path` on the host asked."""
    configured = current_app.config[setting]
    if configured:
        return configured
    root = request.url_root if has_request_context() else "http://localhost:5000/"
    return root.rstrip("/") + path


def _out_trade_no(at: datetime) -> str:
    return "MMQ" + at.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6).upper()


def get_order(*, order_id: int, user_id: int | None = None) -> CheckoutOrder:
    """An order (a buyer sees only their own); 404 `order_not_found`."""
    order = db.session.get(CheckoutOrder, order_id) if 0 < order_id <= MAX_ID else None
    if order is None or (user_id is not None and order.user_id != user_id):
        raise NotFound("No such order.", code="order_not_found")
    return order


def order_lines(*, order_id: int) -> list[CheckoutOrderLine]:
    """The lines of an order, in the order they were placed."""
    return list(
        db.session.scalars(
            select(CheckoutOrderLine).where(CheckoutOrderLine.order_id == order_id).order_by(CheckoutOrderLine.id)
        )
    )


def list_orders(
    *, user_id: int, status: str | None, cursor: str | None, limit: int
) -> tuple[list[tuple[CheckoutOrder, list[CheckoutOrderLine]]], str | None]:
    """A buyer's orders with their lines, newest first (optionally of one status), a page at a time."""
    stmt = select(CheckoutOrder).where(CheckoutOrder.user_id == user_id)
    if status is not None:
        stmt = stmt.where(CheckoutOrder.status == status)
    orders, next_cursor = keyset_page(
        stmt,
        columns=[CheckoutOrder.created_at, CheckoutOrder.id],
        kinds=[datetime, int],
        cursor=cursor,
        limit=limit,
        key_of=lambda o: (o.created_at, o.id),
        session=db.session,
    )
    lines: dict[int, list[CheckoutOrderLine]] = {order.id: [] for order in orders}
    if orders:
        for line in db.session.scalars(
            select(CheckoutOrderLine).where(CheckoutOrderLine.order_id.in_(list(lines))).order_by(CheckoutOrderLine.id)
        ):
            lines[line.order_id].append(line)
    return [(order, lines[order.id]) for order in orders], next_cursor


def _priceable_lines(requested: list[dict]) -> tuple[list[Line], dict]:
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
        Line(
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
        out_trade_no=_out_trade_no(at),
        user_id=user_id,
        status="pending_payment",
        subtotal_fen=priced.subtotal_fen,
        discount_fen=priced.discount_fen,
        payable_fen=priced.payable_fen,
        refunded_fen=0,
        coupon_id=coupon_id,
        share_code=share_code,
        expires_at=at + timedelta(minutes=_payment_minutes()),
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
    pay = clients().pay
    called_back = notify_url(setting="WECHAT_PAY_NOTIFY_URL", path="/api/v1/webhooks/wechatpay")
    with translated_errors("the payment"):
        prepay = pay.order.create(
            trade_type="JSAPI",
            body=title[:120],
            total_fee=order.payable_fen,
            notify_url=called_back,
            client_ip=client_ip,
            user_id=user.openid,
            out_trade_no=order.out_trade_no,
            time_start=at.astimezone(SHANGHAI),
            time_expire=order.expires_at.astimezone(SHANGHAI),
            attach=str(order.id),
        )
    order.prepay_id = prepay["prepay_id"]
    commit()
    return PlacedOrder(order=order, lines=rows, pay_params=pay_params(order=order))


def pay_params(*, order: CheckoutOrder) -> dict:
    """What wx.requestPayment needs (signed afresh each time; the prepay id stays the same)."""
    return clients().pay.jsapi.get_jsapi_params(order.prepay_id)


# -- payments ---------------------------------------------------------------------------------------------


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
    pay = clients().pay
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
    db.session.commit()
    if outcome == "applied":
        queue_for_affiliate(order_id=order.id)
    return outcome


def expire_unpaid_orders(*, limit: int = 200) -> dict[str, int]:
    """Expire orders unpaid past their deadline, after asking WeChat (a scheduled job; idempotent)."""
    due = db.session.scalars(
        select(CheckoutOrder)
        .where(CheckoutOrder.status == "pending_payment", CheckoutOrder.expires_at <= now_utc())
        .order_by(CheckoutOrder.expires_at)
        .limit(limit)
    ).all()
    counts = {"expired": 0, "paid": 0, "skipped": 0}
    for order in due:
        outcome = _close_unpaid(order, closed_as="expired")
        if outcome in counts:
            counts[outcome] += 1
    return counts


def cancel_order(*, order_id: int, user_id: int) -> CheckoutOrder:
    """The buyer cancels an unpaid order: WeChat's order is closed and the coupon freed at once (idempotent)."""
    order = get_order(order_id=order_id, user_id=user_id)
    if order.status == "pending_payment":
        outcome = _close_unpaid(order, closed_as="cancelled")
        if outcome == "skipped":
            raise UpstreamError(
                "WeChat Pay could not confirm the order is unpaid; try again shortly.", code="wechat_pay_unavailable"
            )
        db.session.refresh(order)
    if order.status in PAID_STATES:
        raise Conflict(
            "The order is paid; ask for a refund instead.", code="order_already_paid", errors={"status": order.status}
        )
    return order


def _close_unpaid(order: CheckoutOrder, *, closed_as: str) -> str:
    """Close an unpaid order as `closed_as` after asking WeChat: the outcome, 'paid' or 'skipped' (commits)."""
    pay = clients().pay
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
            _apply_payment(
                order=order,
                transaction_id=str(state["transaction_id"]),
                amount_fen=int(state["total_fee"]),
                openid=str(state.get("openid", "")),
                source="query",
                payload=dict(state),
            )
            db.session.commit()
        except ApiError:
            db.session.rollback()
            return "skipped"
        queue_for_affiliate(order_id=order.id)
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
    db.session.commit()
    return closed_as if moved else "unchanged"


# -- completion -------------------------------------------------------------------------------------------


def complete_paid_orders(*, limit: int = 500) -> int:
    """Complete orders paid CHECKOUT_COMPLETE_DAYS ago and not wholly refunded (a scheduled job; idempotent)."""
    at = now_utc()
    due = db.session.scalars(
        select(CheckoutOrder.id)
        .where(
            CheckoutOrder.status.in_(("paid", "partially_refunded")),
            CheckoutOrder.completed_at.is_(None),
            CheckoutOrder.paid_at <= at - timedelta(days=_complete_days()),
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
            completed.append(order_id)
    db.session.commit()
    for order_id in completed:
        queue_for_affiliate(order_id=order_id)
    return len(completed)


# -- the affiliate pipeline -------------------------------------------------------------------------------


def queue_for_affiliate(*, order_id: int) -> None:
    """Send the order's state to the affiliate pipeline from a queued job (retried; a sweeper backs it up)."""
    enqueue(
        "ingest",
        "app.checkout.tasks.push_order_to_affiliate",
        order_id,
        retry=Retry(max=5, interval=[10, 60, 300, 900, 3600]),
    )


def push_to_affiliate(*, order_id: int) -> str:
    """Send an order's current state into the affiliate pipeline (a queued job; idempotent)."""
    from app.orders import service as orders

    order = db.session.get(CheckoutOrder, order_id)
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
        for line in order_lines(order_id=order.id)
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
    db.session.commit()
    return result.outcome


def resend_to_affiliate(*, limit: int = 500) -> int:
    """Push orders whose latest payment or refund the pipeline has not taken in (a scheduled sweeper)."""
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
            db.session.rollback()
            log.exception("order %s could not enter the affiliate pipeline; will retry", order_id)
    return len(behind)
