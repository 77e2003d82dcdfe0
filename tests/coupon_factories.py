"""Builders for coupon and checkout tests: catalog rows, template bodies, logged-in users."""

from datetime import UTC, datetime, timedelta
from itertools import count

from app.catalog.models import Category, Product
from app.core.clock import now_utc
from app.core.db import db

_serial = count(1)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def make_category(name: str | None = None) -> Category:
    category = Category(name=name or f"category-{next(_serial)}", created_at=now_utc())
    db.session.add(category)
    db.session.commit()
    return category


def make_product(
    *,
    price_fen: int,
    source: str = "own",
    category: Category | None = None,
    title: str | None = None,
    active: bool = True,
) -> Product:
    n = next(_serial)
    product = Product(
        source=source,
        external_id=f"sku-{n}",
        title=title or f"product {n}",
        description="",
        images=[],
        price_fen=price_fen,
        commission_rate_bp=1500,
        merchant="妈妈圈自营",
        category_id=category.id if category else None,
        is_active=active,
        created_at=now_utc(),
        updated_at=now_utc(),
    )
    db.session.add(product)
    db.session.commit()
    return product


def template_body(**overrides) -> dict:
    """A valid fixed-amount template claimable now, valid 7 days from the claim."""
    now = now_utc()
    body = {
        "name": "立减5元",
        "kind": "fixed",
        "amount_off_fen": 500,
        "scope": "all",
        "validity_kind": "days",
        "valid_days": 7,
        "claim_starts_at": iso(now - timedelta(hours=1)),
        "claim_ends_at": iso(now + timedelta(days=1)),
        "stock": 10,
        "per_user_limit": 1,
    }
    body.update(overrides)
    return body


def create_template(operator, *, activate: bool = True, **overrides) -> dict:
    response = operator.post("/api/v1/coupon-templates", json=template_body(**overrides))
    assert response.status_code == 201, response.get_json()
    template = response.get_json()
    if activate:
        response = operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "active"})
        assert response.status_code == 200, response.get_json()
        template = response.get_json()
    return template


def claim(user, template_id: int, key: str | None = None, **body):
    return user.post(
        f"/api/v1/coupons/{template_id}/claim", json=body, headers={"Idempotency-Key": key or f"claim-{next(_serial)}"}
    )
