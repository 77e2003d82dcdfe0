"""Order ingestion: one path for webhooks, statement files and the own checkout.

Ingestion is idempotent by (source, external id). Every event carries the whole order (lines with
cumulative refunded amounts) and a version; an event whose version is not newer than the order's is
recorded and ignored. The version moves by a conditional UPDATE (`WHERE version < :new`), which also
serialises concurrent events for one order. A new order is attributed once, and its commission is
posted as pending; refunds reverse every share pro rata; completion starts the holding period.
"""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.accounts import service as accounts
from app.affiliate import service as affiliate
from app.core.clock import now_utc
from app.core.db import among, db
from app.core.errors import ApiError, Invalid, NotFound
from app.core.pagination import keyset_page
from app.ledger import service as ledger
from app.orders import creating, posting
from app.orders import events as order_events
from app.orders.events import IngestResult, LineEvent, OrderEventIn
from app.orders.models import Order, OrderEvent, OrderLine

INGEST_RETRIES = 3


def _insert_events(rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(OrderEvent).on_conflict_do_nothing(index_elements=["order_id", "version"]), rows)


def _apply(order_id: int, event: OrderEventIn) -> bool:
    """Apply a newer event to an existing order; False when it is stale.

    Raises Invalid (422 `refund_exceeds_paid`) when the event refunds a line more than was paid on record;
    the caller's rollback undoes the version already moved.
    """
    moved = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.version < event.version)
        .values(version=event.version, status=event.status, event_at=event.event_at, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        return False
    completed = order_events.completed_at(event)
    if completed is not None:
        db.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.completed_at.is_(None))
            .values(completed_at=completed)
            .execution_options(synchronize_session=False)
        )
    lines = db.session.execute(
        select(OrderLine.id, OrderLine.line_key, OrderLine.paid_fen, OrderLine.refunded_fen).where(
            OrderLine.order_id == order_id
        )
    ).all()
    if order_events.refunded_in_full(event):
        # The whole order is refunded: every line on record, by what was paid on record (not what the event says).
        wanted = {key: paid for _, key, paid, _ in lines}
    else:
        wanted = order_events.refunds_of(event)
        over = sorted(key for _, key, paid, _ in lines if wanted.get(key, 0) > paid)
        if over:
            raise Invalid(
                "A refund cannot exceed what was paid.", code="refund_exceeds_paid", errors={"line_id": over[0]}
            )
    before = {line_id: refunded for line_id, _, _, refunded in lines}
    # Refunds only grow: an event showing less refunded than already recorded changes nothing.
    after = {line_id: max(refunded, wanted.get(key, 0)) for line_id, key, _, refunded in lines}
    grown = {line_id: amount for line_id, amount in after.items() if amount > before[line_id]}
    if grown:
        for line_id, amount in grown.items():
            db.session.execute(
                update(OrderLine)
                .where(OrderLine.id == line_id, OrderLine.refunded_fen < amount)
                .values(refunded_fen=amount)
                .execution_options(synchronize_session=False)
            )
        db.session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(refunded_fen=Order.refunded_fen + sum(grown.values()) - sum(before[i] for i in grown))
            .execution_options(synchronize_session=False)
        )
        settled = db.session.scalar(select(Order.settled_at).where(Order.id == order_id)) is not None
        attributions = affiliate.attributions_of_order(order_id=order_id)
        ledger.post_journals(
            [
                posting.refund_journal(
                    order_id=order_id,
                    version=event.version,
                    attributions=attributions,
                    refunded_before=before,
                    refunded_after=after,
                    settled=settled,
                )
            ]
        )
    return True


def _ingest(events: list[OrderEventIn], products: dict, set_based: bool) -> list[IngestResult]:
    keys = {(e.source, e.external_id) for e in events}
    known = {}
    for source in {s for s, _ in keys}:
        ext_ids = [x for s, x in keys if s == source]
        known.update(
            {
                (source, ext): (oid, version)
                for oid, ext, version in db.session.execute(
                    select(Order.id, Order.external_id, Order.version).where(
                        Order.source == source, among(Order.external_id, ext_ids)
                    )
                )
            }
        )
    # A batch is taken in version order, as if its events had arrived one by one in order: a new order is
    # created from its oldest event (its payment time decides attribution) and the newer ones are applied to
    # it, so a statement holding an order's whole history gives what that history's webhooks give.
    in_order = sorted(range(len(events)), key=lambda i: events[i].version)
    oldest: dict[tuple[str, str], OrderEventIn] = {}
    for e in (events[i] for i in in_order):
        k = (e.source, e.external_id)
        if k not in known and k not in oldest:
            oldest[k] = e
    openids = [e.buyer_openid for e in oldest.values() if e.buyer_openid and e.buyer_id is None]
    created = (
        creating.create_orders(
            list(oldest.values()), products, accounts.user_ids_by_openid(openids=openids), set_based=set_based
        )
        if oldest
        else {}
    )
    known.update({k: (order_id, oldest[k].version) for k, order_id in created.items()})
    results: list[IngestResult | None] = [None] * len(events)
    new_events, event_rows = [], []
    for index in in_order:
        e = events[index]
        k = (e.source, e.external_id)
        order_id, version = known[k]
        if oldest.get(k) is e:
            results[index] = IngestResult(order_id, "created")
            (new_events if set_based else event_rows).append(creating.event_row(order_id, e, True))
            continue
        applied = e.version > version and _apply(order_id, e)
        if applied:
            known[k] = (order_id, e.version)
        results[index] = IngestResult(order_id, "applied" if applied else "stale")
        # The order's current version was recorded when it was created or applied: a replay of it adds nothing.
        if applied or e.version != version:
            event_rows.append(creating.event_row(order_id, e, applied))
    if new_events:
        creating.copy_events(new_events)
    _insert_events(event_rows)
    return results


def _run(events: list[OrderEventIn], products: dict, *, set_based: bool, before_commit=None) -> list[IngestResult]:
    """Ingest checked events in one transaction, retried when a concurrent writer created one of the orders first."""
    for attempt in range(INGEST_RETRIES):
        try:
            results = _ingest(events, products, set_based)
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


def ingest_events(*, events: list[OrderEventIn], before_commit=None) -> list[IngestResult]:
    """Ingest a batch of order events in one transaction (retried if a concurrent writer created an order first).

    `before_commit`, if given, is called inside the transaction (e.g. to record a webhook event id).
    Raises the first event's problem (Invalid, 422) before writing anything.
    """
    # Clicks still in the Redis stream are persisted first, so the last click before a purchase counts.
    affiliate.persist_clicks()
    products, problems = order_events.check(events)
    if problems:
        raise problems[min(problems)]
    return _run(events, products, set_based=False, before_commit=before_commit)


def import_events(*, events: list[OrderEventIn]) -> tuple[list[IngestResult | None], dict[int, ApiError]]:
    """Ingest a statement batch in one transaction, set-based on PostgreSQL (COPY); bad events are set aside.

    Returns one result per event (None for a bad one) and the problem of each bad event by its index.
    """
    affiliate.persist_clicks()
    products, problems = order_events.check(events)
    good = [e for i, e in enumerate(events) if i not in problems]
    set_based = db.session.get_bind().dialect.name == "postgresql"
    done = iter(_run(good, products, set_based=set_based) if good else [])
    return [None if i in problems else next(done) for i in range(len(events))], problems


def ingest_order(
    *,
    source: str,
    external_id: str,
    status: str,
    version: int,
    event_at: datetime,
    lines: list[dict],
    buyer_id: int | None = None,
    buyer_openid: str | None = None,
    tracking_code: str | None = None,
    paid_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> IngestResult:
    """Ingest one order event (the own checkout calls this for paid orders); idempotent by (source, external_id).

    - source: "own" for the own checkout, else the union or merchant name.
    - status: "paid", "completed", "refunded" or "cancelled"; version: grows with every change of the
      order (an event not newer than the stored one is ignored); event_at: aware UTC time of the event.
    - lines: [{"line_id": str, "product_id": int (or "product_external_id": str), "quantity": int,
      "paid_fen": int, "refunded_fen": int (cumulative, optional)}] — the whole order every time.
    - buyer_id (our user id) or buyer_openid; tracking_code: the share code the order carried, if any.
    - paid_at defaults to event_at; completed_at (for "completed") defaults to event_at, and a "refunded"
      event may carry the completion that came before the refund (it starts the holding period).
    Returns IngestResult(order_id, outcome) with outcome "created", "applied" or "stale". Raises Invalid
    (422) for unknown products or buyers and for refunds above the paid amount, committing nothing.
    """
    event = OrderEventIn(
        source=source,
        external_id=external_id,
        status=status,
        version=version,
        event_at=event_at,
        lines=[LineEvent(**line) for line in lines],
        buyer_id=buyer_id,
        buyer_openid=buyer_openid,
        tracking_code=tracking_code,
        paid_at=paid_at,
        completed_at=completed_at,
        payload={"source": source, "external_id": external_id, "status": status, "version": version},
    )
    return ingest_events(events=[event])[0]


def settle_due(*, holding: timedelta | None = None, batch_size: int = 500) -> int:
    """Settle orders completed at least the holding period ago (a scheduled job; idempotent); returns how many."""
    holding = holding if holding is not None else timedelta(days=current_app.config["HOLDING_DAYS"])
    cutoff = now_utc() - holding
    settled = 0
    while True:
        candidates = list(
            db.session.scalars(
                select(Order.id)
                .where(
                    Order.settled_at.is_(None),
                    Order.completed_at.is_not(None),
                    Order.completed_at <= cutoff,
                    Order.status != "cancelled",
                )
                .order_by(Order.id)
                .limit(batch_size)
            )
        )
        if not candidates:
            return settled
        for order_id in candidates:
            taken = db.session.execute(
                update(Order)
                .where(Order.id == order_id, Order.settled_at.is_(None))
                .values(settled_at=now_utc())
                .execution_options(synchronize_session=False)
            ).rowcount
            if not taken:
                continue
            refunded = dict(
                db.session.execute(
                    select(OrderLine.id, OrderLine.refunded_fen).where(OrderLine.order_id == order_id)
                ).all()
            )
            ledger.post_journals(
                [
                    posting.settlement_journal(
                        order_id=order_id,
                        attributions=affiliate.attributions_of_order(order_id=order_id),
                        refunded=refunded,
                    )
                ]
            )
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


def order_detail(*, order_id: int) -> dict:
    """An order with its lines, events, per-line attributions and journals (operators' view)."""
    order = get_order(order_id=order_id)
    return {
        "order": order,
        "lines": lines_of(order_id=order_id),
        "events": events_of(order_id=order_id),
        "attributions": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()}
            for a in affiliate.attributions_of_order(order_id=order_id)
        ],
        "journals": ledger.journals_of_order(order_id=order_id),
    }
