from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

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
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
