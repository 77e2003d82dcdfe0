"""Product search for moms; product and category management for operators (a product's page is affiliate's:
it shows what sharing it earns)."""

from flask import current_app
from flask_smorest import Blueprint

from app.catalog import service
from app.catalog.schemas import (
    CategoryListSchema,
    CategorySchema,
    ProductCreateSchema,
    ProductPageSchema,
    ProductPatchSchema,
    ProductSchema,
    ProductSearchArgsSchema,
)
from app.core import access, pagecache

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Products and categories.")
SEARCH_PAGES = "catalog-search"


@blp.route("/products", methods=["GET"])
@access.public
# Search pages are the same for everyone: a query string served before is answered before parsing it.
@pagecache.served_from_cache(namespace=SEARCH_PAGES, ttl_setting="CATALOG_SEARCH_CACHE_SECONDS")
# An instance, not the class: webargs would build a schema per request on this hot path.
@blp.arguments(ProductSearchArgsSchema(), location="query")
@blp.response(200, ProductPageSchema)
def search_products(args):
    """Search active products by keyword and category; sort by newest, price or commission."""
    body = service.search_products(
        q=args["q"],
        category_id=args["category_id"],
        sort=args["sort"],
        cursor=args["cursor"],
        limit=args["limit"],
        page_key=pagecache.page_key(SEARCH_PAGES),
    )
    return current_app.response_class(body, mimetype="application/json")


@blp.route("/categories", methods=["GET"])
@access.public
@blp.response(200, CategoryListSchema)
def categories():
    """Every category."""
    return {"items": service.list_categories()}


@blp.route("/admin/categories", methods=["POST"])
@access.roles("operator")
@blp.arguments(CategorySchema)
@blp.response(201, CategorySchema)
def create_category(args):
    """Add a category."""
    return service.create_category(name=args["name"], parent_id=args["parent_id"])


@blp.route("/admin/products", methods=["POST"])
@access.roles("operator")
@blp.arguments(ProductCreateSchema)
@blp.response(201, ProductSchema)
def create_product(args):
    """Add a product."""
    source, external_id = args.pop("source"), args.pop("external_id")
    return service.create_product(source=source, external_id=external_id, fields=args)


@blp.route("/admin/products/<int:product_id>", methods=["PATCH"])
@access.roles("operator")
@blp.arguments(ProductPatchSchema(partial=True))
@blp.response(200, ProductSchema)
def update_product(args, product_id: int):
    """Change a product (including deactivating it)."""
    return service.update_product(product_id=product_id, changes=args)


blueprints = [blp]
