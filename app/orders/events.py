"""What an order event carries, and the checks every event passes before anything is written.

The checks are per event, so a statement batch can set a bad event aside and ingest its neighbours,
while a webhook or the checkout (one event) gets the same error as a 422.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from app.accounts import service as accounts
from app.catalog import service as catalog
from app.core.errors import Invalid
from app.orders.models import ORDER_STATUSES


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


def refunded_in_full(event: OrderEventIn) -> bool:
    """A cancelled order, or a refunded one without amounts, is refunded in full."""
    return event.status == "cancelled" or (
        event.status == "refunded" and all(line.refunded_fen is None for line in event.lines)
    )


def refunds_of(event: OrderEventIn) -> dict[str, int]:
    """Cumulative refund per line key (what the event says was paid, when it is refunded in full)."""
    full = refunded_in_full(event)
    return {line.line_id: line.paid_fen if full else (line.refunded_fen or 0) for line in event.lines}


def completed_at(event: OrderEventIn) -> datetime | None:
    """When the order was completed: a completed event's time, or the completion a later refund still reports."""
    if event.status == "completed":
        return event.completed_at or event.event_at
    return event.completed_at if event.status == "refunded" else None


def catalog_source(order_source: str) -> str:
    return "own" if order_source == "own" else "union"


def product_of(products: dict, event: OrderEventIn, line: LineEvent) -> catalog.ProductTerms:
    if line.product_id is not None:
        return products[("id", line.product_id)]
    return products[(catalog_source(event.source), line.product_external_id)]


def _check_shape(event: OrderEventIn) -> None:
    if event.status not in ORDER_STATUSES:
        raise Invalid(f"Unknown status {event.status!r}.", code="unknown_order_status")
    if not event.lines:
        raise Invalid("An order has at least one line.", code="order_without_lines")
    if len({line.line_id for line in event.lines}) != len(event.lines):
        raise Invalid("Line ids repeat within the order.", code="duplicate_line_ids")
    for line in event.lines:
        if line.paid_fen < 0 or line.quantity <= 0 or (line.refunded_fen or 0) < 0:
            raise Invalid("Amounts and quantities must be positive.", code="invalid_amount")
        if (line.refunded_fen or 0) > line.paid_fen:
            raise Invalid(
                "A refund cannot exceed what was paid.", code="refund_exceeds_paid", errors={"line_id": line.line_id}
            )
        if (line.product_id is None) == (line.product_external_id is None):
            raise Invalid(
                "Each line names its product by product_id or product_external_id.",
                code="line_product_missing",
                errors={"line_id": line.line_id},
            )
    if event.event_at.tzinfo is None:
        raise ValueError("event times must be aware")


def check(events: list[OrderEventIn]) -> tuple[dict, dict[int, Invalid]]:
    """Check every event and resolve its products (light terms, keyed by ("id", id) or (source, external id)).

    Returns the products and the problem of each bad event by its index; one query per kind of lookup.
    """
    problems: dict[int, Invalid] = {}
    for index, event in enumerate(events):
        try:
            _check_shape(event)
        except Invalid as exc:
            problems[index] = exc
    good = [(i, e) for i, e in enumerate(events) if i not in problems]
    by_id = catalog.product_terms(product_ids=[line.product_id for _, e in good for line in e.lines if line.product_id])
    products: dict = {("id", pid): terms for pid, terms in by_id.items()}
    external = defaultdict(set)
    for _, event in good:
        for line in event.lines:
            if line.product_external_id is not None:
                external[catalog_source(event.source)].add(line.product_external_id)
    for source, ids in external.items():
        found = catalog.product_terms_by_external_id(source=source, external_ids=list(ids))
        products.update({(source, ext): terms for ext, terms in found.items()})
    buyers = {e.buyer_id for _, e in good if e.buyer_id is not None}
    known_buyers = accounts.existing_user_ids(user_ids=list(buyers))
    for index, event in good:
        missing_ids = sorted(
            {line.product_id for line in event.lines if line.product_id and ("id", line.product_id) not in products}
        )
        missing_ext = sorted(
            {
                line.product_external_id
                for line in event.lines
                if line.product_external_id is not None
                and (catalog_source(event.source), line.product_external_id) not in products
            }
        )
        if missing_ids:
            problems[index] = Invalid(
                "Some products do not exist.", code="unknown_products", errors={"product_ids": missing_ids}
            )
        elif missing_ext:
            problems[index] = Invalid(
                "Some products are not in the catalog.",
                code="unknown_products",
                errors={"product_external_ids": missing_ext},
            )
        elif event.buyer_id is not None and event.buyer_id not in known_buyers:
            problems[index] = Invalid(
                "Some buyers are not users.", code="unknown_buyers", errors={"buyer_ids": [event.buyer_id]}
            )
    return products, problems
