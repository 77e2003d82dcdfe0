"""Order ingestion: one path for webhooks, statement files and the own checkout.

Ingestion is idempotent by (source, external id). Every event carries the whole order (lines with
cumulative refunded amounts) and a version; an event whose version is not newer than the order's is
recorded and ignored. The version moves by a conditional UPDATE (`WHERE version < :new`), which also
serialises concurrent events for one order. A new order is attributed once, and its commission is
posted as pending; refunds reverse every share pro rata; completion starts the holding period.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.accounts import service as accounts
from app.affiliate import attribution, service as affiliate
from app.affiliate.models import Attribution
from app.catalog import service as catalog
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Invalid, NotFound
from app.core.pagination import keyset_page
from app.groups import service as groups
from app.ledger import service as ledger
from app.orders import posting
from app.orders.models import ORDER_STATUSES, Order, OrderEvent, OrderLine

INGEST_RETRIES = 3


@dataclass
class LineEvent:
    line_id: str
    quantity: int
    paid_fen: int
    refunded_fen: int | None = None
    product_id: int | None = None
    product_external_id: str | None = None


@dataclass
class OrderEventIn:
    source: str
    external_id: str
    status: str
    version: int
    event_at: datetime
    lines: list[LineEvent]
    buyer_id: int | None = None
    buyer_openid: str | None = None
    tracking_code: str | None = None
    paid_at: datetime | None = None
    completed_at: datetime | None = None
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    order_id: int
    outcome: str  # "created", "applied" or "stale"


def _refunds_of(event: OrderEventIn) -> dict[str, int]:
    """Cumulative refund per line key; a cancelled order, or a refunded one without amounts, is refunded in full."""
    full = event.status == "cancelled" or (event.status == "refunded" and all(l.refunded_fen is None for l in event.lines))
    return {l.line_id: l.paid_fen if full else (l.refunded_fen or 0) for l in event.lines}


def _validate(events: list[OrderEventIn]) -> dict[tuple[str, str], dict]:
    """Check every event and resolve its products; returns products keyed by (source, product ref)."""
    for event in events:
        if event.status not in ORDER_STATUSES:
            raise Invalid(f"Unknown status {event.status!r}.", code="unknown_order_status")
        if not event.lines:
            raise Invalid("An order has at least one line.", code="order_without_lines")
        if len({l.line_id for l in event.lines}) != len(event.lines):
            raise Invalid("Line ids repeat within the order.", code="duplicate_line_ids")
        for line in event.lines:
            if line.paid_fen < 0 or line.quantity <= 0 or (line.refunded_fen or 0) < 0:
                raise Invalid("Amounts and quantities must be positive.", code="invalid_amount")
            if (line.refunded_fen or 0) > line.paid_fen:
                raise Invalid("A refund cannot exceed what was paid.", code="refund_exceeds_paid",
                              errors={"line_id": line.line_id})
            if (line.product_id is None) == (line.product_external_id is None):
                raise Invalid("Each line names its product by product_id or product_external_id.",
                              code="line_product_missing", errors={"line_id": line.line_id})
        if event.event_at.tzinfo is None:
            raise ValueError("event times must be aware")
    by_id = catalog.require_products(product_ids=[l.product_id for e in events for l in e.lines if l.product_id])
    resolved = {("id", pid): p for pid, p in by_id.items()}
    external = defaultdict(set)
    for event in events:
        for line in event.lines:
            if line.product_external_id is not None:
                external[_catalog_source(event.source)].add(line.product_external_id)
    missing = []
    for source, ids in external.items():
        found = catalog.products_by_external_id(source=source, external_ids=list(ids))
        resolved.update({(source, ext): p for ext, p in found.items()})
        missing += sorted(ids - set(found))
    if missing:
        raise Invalid("Some products are not in the catalog.", code="unknown_products",
                      errors={"product_external_ids": missing})
    buyers = {e.buyer_id for e in events if e.buyer_id is not None}
    unknown = buyers - accounts.existing_user_ids(user_ids=list(buyers))
    if unknown:
        raise Invalid("Some buyers are not users.", code="unknown_buyers", errors={"buyer_ids": sorted(unknown)})
    return resolved


def _catalog_source(order_source: str) -> str:
    return "own" if order_source == "own" else "union"


def _product(resolved: dict, event: OrderEventIn, line: LineEvent):
    if line.product_id is not None:
        return resolved[("id", line.product_id)]
    return resolved[(_catalog_source(event.source), line.product_external_id)]


def _insert_events(rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(OrderEvent).on_conflict_do_nothing(index_elements=["order_id", "version"]), rows)


def _event_row(order_id: int, event: OrderEventIn, applied: bool) -> dict:
    return {"order_id": order_id, "version": event.version, "status": event.status, "event_at": event.event_at,
            "applied": applied, "payload": event.payload, "received_at": now_utc()}


def _completed_at(event: OrderEventIn) -> datetime | None:
    return (event.completed_at or event.event_at) if event.status == "completed" else None


def _create_orders(snapshots: list[OrderEventIn], resolved: dict, buyers: dict[str, int]) -> dict[tuple[str, str], int]:
    now = now_utc()
    order_rows = []
    for e in snapshots:
        refunds = _refunds_of(e)
        paid = sum(l.paid_fen for l in e.lines)
        order_rows.append({
            "source": e.source, "external_id": e.external_id, "buyer_id": e.buyer_id or buyers.get(e.buyer_openid),
            "buyer_openid": e.buyer_openid, "tracking_code": e.tracking_code, "status": e.status, "paid_fen": paid,
            "refunded_fen": sum(refunds.values()), "version": e.version, "event_at": e.event_at,
            "paid_at": e.paid_at or e.event_at, "completed_at": _completed_at(e), "settled_at": None,
            "created_at": now, "updated_at": now})
    order_ids = db.session.scalars(insert(Order).returning(Order.id, sort_by_parameter_order=True), order_rows).all()
    line_rows, line_meta = [], []
    for order_id, e in zip(order_ids, snapshots):
        refunds = _refunds_of(e)
        for line in e.lines:
            product = _product(resolved, e, line)
            line_rows.append({"order_id": order_id, "line_key": line.line_id, "product_id": product.id,
                              "quantity": line.quantity, "paid_fen": line.paid_fen,
                              "refunded_fen": refunds[line.line_id], "seller_bp": product.commission_rate_bp})
            line_meta.append(product)
    line_ids = db.session.scalars(insert(OrderLine).returning(OrderLine.id, sort_by_parameter_order=True), line_rows).all()
    to_attribute = {order_id: attribution.OrderIn(order_id=order_id, buyer_id=row["buyer_id"],
                                                  tracking_code=row["tracking_code"], paid_at=row["paid_at"])
                    for order_id, row in zip(order_ids, order_rows)}
    refunded_after: dict[int, int] = {}
    for line_id, row, product in zip(line_ids, line_rows, line_meta):
        to_attribute[row["order_id"]].lines.append(attribution.LineIn(
            order_line_id=line_id, product_id=product.id, category_id=product.category_id, paid_fen=row["paid_fen"],
            seller_bp=row["seller_bp"]))
        refunded_after[line_id] = row["refunded_fen"]
    attributed = attribution.attribute(list(to_attribute.values()))
    by_order = defaultdict(list)
    for row in attributed.values():
        by_order[row["order_id"]].append(row)
    _record_purchases(by_order, {order_id: row for order_id, row in zip(order_ids, order_rows)})
    drafts = []
    for order_id, e in zip(order_ids, snapshots):
        rows = by_order[order_id]
        drafts.append(posting.paid_journal(order_id=order_id, attributions=rows))
        drafts.append(posting.refund_journal(order_id=order_id, version=e.version, attributions=rows,
                                             refunded_before={}, refunded_after=refunded_after, settled=False))
    ledger.post_journals(drafts)
    return {(e.source, e.external_id): order_id for order_id, e in zip(order_ids, snapshots)}


def _record_purchases(attributions_by_order: dict[int, list[dict]], orders_by_id: dict[int, dict]) -> None:
    """A buyer who is a member of the order's group climbs the fan ladder (non-members are ignored there)."""
    wanted = {(order_id, row["group_id"], orders_by_id[order_id]["buyer_id"])
              for order_id, rows in attributions_by_order.items() for row in rows
              if row["group_id"] is not None and orders_by_id[order_id]["buyer_id"] is not None
              and orders_by_id[order_id]["status"] != "cancelled"}
    members = groups.current_members(pairs={(group_id, buyer_id) for _, group_id, buyer_id in wanted})
    for order_id, group_id, buyer_id in sorted(wanted):
        if (group_id, buyer_id) in members:
            groups.record_member_event(group_id=group_id, user_id=buyer_id, kind="purchased",
                                       occurred_at=orders_by_id[order_id]["paid_at"], ref=f"order:{order_id}",
                                       commit=False)


def _attributions_of(order_id: int) -> list[dict]:
    return [dict(row) for row in db.session.execute(select(Attribution.__table__).where(Attribution.order_id == order_id)).mappings()]


def _apply(order_id: int, event: OrderEventIn) -> bool:
    """Apply a newer event to an existing order; False when it is stale."""
    moved = db.session.execute(
        update(Order).where(Order.id == order_id, Order.version < event.version)
        .values(version=event.version, status=event.status, event_at=event.event_at, updated_at=now_utc())
        .execution_options(synchronize_session=False)).rowcount
    if not moved:
        return False
    completed = _completed_at(event)
    if completed is not None:
        db.session.execute(update(Order).where(Order.id == order_id, Order.completed_at.is_(None))
                           .values(completed_at=completed).execution_options(synchronize_session=False))
    lines = db.session.execute(select(OrderLine.id, OrderLine.line_key, OrderLine.refunded_fen)
                               .where(OrderLine.order_id == order_id)).all()
    wanted = _refunds_of(event)
    before = {line_id: refunded for line_id, _, refunded in lines}
    # Refunds only grow: an event showing less refunded than already recorded changes nothing.
    after = {line_id: max(refunded, wanted.get(key, 0)) for line_id, key, refunded in lines}
    grown = {line_id: amount for line_id, amount in after.items() if amount > before[line_id]}
    if grown:
        for line_id, amount in grown.items():
            db.session.execute(update(OrderLine).where(OrderLine.id == line_id, OrderLine.refunded_fen < amount)
                               .values(refunded_fen=amount).execution_options(synchronize_session=False))
        db.session.execute(update(Order).where(Order.id == order_id)
                           .values(refunded_fen=Order.refunded_fen + sum(grown.values()) - sum(before[i] for i in grown))
                           .execution_options(synchronize_session=False))
        settled = db.session.scalar(select(Order.settled_at).where(Order.id == order_id)) is not None
        ledger.post_journals([posting.refund_journal(order_id=order_id, version=event.version,
                                                     attributions=_attributions_of(order_id), refunded_before=before,
                                                     refunded_after=after, settled=settled)])
    return True


def _ingest(events: list[OrderEventIn]) -> list[IngestResult]:
    resolved = _validate(events)
    keys = {(e.source, e.external_id) for e in events}
    known = {}
    for source in {s for s, _ in keys}:
        ext_ids = [x for s, x in keys if s == source]
        known.update({(source, ext): (oid, version) for oid, ext, version in db.session.execute(
            select(Order.id, Order.external_id, Order.version).where(Order.source == source, Order.external_id.in_(ext_ids)))})
    newest: dict[tuple[str, str], OrderEventIn] = {}
    for e in events:
        k = (e.source, e.external_id)
        if k not in known and (k not in newest or e.version > newest[k].version):
            newest[k] = e
    openids = [e.buyer_openid for e in newest.values() if e.buyer_openid and e.buyer_id is None]
    created = _create_orders(list(newest.values()), resolved, accounts.user_ids_by_openid(openids=openids)) if newest else {}
    results, event_rows = [], []
    for e in events:
        k = (e.source, e.external_id)
        if k in created:
            order_id = created[k]
            is_snapshot = newest[k] is e
            results.append(IngestResult(order_id, "created" if is_snapshot else "stale"))
            event_rows.append(_event_row(order_id, e, is_snapshot))
            continue
        order_id, version = known[k]
        applied = e.version > version and _apply(order_id, e)
        if applied:
            known[k] = (order_id, e.version)
        results.append(IngestResult(order_id, "applied" if applied else "stale"))
        event_rows.append(_event_row(order_id, e, applied))
    _insert_events(event_rows)
    return results


def ingest_events(*, events: list[OrderEventIn], before_commit=None) -> list[IngestResult]:
    """Ingest a batch of order events in one transaction (retried if a concurrent writer created an order first).

    `before_commit`, if given, is called inside the transaction (e.g. to record a webhook event id).
    """
    for attempt in range(INGEST_RETRIES):
        try:
            results = _ingest(events)
            if before_commit is not None:
                before_commit(results)
            db.session.commit()
            return results
        except IntegrityError:
            db.session.rollback()
            if attempt == INGEST_RETRIES - 1:
                raise
        except BaseException:
            db.session.rollback()
            raise
    raise AssertionError("unreachable")


def ingest_order(*, source: str, external_id: str, status: str, version: int, event_at: datetime,
                 lines: list[dict], buyer_id: int | None = None, buyer_openid: str | None = None,
                 tracking_code: str | None = None, paid_at: datetime | None = None,
                 completed_at: datetime | None = None) -> IngestResult:
    """Ingest one order event (the own checkout calls this for paid orders); idempotent by (source, external_id).

    - source: "own" for the own checkout, else the union or merchant name.
    - status: "paid", "completed", "refunded" or "cancelled"; version: grows with every change of the
      order (an event not newer than the stored one is ignored); event_at: aware UTC time of the event.
    - lines: [{"line_id": str, "product_id": int (or "product_external_id": str), "quantity": int,
      "paid_fen": int, "refunded_fen": int (cumulative, optional)}] — the whole order every time.
    - buyer_id (our user id) or buyer_openid; tracking_code: the share code the order carried, if any.
    - paid_at defaults to event_at; completed_at (for "completed") defaults to event_at.
    Returns IngestResult(order_id, outcome) with outcome "created", "applied" or "stale". Raises Invalid
    (422) for unknown products or buyers and for refunds above the paid amount, committing nothing.
    """
    event = OrderEventIn(source=source, external_id=external_id, status=status, version=version, event_at=event_at,
                         lines=[LineEvent(**line) for line in lines], buyer_id=buyer_id, buyer_openid=buyer_openid,
                         tracking_code=tracking_code, paid_at=paid_at, completed_at=completed_at,
                         payload={"source": source, "external_id": external_id, "status": status, "version": version})
    return ingest_events(events=[event])[0]


def settle_due(*, holding: timedelta | None = None, batch_size: int = 500) -> int:
    """Settle orders completed at least the holding period ago (a scheduled job; idempotent); returns how many."""
    holding = holding if holding is not None else timedelta(days=current_app.config.get("HOLDING_DAYS", 7))
    cutoff = now_utc() - holding
    settled = 0
    while True:
        candidates = list(db.session.scalars(
            select(Order.id).where(Order.settled_at.is_(None), Order.completed_at.is_not(None),
                                   Order.completed_at <= cutoff, Order.status != "cancelled")
            .order_by(Order.id).limit(batch_size)))
        if not candidates:
            return settled
        for order_id in candidates:
            taken = db.session.execute(
                update(Order).where(Order.id == order_id, Order.settled_at.is_(None)).values(settled_at=now_utc())
                .execution_options(synchronize_session=False)).rowcount
            if not taken:
                continue
            refunded = dict(db.session.execute(select(OrderLine.id, OrderLine.refunded_fen)
                                               .where(OrderLine.order_id == order_id)).all())
            ledger.post_journals([posting.settlement_journal(order_id=order_id, attributions=_attributions_of(order_id),
                                                             refunded=refunded)])
            settled += 1
        db.session.commit()


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
    stmt = (select(func.count(func.distinct(Order.id)), func.coalesce(func.sum(OrderLine.paid_fen), 0),
                   func.coalesce(func.sum(OrderLine.refunded_fen), 0))
            .select_from(Attribution).join(OrderLine, OrderLine.id == Attribution.order_line_id)
            .join(Order, Order.id == OrderLine.order_id)
            .where(Attribution.group_id == group_id, Order.status != "cancelled"))
    if since is not None:
        stmt = stmt.where(Order.paid_at >= since)
    if until is not None:
        stmt = stmt.where(Order.paid_at < until)
    orders, gmv, refunded = db.session.execute(stmt).one()
    return {"orders": int(orders), "gmv_fen": int(gmv), "refunded_fen": int(refunded),
            "net_gmv_fen": int(gmv) - int(refunded)}


def search_orders(*, source: str | None, external_id: str | None, buyer_id: int | None, status: str | None,
                  cursor: str | None, limit: int) -> tuple[list[Order], str | None]:
    """Operators' order search, newest first."""
    stmt = select(Order)
    for column, value in ((Order.source, source), (Order.external_id, external_id), (Order.buyer_id, buyer_id),
                          (Order.status, status)):
        if value is not None:
            stmt = stmt.where(column == value)
    return keyset_page(stmt, columns=[Order.id], kinds=[int], cursor=cursor, limit=limit, key_of=lambda o: (o.id,),
                       session=db.session)


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
    return list(db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.version)))


def order_detail(*, order_id: int) -> dict:
    """An order with its lines, events, per-line attributions and journals (operators' view)."""
    order = get_order(order_id=order_id)
    return {"order": order, "lines": lines_of(order_id=order_id), "events": events_of(order_id=order_id),
            "attributions": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()}
                             for a in affiliate.attributions_of_order(order_id=order_id)],
            "journals": ledger.journals_of_order(order_id=order_id)}
