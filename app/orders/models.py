from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db, one_of

ORDER_STATUSES = ("paid", "completed", "refunded", "cancelled")


class OrderWebhookSource(db.Model):
    """A union or merchant allowed to report orders, with the secret its webhooks are signed with."""

    __tablename__ = "order_webhook_sources"

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(32), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class OrderWebhookEvent(db.Model):
    """A webhook event id already processed (the sender's retries are acknowledged without effect)."""

    __tablename__ = "order_webhook_events"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    id: Mapped[IdPk]
    source: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"))
    received_at: Mapped[datetime]


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(one_of("status", ORDER_STATUSES), name="known_status"),
        CheckConstraint("paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refund_within_paid"),
        Index("ix_orders_settle_due", "settled_at", "completed_at"),
    )

    id: Mapped[IdPk]
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    buyer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    buyer_openid: Mapped[str | None] = mapped_column(String(64))
    tracking_code: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # The version of the last event applied; older events are ignored.
    version: Mapped[int] = mapped_column(BigInteger)
    event_at: Mapped[datetime]
    paid_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OrderLine(db.Model):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refund_within_paid"),
        CheckConstraint("seller_bp BETWEEN 0 AND 10000", name="seller_bp_in_range"),
    )

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id"), index=True)
    line_key: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # The seller's commission rate when the order was paid (a later catalog change never alters it).
    seller_bp: Mapped[int] = mapped_column(Integer)


class OrderEvent(db.Model):
    """Each distinct event version received for an order, applied or ignored as stale."""

    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_id", "version"),)

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id"))
    version: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    event_at: Mapped[datetime]
    applied: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime]
