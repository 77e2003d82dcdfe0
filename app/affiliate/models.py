from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db

RULE_KINDS = ("category", "product", "campaign")


class PlatformSetting(db.Model):
    """Platform-wide switches an operator can flip (e.g. level-2 commission, a WeChat ban risk)."""

    __tablename__ = "platform_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))


class CommissionRule(db.Model):
    """An override of the default shares for a category, a product or a campaign, valid in a window."""

    __tablename__ = "commission_rules"
    __table_args__ = (
        CheckConstraint("kind IN ('category', 'product', 'campaign')", name="known_kind"),
        CheckConstraint("kind <> 'category' OR category_id IS NOT NULL", name="category_rule_has_category"),
        CheckConstraint("kind <> 'product' OR product_id IS NOT NULL", name="product_rule_has_product"),
        CheckConstraint("level1_bp BETWEEN 0 AND 10000 AND level2_bp BETWEEN 0 AND 10000 AND "
                        "host_bp BETWEEN 0 AND 10000 AND content_bp BETWEEN 0 AND 10000", name="rates_in_range"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window_ordered"),
    )

    id: Mapped[IdPk]
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    category_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("categories.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("products.id"), index=True)
    level1_bp: Mapped[int] = mapped_column(Integer)
    level2_bp: Mapped[int] = mapped_column(Integer)
    host_bp: Mapped[int] = mapped_column(Integer)
    content_bp: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
