"""Catalog use cases other domains rely on."""
from sqlalchemy import select

from app.core.db import db
from app.core.errors import Invalid, NotFound
from app.catalog.models import Category, Product


def get_product(*, product_id: int) -> Product:
    """Load a product or fail with 404 `product_not_found`."""
    product = db.session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product.", code="product_not_found")
    return product


def require_products(*, product_ids: list[int]) -> dict[int, Product]:
    """Load every product named, or fail with 422 `unknown_products` listing the missing ids."""
    wanted = set(product_ids)
    found = {p.id: p for p in db.session.scalars(select(Product).where(Product.id.in_(wanted)))} if wanted else {}
    missing = sorted(wanted - set(found))
    if missing:
        raise Invalid("Some products do not exist.", code="unknown_products", errors={"product_ids": missing})
    return found


def require_categories(*, category_ids: list[int]) -> dict[int, Category]:
    """Load every category named, or fail with 422 `unknown_categories`."""
    wanted = set(category_ids)
    found = {c.id: c for c in db.session.scalars(select(Category).where(Category.id.in_(wanted)))} if wanted else {}
    missing = sorted(wanted - set(found))
    if missing:
        raise Invalid("Some categories do not exist.", code="unknown_categories", errors={"category_ids": missing})
    return found
