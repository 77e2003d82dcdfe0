"""Builders shared by the catalog, affiliate, orders, ledger and payouts tests."""

from itertools import count

from app.catalog import service as catalog

_ids = count(1)


def make_product(
    *,
    price_fen: int = 10000,
    commission_rate_bp: int = 1500,
    title: str | None = None,
    category_id: int | None = None,
    source: str = "union",
    external_id: str | None = None,
    **extra,
):
    """A product created through the catalog service."""
    n = next(_ids)
    return catalog.create_product(
        source=source,
        external_id=external_id or f"P{n}",
        fields={
            "title": title or f"商品{n}",
            "price_fen": price_fen,
            "commission_rate_bp": commission_rate_bp,
            "category_id": category_id,
            "images": [f"https://img.example/{n}.jpg"],
            **extra,
        },
    )


def ingest(
    *,
    external_id: str,
    product,
    paid_fen: int | None = None,
    status: str = "paid",
    version: int = 1,
    at=None,
    buyer_id: int | None = None,
    tracking_code: str | None = None,
    refunded_fen: int | None = None,
    source: str = "union",
    lines: list[dict] | None = None,
):
    """Ingest one order event through the one entry point."""
    from app.core.clock import now_utc
    from app.orders import flows as order_flows

    lines = lines or [
        {
            "line_id": "1",
            "product_id": product.id,
            "quantity": 1,
            "paid_fen": product.price_fen if paid_fen is None else paid_fen,
            "refunded_fen": refunded_fen,
        }
    ]
    return order_flows.ingest_order(
        source=source,
        external_id=external_id,
        status=status,
        version=version,
        event_at=at or now_utc(),
        lines=lines,
        buyer_id=buyer_id,
        tracking_code=tracking_code,
    )


def user_id(api, name: str, invite_code: str | None = None) -> tuple[int, str]:
    """Log a sandbox user in (binding to an inviter if given); returns (id, own invite code)."""
    client = api.as_user(name, invite_code=invite_code)
    return client.user["id"], client.user["invite_code"]


def attribution_of(order_id: int) -> dict:
    from sqlalchemy import select

    from app.affiliate.models import Attribution
    from app.core.db import db

    row = db.session.scalar(select(Attribution).where(Attribution.order_id == order_id))
    return {c.key: getattr(row, c.key) for c in Attribution.__table__.columns}


def sign_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict:
    from app.core.clock import now_utc
    from app.orders.webhooks import sign

    ts = str(int(now_utc().timestamp()) if timestamp is None else timestamp)
    return {
        "X-Mmq-Timestamp": ts,
        "X-Mmq-Signature": sign(secret=secret, timestamp=ts, body=body),
        "Content-Type": "application/json",
    }
