from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, Fen, IdPk, db, one_of

TEMPLATE_STATUSES = ("draft", "active", "paused", "ended")
COUPON_STATUSES = ("available", "reserved", "used", "expired")
CLAIM_GATES = ("redis", "sql")


class CouponBudget(db.Model):
    """Face value an operator lets a host hand out in coupons (optionally for one group)."""

    __tablename__ = "coupon_budgets"
    __table_args__ = (
        CheckConstraint("budget_fen >= 0", name="budget_not_negative"),
        CheckConstraint("committed_fen >= 0 AND committed_fen <= budget_fen", name="committed_within_budget"),
    )

    id: Mapped[IdPk]
    host_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    # The group lives in another domain; kept as a plain id until groups can vouch for ownership.
    group_id: Mapped[int | None] = mapped_column(BigId)
    budget_fen: Mapped[int] = mapped_column(Fen)
    # The most the host's templates drawn on this budget can ever cost (stock × the largest discount).
    committed_fen: Mapped[int] = mapped_column(Fen, default=0)
    note: Mapped[str] = mapped_column(String(255), default="")
    created_by_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    created_at: Mapped[datetime]


class CouponTemplate(db.Model):
    __tablename__ = "coupon_templates"
    __table_args__ = (
        CheckConstraint("kind IN ('fixed', 'threshold', 'percent')", name="known_kind"),
        CheckConstraint("scope IN ('all', 'categories', 'products')", name="known_scope"),
        CheckConstraint(one_of("status", TEMPLATE_STATUSES), name="known_status"),
        CheckConstraint(one_of("claim_gate", CLAIM_GATES), name="known_gate"),
        CheckConstraint("amount_off_fen >= 0 AND threshold_fen >= 0 AND cap_fen >= 0", name="amounts_not_negative"),
        CheckConstraint(
            "(kind = 'fixed' AND amount_off_fen > 0)"
            " OR (kind = 'threshold' AND amount_off_fen > 0 AND threshold_fen >= amount_off_fen)"
            " OR (kind = 'percent' AND percent_off_bp BETWEEN 1 AND 9999 AND cap_fen > 0)",
            name="kind_fields",
        ),
        CheckConstraint(
            "(validity_kind = 'window' AND valid_from IS NOT NULL AND valid_until > valid_from)"
            " OR (validity_kind = 'days' AND valid_days >= 1)",
            name="validity",
        ),
        CheckConstraint("claim_ends_at > claim_starts_at", name="claim_window"),
        CheckConstraint("claimed >= 0 AND claimed <= stock", name="claimed_within_stock"),
        CheckConstraint("per_user_limit >= 1", name="per_user_limit_positive"),
        CheckConstraint("per_day_limit IS NULL OR per_day_limit >= 1", name="per_day_limit_positive"),
        CheckConstraint("budget_committed_fen >= 0", name="budget_committed_not_negative"),
    )

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(16))
    amount_off_fen: Mapped[int] = mapped_column(Fen, default=0)
    # Minimum eligible spend; required for threshold coupons, optional for the others.
    threshold_fen: Mapped[int] = mapped_column(Fen, default=0)
    percent_off_bp: Mapped[int] = mapped_column(Integer, default=0)
    cap_fen: Mapped[int] = mapped_column(Fen, default=0)
    scope: Mapped[str] = mapped_column(String(16), default="all")
    validity_kind: Mapped[str] = mapped_column(String(8))
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    valid_days: Mapped[int | None] = mapped_column(Integer)
    claim_starts_at: Mapped[datetime]
    claim_ends_at: Mapped[datetime]
    stock: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)
    per_day_limit: Mapped[int | None] = mapped_column(Integer)
    claim_gate: Mapped[str] = mapped_column(String(8), default="redis")
    status: Mapped[str] = mapped_column(String(8), default="draft", index=True)
    issuer_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    budget_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("coupon_budgets.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(BigId)
    budget_committed_fen: Mapped[int] = mapped_column(Fen, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CouponTemplateScope(db.Model):
    """One category or product a template includes, or excludes."""

    __tablename__ = "coupon_template_scopes"
    __table_args__ = (CheckConstraint("target IN ('category', 'product')", name="known_target"),)

    template_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("coupon_templates.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(String(16), primary_key=True)
    target_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)


class CouponShareCode(db.Model):
    """A card's share code: who shared which coupon, into which group and post."""

    __tablename__ = "coupon_share_codes"

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(16), unique=True)
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupon_templates.id"), index=True)
    sharer_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(BigId)
    post_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime]


class UserCoupon(db.Model):
    """One claimed coupon. `seq` numbers a user's claims of a template, so the limit is a unique key."""

    __tablename__ = "user_coupons"
    __table_args__ = (
        UniqueConstraint("template_id", "user_id", "seq"),
        UniqueConstraint("template_id", "user_id", "claim_day", "day_seq"),
        CheckConstraint(one_of("status", COUPON_STATUSES), name="known_status"),
        CheckConstraint("seq >= 1 AND (day_seq IS NULL OR day_seq >= 1)", name="seq_positive"),
        CheckConstraint("status <> 'reserved' OR reserved_order_id IS NOT NULL", name="reserved_for_an_order"),
        CheckConstraint("valid_until > valid_from", name="validity"),
        Index("ix_user_coupons_user_status", "user_id", "status"),
        Index("ix_user_coupons_template_claimed_at", "template_id", "claimed_at"),
        Index("ix_user_coupons_status_valid_until", "status", "valid_until"),
        # Gate grants carry ids reserved from the sequence before their rows exist (see coupons.ids);
        # on SQLite only AUTOINCREMENT keeps a sequence that ordinary inserts respect.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[IdPk]
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupon_templates.id"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    seq: Mapped[int] = mapped_column(Integer)
    claim_day: Mapped[date | None] = mapped_column(Date)
    day_seq: Mapped[int | None] = mapped_column(Integer)
    # The Redis gate's grant id: the drain lands each grant once, and a reconcile tells landed from in flight.
    gate_grant: Mapped[str | None] = mapped_column(String(32), unique=True)
    # A digest of the Idempotency-Key of the request that claimed it (which tap made this coupon).
    claim_key: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(10), default="available")
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    claimed_at: Mapped[datetime]
    reserved_order_id: Mapped[int | None] = mapped_column(BigId)
    reserved_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    origin_share_code: Mapped[str | None] = mapped_column(String(16))
    origin_sharer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    origin_group_id: Mapped[int | None] = mapped_column(BigId)
    origin_post_id: Mapped[int | None] = mapped_column(BigId)


class CouponRefusalResolution(db.Model):
    """How an operator settled a granted claim the database refused (the gate told the user "claimed").

    `reissued`: the coupon was claimed again for the user through the SQL claim path (`user_coupon_id`);
    `dismissed`: not re-issued, for the reason in `note` (compensated otherwise, a duplicate, …). One per
    refused entry and per grant, so resolving twice, or two operators at once, settles it once.
    """

    __tablename__ = "coupon_refusal_resolutions"
    __table_args__ = (
        CheckConstraint("action IN ('reissued', 'dismissed')", name="known_action"),
        # Written before the re-issued coupon exists (see refusals), so only a dismissal's emptiness is checked.
        CheckConstraint("action = 'reissued' OR user_coupon_id IS NULL", name="dismissal_has_no_coupon"),
    )

    id: Mapped[IdPk]
    refusal_entry: Mapped[str] = mapped_column(String(32), unique=True)
    gate_grant: Mapped[str] = mapped_column(String(32), unique=True)
    # No foreign key: a grant refused as `template_missing` names a template the database does not hold.
    template_id: Mapped[int] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    # The id the gate told the user; never a row (the database refused it).
    granted_coupon_id: Mapped[int] = mapped_column(BigId)
    granted_at: Mapped[datetime]
    refusal_reason: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(10))
    user_coupon_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("user_coupons.id"))
    note: Mapped[str | None] = mapped_column(Text)
    resolved_by_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    resolved_at: Mapped[datetime]
