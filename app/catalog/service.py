"""Catalog use cases: products and categories for operators, search for moms, and lookups for other domains."""

from dataclasses import dataclass
from functools import cache

from flask import current_app
from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from app.catalog import search
from app.catalog.models import Category, Product
from app.catalog.schemas import ProductSchema as ProductSchema  # views of other domains show products in its shape
from app.core import pagecache
from app.core.clock import now_utc
from app.core.db import after_commit, among, db, is_postgres, reads_outside_transaction
from app.core.errors import Conflict, Invalid, NotFound
from app.core.pagination import page_json
from app.core.redis import key

SEARCH_GENERATION = key("catalog", "search-generation")


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


def require_advertisable(*, product_ids: list[int]) -> None:
    """Refuse to advertise the named products if any may not be: 422 `product_not_advertisable` listing them.

    Breast-milk substitutes may not be advertised (Advertising Law art. 20): no share link, group post, coupon
    card, coupon drop or mom's post may carry one. Unknown ids are left to the caller's own checks.
    """
    wanted = set(product_ids)
    if not wanted:
        return
    banned = sorted(
        db.session.scalars(
            select(Product.id).where(among(Product.id, wanted), Product.is_breastmilk_substitute.is_(True))
        )
    )
    if banned:
        raise Invalid(
            "Breast-milk substitutes may not be advertised (Advertising Law art. 20).",
            code="product_not_advertisable",
            errors={"product_ids": banned},
        )


def require_categories(*, category_ids: list[int]) -> dict[int, Category]:
    """Load every category named, or fail with 422 `unknown_categories`."""
    return _require_all(Category, category_ids, plural="categories", field="category_ids")


@dataclass(frozen=True)
class ProductTerms:
    """What order ingestion needs of a product: its category and the seller's commission rate."""

    id: int
    category_id: int | None
    commission_rate_bp: int


_TERMS = (Product.id, Product.category_id, Product.commission_rate_bp)


def product_terms(*, product_ids: list[int]) -> dict[int, ProductTerms]:
    """The terms of the products that exist among `product_ids`, keyed by id (one light query)."""
    wanted = set(product_ids)
    if not wanted:
        return {}
    return {row.id: ProductTerms(*row) for row in db.session.execute(select(*_TERMS).where(among(Product.id, wanted)))}


def product_terms_by_external_id(*, source: str, external_ids: list[str]) -> dict[str, ProductTerms]:
    """The terms of one source's products keyed by external id; unknown ids are left out."""
    wanted = set(external_ids)
    if not wanted:
        return {}
    rows = db.session.execute(
        select(Product.external_id, *_TERMS).where(Product.source == source, among(Product.external_id, wanted))
    )
    return {row[0]: ProductTerms(*row[1:]) for row in rows}


def category_lineages(*, category_ids: list[int]) -> dict[int, list[int]]:
    """Each category with its ancestors, nearest first ([id, parent, grandparent, ...]); unknown ids map to [id]."""
    parents: dict[int, int | None] = {}
    frontier = set(category_ids)
    while frontier:
        rows = db.session.execute(select(Category.id, Category.parent_id).where(Category.id.in_(frontier))).all()
        parents.update(dict(rows))
        frontier = {parent for _, parent in rows if parent is not None and parent not in parents}
    lineages = {}
    for category_id in set(category_ids):
        lineage, current = [category_id], parents.get(category_id)
        while current is not None and current not in lineage:  # a cycle cannot be made, but never loop on one
            lineage.append(current)
            current = parents.get(current)
        lineages[category_id] = lineage
    return lineages


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
    try:
        with db.session.begin_nested():
            db.session.add(category)
    except IntegrityError:
        raise Conflict("A category with this name exists.", code="category_exists") from None
    return category


def create_product(*, source: str, external_id: str, fields: dict) -> Product:
    """Add a product; (source, external_id) is unique."""
    if fields.get("category_id") is not None:
        require_categories(category_ids=[fields["category_id"]])
    now = now_utc()
    product = Product(source=source, external_id=external_id, created_at=now, updated_at=now, **fields)
    try:
        with db.session.begin_nested():
            db.session.add(product)
    except IntegrityError:
        raise Conflict("A product with this source and external id exists.", code="product_exists") from None
    after_commit(catalog_changed)
    return product


def update_product(*, product_id: int, changes: dict) -> Product:
    """Change some fields of a product (deactivate it with is_active=false)."""
    product = get_product(product_id=product_id)
    if changes.get("category_id") is not None:
        require_categories(category_ids=[changes["category_id"]])
    for name, value in changes.items():
        setattr(product, name, value)
    product.updated_at = now_utc()
    db.session.flush()
    after_commit(catalog_changed)
    return product


def _render_search(*, keyword: str, category_id: int | None, sort: str, cursor: str | None, limit: int) -> str:
    with reads_outside_transaction():
        items, next_cursor = search.search(
            keyword=keyword,
            category_id=category_id,
            sort=sort,
            cursor=cursor,
            limit=limit,
            connection=db.session.connection(),
            postgres=is_postgres(),
        )
    return page_json(items, next_cursor)  # ProductPageSchema documents it


def search_products(
    *, q: str | None, category_id: int | None, sort: str, cursor: str | None, limit: int, page_key: bytes
) -> str:
    """Active products matching a keyword (a substring of title or merchant, Chinese included) and a category:
    one page as JSON, kept in the short-lived page cache under `page_key` until a product changes."""
    keyword = (q or "").strip()
    return pagecache.cached(
        cache_key=page_key,
        generations=[SEARCH_GENERATION],
        ttl=current_app.config["CATALOG_SEARCH_CACHE_SECONDS"],
        render=lambda: _render_search(keyword=keyword, category_id=category_id, sort=sort, cursor=cursor, limit=limit),
    )


def catalog_changed() -> None:
    """Make every cached search page stale; run after committing a change to products (`after_commit`)."""
    pagecache.bump([SEARCH_GENERATION])


def products_by_id(*, product_ids: list[int]) -> dict[int, Product]:
    """The products that exist among `product_ids`, keyed by id."""
    return _rows_by_id(Product, product_ids)


@cache
def _cards_statement(postgres: bool):
    # PostgreSQL takes the ids as one array: one statement text, prepared once, whatever the number of ids.
    ids = (
        Product.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
        if postgres
        else Product.id.in_(bindparam("ids", expanding=True))
    )
    return select(Product.id, Product.title, Product.images[0].as_string().label("image"), Product.price_fen).where(
        ids, Product.is_active.is_(True)
    )


def product_cards(*, product_ids: list[int]) -> dict[int, dict]:
    """Id, title, first image and price of the products among `product_ids` still on sale (one light query)."""
    if not product_ids:
        return {}
    rows = db.session.connection().execute(_cards_statement(is_postgres()), {"ids": sorted(set(product_ids))})
    return {
        row.id: {"product_id": row.id, "title": row.title, "image": row.image, "price_fen": row.price_fen}
        for row in rows
    }
