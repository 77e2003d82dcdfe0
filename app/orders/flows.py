"""Orders' use cases that write other domains too: ingestion (attribution, commission journals, the fan ladder),
settlement (orders and the ledger), and the earnings read model (a user's ledger entries with the order, line,
product and attribution behind each).

Ingestion is one path for webhooks, statement files and the own checkout, and idempotent by (source, external
id). Every event carries the whole order (lines with cumulative refunded amounts) and a version; an event whose
version is not newer than the order's is recorded and ignored. The version moves by a conditional UPDATE
(`WHERE version < :new`), which also serialises concurrent events for one order. A new order is attributed
once, and its commission is posted as pending; refunds reverse every share pro rata; completion starts the
holding period. Two events creating the same order at once: the later one fails on the unique key; its edge
runs the use case again, which then applies the event to the order the other created.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.accounts import service as accounts
from app.affiliate import service as affiliate
from app.catalog import service as catalog
from app.core.clock import now_utc
from app.core.db import among, db, is_postgres, upsert_insert, use_case
from app.core.errors import ApiError, Invalid
from app.ledger import service as ledger
from app.orders import creating, journals, service
from app.orders import events as order_events
from app.orders.events import IngestResult, LineEvent, OrderEventIn
from app.orders.models import Order, OrderEvent, OrderLine

SETTLEMENT_BATCH = 500


def _insert_events(rows: list[dict]) -> None:
    if not rows:
        return
    db.session.execute(upsert_insert(OrderEvent).on_conflict_do_nothing(index_elements=["order_id", "version"]), rows)


def _apply(order_id: int, event: OrderEventIn) -> bool:
    """Apply a newer event to an existing order; False when it is stale.

    Raises Invalid (422 `refund_exceeds_paid`) when the event refunds a line more than was paid on record;
    the edge's rollback undoes the version already moved.
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
                journals.refund_journal(
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


def ingest_events(
    *, events: list[OrderEventIn], and_then: Callable[[list[IngestResult]], None] | None = None
) -> list[IngestResult]:
    """Ingest a batch of order events; raises the first event's problem (Invalid, 422) before writing anything.

    `and_then(results)`, if given, runs right after, in a savepoint with the ingestion: when it raises, the
    ingestion is undone with it (a webhook recording its event id finds a duplicate) and the error propagates.
    Run it as one use case retried on IntegrityError (see the module's docstring).
    """
    # Clicks still in the Redis stream are persisted first, so the last click before a purchase counts.
    affiliate.persist_clicks()
    products, problems = order_events.check(events)
    if problems:
        raise problems[min(problems)]
    if and_then is None:
        return _ingest(events, products, set_based=False)
    with db.session.begin_nested():
        results = _ingest(events, products, set_based=False)
        and_then(results)
    return results


def import_events(*, events: list[OrderEventIn]) -> tuple[list[IngestResult | None], dict[int, ApiError]]:
    """Ingest a statement batch, set-based on PostgreSQL (COPY); bad events are set aside.

    Returns one result per event (None for a bad one) and the problem of each bad event by its index.
    """
    affiliate.persist_clicks()
    products, problems = order_events.check(events)
    good = [e for i, e in enumerate(events) if i not in problems]
    done = iter(_ingest(good, products, set_based=is_postgres()) if good else [])
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
    (422) for unknown products or buyers and for refunds above the paid amount, writing nothing.
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


def settle_due(*, holding: timedelta | None = None, batch_size: int = SETTLEMENT_BATCH) -> int:
    """Settle orders completed at least the holding period ago; returns how many (idempotent).

    Each batch of orders is a use case of its own (joining the caller's when there is one): the order's
    `settled_at` is taken by a conditional UPDATE and its settlement journal posted in the same transaction.
    """
    holding = holding if holding is not None else timedelta(days=current_app.config["HOLDING_DAYS"])
    cutoff = now_utc() - holding
    settled = 0
    while True:
        with use_case():
            candidates = service.settlement_candidates(completed_by=cutoff, limit=batch_size)
            for order_id in candidates:
                if not service.take_for_settlement(order_id=order_id):
                    continue
                ledger.post_journals(
                    [
                        journals.settlement_journal(
                            order_id=order_id,
                            attributions=affiliate.attributions_of_order(order_id=order_id),
                            refunded=service.refunded_by_line(order_id=order_id),
                        )
                    ]
                )
                settled += 1
        if not candidates:
            return settled


def _why(entry: dict, attribution: dict | None, order: dict | None, line: dict | None, product) -> dict:
    share = entry["share"]
    trace = {
        "journal_id": entry["journal_id"],
        "journal_kind": entry["journal_kind"],
        "reason": entry["reason"],
        "withdrawal_id": entry["withdrawal_id"],
        "order": None,
        "line": None,
        "attribution": None,
    }
    if order is not None:
        trace["order"] = {
            "id": order["id"],
            "source": order["source"],
            "external_id": order["external_id"],
            "status": order["status"],
            "paid_at": order["paid_at"],
        }
    if line is not None:
        trace["line"] = {
            "id": line["id"],
            "product_id": line["product_id"],
            "product_title": product.title if product else None,
            "quantity": line["quantity"],
            "paid_fen": line["paid_fen"],
            "refunded_fen": line["refunded_fen"],
        }
    if attribution is not None:
        trace["attribution"] = {
            "id": attribution["id"],
            "rule": attribution["rule"],
            "click_id": attribution["click_id"],
            "share_link_id": attribution["share_link_id"],
            "group_id": attribution["group_id"],
            "post_id": attribution["post_id"],
            "content_id": attribution["content_id"],
            "commission_rule_id": attribution["commission_rule_id"],
            "base_fen": attribution["base_fen"],
            "rate_bp": attribution.get(f"{share}_bp") if share in journals.PEOPLE else None,
            "share_fen": attribution.get(f"{share}_fen") if share in journals.PEOPLE else None,
        }
    return trace


def earning_entries(*, user_id: int, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """The user's ledger entries, newest first, each with its why-trace (order, line, product, click, rule, rate)."""
    rows, next_cursor = ledger.entries(owner_id=user_id, cursor=cursor, limit=limit)
    attributions = affiliate.attributions_by_id(
        attribution_ids=[r["attribution_id"] for r in rows if r["attribution_id"]]
    )
    order_rows = service.order_summaries(order_ids=[r["order_id"] for r in rows if r["order_id"]])
    lines = service.line_summaries(line_ids=[r["order_line_id"] for r in rows if r["order_line_id"]])
    products = catalog.products_by_id(product_ids=[line["product_id"] for line in lines.values()])
    items = []
    for row in rows:
        line = lines.get(row["order_line_id"])
        items.append(
            {
                "id": row["id"],
                "amount_fen": row["amount_fen"],
                "account": row["account"],
                "share": row["share"],
                "created_at": row["created_at"],
                "why": _why(
                    row,
                    attributions.get(row["attribution_id"]),
                    order_rows.get(row["order_id"]),
                    line,
                    products.get(line["product_id"]) if line else None,
                ),
            }
        )
    return items, next_cursor


def order_detail(*, order_id: int) -> dict:
    """An order with its lines, events, per-line attributions and journals (operators' view)."""
    order = service.get_order(order_id=order_id)
    return {
        "order": order,
        "lines": service.lines_of(order_id=order_id),
        "events": service.events_of(order_id=order_id),
        "attributions": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()}
            for a in affiliate.attributions_of_order(order_id=order_id)
        ],
        "journals": ledger.journals_of_order(order_id=order_id),
    }
