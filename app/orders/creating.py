"""Creating new orders from their first events: rows, attribution, fan-ladder purchases and the paid journals.

Two ways to write, one way to decide: webhooks and the checkout insert through SQLAlchemy; statement
imports on PostgreSQL (`set_based`) take ids ahead from the sequences and COPY the rows. The rows, the
attribution decisions, the share arithmetic and the journals are built by the same code either way.
"""

from collections import defaultdict

from sqlalchemy import insert

from app.affiliate import service as affiliate
from app.core import pg_copy
from app.core.clock import now_utc
from app.core.db import db
from app.groups import service as groups
from app.ledger import service as ledger
from app.orders import journals
from app.orders.events import OrderEventIn, completed_at, product_of, refunds_of
from app.orders.models import Order, OrderEvent, OrderLine

ORDER_COLUMNS = (
    "source",
    "external_id",
    "buyer_id",
    "buyer_openid",
    "tracking_code",
    "status",
    "paid_fen",
    "refunded_fen",
    "version",
    "event_at",
    "paid_at",
    "completed_at",
    "settled_at",
    "created_at",
    "updated_at",
)
LINE_COLUMNS = ("order_id", "line_key", "product_id", "quantity", "paid_fen", "refunded_fen", "seller_bp")
EVENT_COLUMNS = ("order_id", "version", "status", "event_at", "applied", "payload", "received_at")


def _copy(model, columns: tuple[str, ...], rows: list[dict]) -> list[int]:
    """COPY rows with ids taken ahead; returns the ids in row order."""
    ids = pg_copy.allocate_ids(model.__table__, len(rows))
    pg_copy.copy_rows(model.__table__, ("id", *columns), ((i, *(row[c] for c in columns)) for i, row in zip(ids, rows)))
    return ids


def _insert(model, rows: list[dict], set_based: bool) -> list[int]:
    if set_based:
        return _copy(model, ORDER_COLUMNS if model is Order else LINE_COLUMNS, rows)
    return db.session.scalars(insert(model).returning(model.id, sort_by_parameter_order=True), rows).all()


def event_row(order_id: int, event: OrderEventIn, applied: bool) -> dict:
    return {
        "order_id": order_id,
        "version": event.version,
        "status": event.status,
        "event_at": event.event_at,
        "applied": applied,
        "payload": event.payload,
        "received_at": now_utc(),
    }


def copy_events(rows: list[dict]) -> None:
    """COPY the events of orders created in this transaction (their (order, version) cannot exist yet)."""
    pg_copy.copy_rows(OrderEvent.__table__, EVENT_COLUMNS, (tuple(row[c] for c in EVENT_COLUMNS) for row in rows))


def create_orders(
    snapshots: list[OrderEventIn], products: dict, buyers: dict[str, int], *, set_based: bool = False
) -> dict[tuple[str, str], int]:
    """Write new orders with their lines, attribute every line and post the paid (and any refund) journals.

    `set_based` only on PostgreSQL. Returns the new order ids keyed by (source, external id). A concurrent
    writer that created one of them first makes the write fail with IntegrityError; the caller retries.
    """
    now = now_utc()
    order_rows = []
    for e in snapshots:
        refunds = refunds_of(e)
        order_rows.append(
            {
                "source": e.source,
                "external_id": e.external_id,
                "buyer_id": e.buyer_id or buyers.get(e.buyer_openid),
                "buyer_openid": e.buyer_openid,
                "tracking_code": e.tracking_code,
                "status": e.status,
                "paid_fen": sum(line.paid_fen for line in e.lines),
                "refunded_fen": sum(refunds.values()),
                "version": e.version,
                "event_at": e.event_at,
                "paid_at": e.paid_at or e.event_at,
                "completed_at": completed_at(e),
                "settled_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    order_ids = _insert(Order, order_rows, set_based)
    line_rows, line_products = [], []
    for order_id, e in zip(order_ids, snapshots):
        refunds = refunds_of(e)
        for line in e.lines:
            product = product_of(products, e, line)
            line_rows.append(
                {
                    "order_id": order_id,
                    "line_key": line.line_id,
                    "product_id": product.id,
                    "quantity": line.quantity,
                    "paid_fen": line.paid_fen,
                    "refunded_fen": refunds[line.line_id],
                    "seller_bp": product.commission_rate_bp,
                }
            )
            line_products.append(product)
    line_ids = _insert(OrderLine, line_rows, set_based)
    to_attribute = {
        order_id: affiliate.OrderIn(
            order_id=order_id, buyer_id=row["buyer_id"], tracking_code=row["tracking_code"], paid_at=row["paid_at"]
        )
        for order_id, row in zip(order_ids, order_rows)
    }
    refunded_after: dict[int, int] = {}
    for line_id, row, product in zip(line_ids, line_rows, line_products):
        to_attribute[row["order_id"]].lines.append(
            affiliate.LineIn(
                order_line_id=line_id,
                product_id=product.id,
                category_id=product.category_id,
                paid_fen=row["paid_fen"],
                seller_bp=row["seller_bp"],
            )
        )
        refunded_after[line_id] = row["refunded_fen"]
    attributed = affiliate.attribute_orders(orders=list(to_attribute.values()), set_based=set_based)
    by_order = defaultdict(list)
    for row in attributed.values():
        by_order[row["order_id"]].append(row)
    _record_purchases(by_order, dict(zip(order_ids, order_rows)))
    drafts = []
    for order_id, e in zip(order_ids, snapshots):
        rows = by_order[order_id]
        drafts.append(journals.paid_journal(order_id=order_id, attributions=rows))
        drafts.append(
            journals.refund_journal(
                order_id=order_id,
                version=e.version,
                attributions=rows,
                refunded_before={},
                refunded_after=refunded_after,
                settled=False,
            )
        )
    ledger.post_journals(drafts)
    return {(e.source, e.external_id): order_id for order_id, e in zip(order_ids, snapshots)}


def _record_purchases(attributions_by_order: dict[int, list[dict]], orders_by_id: dict[int, dict]) -> None:
    """A buyer who is a member of the order's group climbs the fan ladder (non-members are ignored there)."""
    wanted = {
        (order_id, row["group_id"], orders_by_id[order_id]["buyer_id"])
        for order_id, rows in attributions_by_order.items()
        for row in rows
        if row["group_id"] is not None
        and orders_by_id[order_id]["buyer_id"] is not None
        and orders_by_id[order_id]["status"] != "cancelled"
    }
    groups.record_member_events(
        events=[
            groups.MemberEventIn(
                group_id=group_id,
                user_id=buyer_id,
                kind="purchased",
                occurred_at=orders_by_id[order_id]["paid_at"],
                ref=f"order:{order_id}",
            )
            for order_id, group_id, buyer_id in sorted(wanted)
        ]
    )
