"""Own checkout: orders paid with WeChat Pay (JSAPI), as they are on record, and what WeChat Pay needs of them.

The use cases that change an order also change its coupon or send it on to the orders domain: see `flows`
(placing, paying, closing unpaid, completing, entering the affiliate pipeline) and `refunds`.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, has_request_context, request
from rq import Retry
from sqlalchemy import select

from app.checkout.models import CheckoutOrder, CheckoutOrderLine
from app.core.clock import DEFAULT_ZONE
from app.core.db import after_commit, db
from app.core.errors import NotFound
from app.core.http import MAX_ID
from app.core.pagination import keyset_page
from app.core.queue import enqueue
from app.wechat import service as wechat

PAID_STATES = ("paid", "partially_refunded", "refunded")
CLOSED_UNPAID = ("expired", "cancelled")


@dataclass(frozen=True)
class PlacedOrder:
    order: CheckoutOrder
    lines: list[CheckoutOrderLine]
    pay_params: dict


def payment_minutes() -> int:
    """How long an order waits for its payment (CHECKOUT_PAYMENT_MINUTES)."""
    return current_app.config["CHECKOUT_PAYMENT_MINUTES"]


def complete_days() -> int:
    """How long after its payment a paid order counts as received (CHECKOUT_COMPLETE_DAYS)."""
    return current_app.config["CHECKOUT_COMPLETE_DAYS"]


def notify_url(*, setting: str, path: str) -> str:
    """Where WeChat Pay calls us back: the URL configured under `setting`, else `path` on the host asked."""
    configured = current_app.config[setting]
    if configured:
        return configured
    root = request.url_root if has_request_context() else "http://localhost:5000/"
    return root.rstrip("/") + path


def out_trade_no(at: datetime) -> str:
    """A new order's number at WeChat Pay: its China time, then randomness."""
    return "MMQ" + at.astimezone(DEFAULT_ZONE).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6).upper()


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


def pay_params(*, order: CheckoutOrder) -> dict:
    """What wx.requestPayment needs (signed afresh each time; the prepay id stays the same)."""
    return wechat.pay_client().jsapi.get_jsapi_params(order.prepay_id)


def queue_for_affiliate(*, order_id: int) -> None:
    """Once the change commits, send the order's state to the affiliate pipeline from a queued job (retried; a
    sweeper backs it up)."""
    after_commit(
        lambda: enqueue(
            "ingest",
            "app.checkout.flows.push_to_affiliate",
            order_id=order_id,
            retry=Retry(max=5, interval=[10, 60, 300, 900, 3600]),
        )
    )
