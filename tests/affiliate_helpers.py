"""Builders shared by the catalog, affiliate, orders, ledger and payouts tests."""
from itertools import count

from app.catalog import service as catalog

_ids = count(1)


def make_product(*, price_fen: int = 10000, commission_rate_bp: int = 1500, title: str | None = None,
                 category_id: int | None = None, source: str = "union", external_id: str | None = None, **extra):
    """A product created through the catalog service."""
    n = next(_ids)
    return catalog.create_product(source=source, external_id=external_id or f"P{n}", fields={
        "title": title or f"商品{n}", "price_fen": price_fen, "commission_rate_bp": commission_rate_bp,
        "category_id": category_id, "images": [f"https://img.example/{n}.jpg"], **extra})
