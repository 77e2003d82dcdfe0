"""Orders as they are on record: reads for operators and other domains, and the writes that touch orders alone.

Ingestion and settlement also write other domains (attribution, the ledger, the fan ladder): see `flows`.
"""

from datetime import datetime

from sqlalchemy import func, select, update

from app.affiliate import service as affiliate
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import NotFound
from app.core.pagination import keyset_page
from app.orders.models import Order, OrderEvent, OrderLine


def settlement_candidates(*, completed_by: datetime, limit: int) -> list[int]:
    """Orders not settled yet whose completion came at or before `completed_by` (cancelled ones never settle)."""
    return list(
        db.session.scalars(
            select(Order.id)
            .where(
                Order.settled_at.is_(None),
                Order.completed_at.is_not(None),
                Order.completed_at <= completed_by,
                Order.status != "cancelled",
            )
            .order_by(Order.id)
            .limit(limit)
        )
    )


def take_for_settlement(*, order_id: int) -> bool:
    """Mark an order settled now, once: False when it already was (a concurrent settlement took it)."""
    return (
        db.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.settled_at.is_(None))
            .values(settled_at=now_utc())
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def refunded_by_line(*, order_id: int) -> dict[int, int]:
    """Each line's cumulative refund, by line id."""
    return dict(
        db.session.execute(select(OrderLine.id, OrderLine.refunded_fen).where(OrderLine.order_id == order_id)).all()
    )


def order_summaries(*, order_ids: list[int]) -> dict[int, dict]:
    """Orders (source, external id, status, amounts) keyed by id."""
    wanted = set(order_ids)
    if not wanted:
        return {}
    rows = db.session.execute(select(Order.__table__).where(Order.id.in_(wanted))).mappings()
    return {row["id"]: dict(row) for row in rows}


def line_summaries(*, line_ids: list[int]) -> dict[int, dict]:
    """Order lines keyed by id."""
    wanted = set(line_ids)
    if not wanted:
        return {}
    rows = db.session.execute(select(OrderLine.__table__).where(OrderLine.id.in_(wanted))).mappings()
    return {row["id"]: dict(row) for row in rows}


def group_order_figures(*, group_id: int, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Orders attributed to a group (paid_at in [since, until)): count, GMV, refunds and net GMV in fen.

    Cancelled orders never took money and are left out.
    """
    stmt = (
        select(
            func.count(func.distinct(Order.id)),
            func.coalesce(func.sum(OrderLine.paid_fen), 0),
            func.coalesce(func.sum(OrderLine.refunded_fen), 0),
        )
        .select_from(OrderLine)
        .join(Order, Order.id == OrderLine.order_id)
        .where(OrderLine.id.in_(affiliate.lines_attributed_to_group(group_id=group_id)), Order.status != "cancelled")
    )
    if since is not None:
        stmt = stmt.where(Order.paid_at >= since)
    if until is not None:
        stmt = stmt.where(Order.paid_at < until)
    orders, gmv, refunded = db.session.execute(stmt).one()
    return {
        "orders": int(orders),
        "gmv_fen": int(gmv),
        "refunded_fen": int(refunded),
        "net_gmv_fen": int(gmv) - int(refunded),
    }


def search_orders(
    *,
    source: str | None,
    external_id: str | None,
    buyer_id: int | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Order], str | None]:
    """Operators' order search, newest first."""
    stmt = select(Order)
    for column, value in (
        (Order.source, source),
        (Order.external_id, external_id),
        (Order.buyer_id, buyer_id),
        (Order.status, status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return keyset_page(
        stmt, columns=[Order.id], kinds=[int], cursor=cursor, limit=limit, key_of=lambda o: (o.id,), session=db.session
    )


def get_order(*, order_id: int) -> Order:
    """One order, or 404 `order_not_found`."""
    order = db.session.get(Order, order_id)
    if order is None:
        raise NotFound("No such order.", code="order_not_found")
    return order


def lines_of(*, order_id: int) -> list[OrderLine]:
    """An order's lines."""
    return list(db.session.scalars(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id)))


def events_of(*, order_id: int) -> list[OrderEvent]:
    """Every event version received for an order, applied or ignored."""
    return list(
        db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.version))
    )
