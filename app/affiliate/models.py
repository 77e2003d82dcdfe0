from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db, one_of

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
        CheckConstraint(one_of("kind", RULE_KINDS), name="known_kind"),
        CheckConstraint("kind <> 'category' OR category_id IS NOT NULL", name="category_rule_has_category"),
        CheckConstraint("kind <> 'product' OR product_id IS NOT NULL", name="product_rule_has_product"),
        CheckConstraint(
            "level1_bp BETWEEN 0 AND 10000 AND level2_bp BETWEEN 0 AND 10000 AND "
            "host_bp BETWEEN 0 AND 10000 AND content_bp BETWEEN 0 AND 10000",
            name="rates_in_range",
        ),
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


class ShareLink(db.Model):
    """A sharer's tracked link to a product, optionally from a group, a post and a piece of content.

    The host and the content author are fixed when the link is made, so a later change of group host or
    content ownership never redirects commission on links already shared.
    """

    __tablename__ = "share_links"

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(16), unique=True)
    sharer_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(BigInteger)
    post_id: Mapped[int | None] = mapped_column(BigInteger)
    content_id: Mapped[int | None] = mapped_column(BigInteger)
    host_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    content_author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    created_at: Mapped[datetime]


class Click(db.Model):
    """One counted click on a share link, persisted from the Redis stream (stream_id makes it idempotent)."""

    __tablename__ = "clicks"
    __table_args__ = (
        CheckConstraint("via IN ('redirect', 'app')", name="known_via"),
        Index("ix_clicks_buyer_id_clicked_at", "buyer_id", "clicked_at"),
    )

    id: Mapped[IdPk]
    stream_id: Mapped[str] = mapped_column(String(32), unique=True)
    share_link_id: Mapped[int] = mapped_column(BigId, ForeignKey("share_links.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    sharer_id: Mapped[int] = mapped_column(BigId)
    product_id: Mapped[int] = mapped_column(BigId)
    group_id: Mapped[int | None] = mapped_column(BigInteger)
    post_id: Mapped[int | None] = mapped_column(BigInteger)
    content_id: Mapped[int | None] = mapped_column(BigInteger)
    host_id: Mapped[int | None] = mapped_column(BigId)
    content_author_id: Mapped[int | None] = mapped_column(BigId)
    buyer_id: Mapped[int | None] = mapped_column(BigId)
    visitor: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(8))
    clicked_at: Mapped[datetime]


class Attribution(db.Model):
    """Who earns on one order line and why, with the rates and amounts copied at attribution time."""

    __tablename__ = "attributions"
    __table_args__ = (
        CheckConstraint("rule IN ('tracking_code', 'click', 'referrer', 'none')", name="known_rule"),
        CheckConstraint(
            "seller_fen = level1_fen + level2_fen + host_fen + content_fen + platform_fen", name="shares_add_up"
        ),
        CheckConstraint("platform_fen >= 0", name="platform_not_negative"),
    )

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(BigId, ForeignKey("order_lines.id"), unique=True)
    rule: Mapped[str] = mapped_column(String(16))
    buyer_id: Mapped[int | None] = mapped_column(BigId)
    click_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("clicks.id"))
    share_link_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("share_links.id"))
    group_id: Mapped[int | None] = mapped_column(BigInteger)
    post_id: Mapped[int | None] = mapped_column(BigInteger)
    content_id: Mapped[int | None] = mapped_column(BigInteger)
    # Not indexed: earnings are read from ledger accounts, never by these columns; ingestion writes less.
    level1_id: Mapped[int | None] = mapped_column(BigId)
    level2_id: Mapped[int | None] = mapped_column(BigId)
    host_id: Mapped[int | None] = mapped_column(BigId)
    content_author_id: Mapped[int | None] = mapped_column(BigId)
    commission_rule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("commission_rules.id"))
    level2_enabled: Mapped[bool] = mapped_column(default=True)
    base_fen: Mapped[int] = mapped_column(BigInteger)
    seller_bp: Mapped[int] = mapped_column(Integer)
    level1_bp: Mapped[int] = mapped_column(Integer)
    level2_bp: Mapped[int] = mapped_column(Integer)
    host_bp: Mapped[int] = mapped_column(Integer)
    content_bp: Mapped[int] = mapped_column(Integer)
    seller_fen: Mapped[int] = mapped_column(BigInteger)
    level1_fen: Mapped[int] = mapped_column(BigInteger)
    level2_fen: Mapped[int] = mapped_column(BigInteger)
    host_fen: Mapped[int] = mapped_column(BigInteger)
    content_fen: Mapped[int] = mapped_column(BigInteger)
    platform_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
