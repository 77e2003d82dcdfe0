"""Affiliate's use cases that read or write other domains too."""

from app.affiliate import service
from app.catalog import service as catalog


def product_detail(*, product_id: int, viewer_id: int | None) -> dict:
    """One active product as moms see it; a logged-in viewer also sees what sharing it would earn her."""
    product = catalog.get_active_product(product_id=product_id)
    earning = (
        service.sharer_earning(
            product_id=product.id,
            category_id=product.category_id,
            price_fen=product.price_fen,
            seller_bp=product.commission_rate_bp,
        )
        if viewer_id is not None
        else None
    )
    return {**{column.key: getattr(product, column.key) for column in product.__table__.columns}, "my_earning": earning}
