from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.catalog.tokens import search_tokens
from app.core.db import BigId, IdPk, db

PRODUCT_SOURCES = ("union", "own")


class Category(db.Model):
    __tablename__ = "categories"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("categories.id"))
    created_at: Mapped[datetime]


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint("source IN ('union', 'own')", name="known_source"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
        CheckConstraint("commission_rate_bp BETWEEN 0 AND 10000", name="commission_rate_in_range"),
        # Search pages walk one of these in sort order (keyset cursors are ranges of them).
        Index("ix_products_newest", "created_at", "id"),
        Index("ix_products_price", "price_fen", "id"),
        Index("ix_products_commission", "commission_rate_bp", "id"),
        # SQLite searches with LIKE alone: there the index is declared to hold no row, so it costs nothing.
        Index("ix_products_search_tokens", "search_tokens", postgresql_using="gin", sqlite_where=text("0")),
    )

    id: Mapped[IdPk]
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    images: Mapped[list[str]] = mapped_column(JSON, default=list)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    # What the seller pays the platform on the paid amount; every share is carved out of it.
    commission_rate_bp: Mapped[int] = mapped_column(Integer)
    merchant: Mapped[str] = mapped_column(String(128), default="")
    category_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("categories.id"), index=True)
    link_url: Mapped[str | None] = mapped_column(String(1024))
    miniprogram_path: Mapped[str | None] = mapped_column(String(512))
    union_coupon_url: Mapped[str | None] = mapped_column(String(1024))
    # Breast-milk substitutes for 0-6 months may not be advertised (Advertising Law art. 20).
    is_breastmilk_substitute: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Unigrams and bigrams of the title and merchant (app.catalog.tokens), kept by the hooks below.
    search_tokens: Mapped[list[str]] = mapped_column(JSON().with_variant(ARRAY(Text), "postgresql"), deferred=True)


@event.listens_for(Product, "before_insert")
def _tokens_on_insert(mapper, connection, product: Product) -> None:
    product.search_tokens = search_tokens(product.title, product.merchant)


@event.listens_for(Product, "before_update")
def _tokens_on_update(mapper, connection, product: Product) -> None:
    state = inspect(product)
    if state.attrs.title.history.has_changes() or state.attrs.merchant.history.has_changes():
        product.search_tokens = search_tokens(product.title, product.merchant)
