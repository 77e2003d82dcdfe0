"""Catalog use cases: products and categories for operators, search for moms, and lookups for other domains."""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.catalog import search
from app.catalog.models import Category, Product
from app.core.clock import now_utc
from app.core.db import db, is_postgres
from app.core.errors import Conflict, Invalid, NotFound
from app.core.pagination import decode_cursor, encode_cursor, keyset_page

SORT_KEYS = {
    "newest": (("created_at", datetime), True),
    "price_asc": (("price_fen", int), False),
    "price_desc": (("price_fen", int), True),
    "commission": (("commission_rate_bp", int), True),
}


@dataclass(frozen=True)
class ProductPage:
    items: list[Product]
    next_cursor: str | None


def get_product(*, product_id: int) -> Product:
    """Load a product or fail with 404 `product_not_found`."""
    product = db.session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product.", code="product_not_found")
    return product


def get_active_product(*, product_id: int) -> Product:
    """Load a product moms may see (active), or fail with 404 `product_not_found`."""
    product = get_product(product_id=product_id)
    if not product.is_active:
        raise NotFound("No such product.", code="product_not_found")
    return product


def _rows_by_id(model, ids: list[int]) -> dict:
    wanted = set(ids)
    return {row.id: row for row in db.session.scalars(select(model).where(model.id.in_(wanted)))} if wanted else {}


def _require_all(model, ids: list[int], *, plural: str, field: str) -> dict:
    """Every row named, or 422 `unknown_<plural>` listing the missing ids under `field`."""
    found = _rows_by_id(model, ids)
    missing = sorted(set(ids) - set(found))
    if missing:
        raise Invalid(f"Some {plural} do not exist.", code=f"unknown_{plural}", errors={field: missing})
    return found


def require_products(*, product_ids: list[int]) -> dict[int, Product]:
    """Load every product named, or fail with 422 `unknown_products` listing the missing ids."""
    return _require_all(Product, product_ids, plural="products", field="product_ids")


def products_by_external_id(*, source: str, external_ids: list[str]) -> dict[str, Product]:
    """The products of one source keyed by their external id (order ingestion resolves lines with it)."""
    wanted = set(external_ids)
    if not wanted:
        return {}
    rows = db.session.scalars(select(Product).where(Product.source == source, Product.external_id.in_(wanted)))
    return {p.external_id: p for p in rows}


def require_categories(*, category_ids: list[int]) -> dict[int, Category]:
    """Load every category named, or fail with 422 `unknown_categories`."""
    return _require_all(Category, category_ids, plural="categories", field="category_ids")


def list_categories() -> list[Category]:
    """Every category, by name."""
    return list(db.session.scalars(select(Category).order_by(Category.name, Category.id)))


def create_category(*, name: str, parent_id: int | None) -> Category:
    """Add a category; names are unique."""
    name = name.strip()
    if not name:
        raise Invalid("The name cannot be blank.", code="category_name_blank", errors={"name": ["Blank."]})
    if parent_id is not None:
        require_categories(category_ids=[parent_id])
    category = Category(name=name, parent_id=parent_id, created_at=now_utc())
    db.session.add(category)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("A category with this name exists.", code="category_exists")
    db.session.commit()
    return category


def create_product(*, source: str, external_id: str, fields: dict) -> Product:
    """Add a product; (source, external_id) is unique."""
    if fields.get("category_id") is not None:
        require_categories(category_ids=[fields["category_id"]])
    now = now_utc()
    product = Product(source=source, external_id=external_id, created_at=now, updated_at=now, **fields)
    db.session.add(product)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("A product with this source and external id exists.", code="product_exists")
    db.session.commit()
    return product


def update_product(*, product_id: int, changes: dict) -> Product:
    """Change some fields of a product (deactivate it with is_active=false)."""
    product = get_product(product_id=product_id)
    if changes.get("category_id") is not None:
        require_categories(category_ids=[changes["category_id"]])
    for name, value in changes.items():
        setattr(product, name, value)
    product.updated_at = now_utc()
    db.session.commit()
    return product


def search_products(*, q: str | None, category_id: int | None, sort: str, cursor: str | None,
                    limit: int) -> ProductPage:
    """Active products matching a keyword (a substring of title or merchant, Chinese included) and a category."""
    (column_name, kind), descending = SORT_KEYS[sort]
    columns = [getattr(Product, column_name), Product.id]
    filters = [Product.is_active.is_(True)]
    if category_id is not None:
        filters.append(Product.category_id == category_id)
    keyword = (q or "").strip()

    def key_of(product: Product) -> tuple:
        return getattr(product, column_name), product.id

    if keyword and is_postgres():
        after = decode_cursor(cursor, [kind, int]) if cursor else None
        rows = search.matching_page(Product, filters=filters, keyword=keyword, columns=columns, after=after,
                                    descending=descending, limit=limit + 1, session=db.session)
        next_cursor = encode_cursor(key_of(rows[limit - 1])) if len(rows) > limit else None
        return ProductPage(items=rows[:limit], next_cursor=next_cursor)
    if keyword:
        filters.append(search.keyword_match(Product, keyword))
    items, next_cursor = keyset_page(select(Product).where(*filters), columns=columns, kinds=[kind, int], cursor=cursor,
                                     limit=limit, key_of=key_of, descending=descending, session=db.session)
    return ProductPage(items=items, next_cursor=next_cursor)


def products_by_id(*, product_ids: list[int]) -> dict[int, Product]:
    """The products that exist among `product_ids`, keyed by id."""
    return _rows_by_id(Product, product_ids)
