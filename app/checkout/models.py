from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, Fen, IdPk, db, one_of

ORDER_STATUSES = ("pending_payment", "paid", "partially_refunded", "refunded", "expired", "cancelled")


class CheckoutOrder(db.Model):
    __tablename__ = "checkout_orders"
    __table_args__ = (
        CheckConstraint(
            one_of("status", ORDER_STATUSES),
            name="known_status",
        ),
        Index("ix_checkout_orders_user_id_created_at", "user_id", "created_at"),
        CheckConstraint(
            "discount_fen >= 0 AND payable_fen >= 1 AND subtotal_fen = discount_fen + payable_fen",
            name="amounts_add_up",
        ),
        CheckConstraint(
            "refunded_fen >= 0 AND refunding_fen >= 0 AND refunded_fen + refunding_fen <= payable_fen",
            name="refund_within_paid",
        ),
        Index("ix_checkout_orders_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[IdPk]
    # Our order number at WeChat Pay (≤ 32 characters).
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending_payment")
    subtotal_fen: Mapped[int] = mapped_column(Fen)
    discount_fen: Mapped[int] = mapped_column(Fen, default=0)
    payable_fen: Mapped[int] = mapped_column(Fen)
    # What WeChat confirmed refunded, and what refunds it has accepted but not yet settled hold back: the
    # two together never pass what was paid, so concurrent refunds cannot over-refund.
    refunded_fen: Mapped[int] = mapped_column(Fen, default=0)
    refunding_fen: Mapped[int] = mapped_column(Fen, default=0)
    coupon_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("user_coupons.id"), index=True)
    # The share-link code the buyer came through: the affiliate pipeline attributes the order by it.
    share_code: Mapped[str | None] = mapped_column(String(32))
    prepay_id: Mapped[str | None] = mapped_column(String(64))
    # The order's event version for the affiliate pipeline: 1 when paid, +1 per refund; and the last
    # version the pipeline took in. A sweeper resends whatever is behind, so no paid order is lost.
    version: Mapped[int] = mapped_column(Integer, default=0)
    affiliate_version: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    # When the order counts as received (CHECKOUT_COMPLETE_DAYS after payment, unless wholly refunded):
    # the affiliate pipeline's holding period, and so settlement of its commission, starts here.
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CheckoutOrderLine(db.Model):
    __tablename__ = "checkout_order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("unit_price_fen >= 0 AND amount_fen = unit_price_fen * quantity", name="amount"),
        CheckConstraint("discount_fen >= 0 AND paid_fen = amount_fen - discount_fen AND paid_fen >= 0", name="paid"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refund_within_paid"),
    )

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("checkout_orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id"))
    title: Mapped[str] = mapped_column(String(255))
    unit_price_fen: Mapped[int] = mapped_column(Fen)
    quantity: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Fen)
    discount_fen: Mapped[int] = mapped_column(Fen, default=0)
    paid_fen: Mapped[int] = mapped_column(Fen)
    refunded_fen: Mapped[int] = mapped_column(Fen, default=0)


class CheckoutPayment(db.Model):
    """One confirmed WeChat payment; unique per order and per WeChat transaction (retried notices dedupe here)."""

    __tablename__ = "checkout_payments"
    __table_args__ = (CheckConstraint("amount_fen >= 1", name="amount_positive"),)

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("checkout_orders.id"), unique=True)
    transaction_id: Mapped[str] = mapped_column(String(32), unique=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    openid: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(16))  # "notification" or "query"
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]


REFUND_STATUSES = ("processing", "succeeded", "failed")


class CheckoutRefund(db.Model):
    """A refund WeChat accepted; it moves money and commission only once WeChat reports it succeeded."""

    __tablename__ = "checkout_refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "seq"),
        CheckConstraint("amount_fen >= 1", name="amount_positive"),
        CheckConstraint(one_of("status", REFUND_STATUSES), name="known_status"),
        CheckConstraint("(status = 'processing') = (settled_at IS NULL)", name="settled_when_final"),
        Index("ix_checkout_refunds_status_created_at", "status", "created_at"),
    )

    id: Mapped[IdPk]
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("checkout_orders.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    # Derived from the order and seq, so a retried request asks WeChat for the same refund, never a second one.
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    reason: Mapped[str] = mapped_column(String(255), default="")
    wechat_refund_id: Mapped[str] = mapped_column(String(64), default="")
    coupon_restored: Mapped[bool] = mapped_column(default=False)
    requested_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(12), default="processing")
    # WeChat's own word for the outcome: SUCCESS, or REFUNDCLOSE / CHANGE (closed, or failed to reach the buyer).
    wechat_status: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
