from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db, one_of

# Every kind of app.delivery.kinds (a kind is one class there; the table allows these names).
POST_KINDS = ("text", "markdown", "miniprogram_card", "product_card", "coupon_drop", "knowledge_point")
POST_STATUSES = ("active", "paused", "cancelled", "finished")
SCHEDULE_KINDS = ("once", "daily", "weekly", "cron")
OCCURRENCE_STATES = ("scheduled", "dispatched", "missed", "cancelled", "refused")
# pending → sending → sent; wecom_customer_group goes sending → submitted (waiting for the host) → sent.
# failed is retried with backoff until dead; unknown (the request left, no answer) is never re-sent by itself.
# skipped: there was nothing to send to this group this time (a drip with nothing left that fits the group's
# age band); final like sent, and not a failure: never retried, and the next occurrence tries again.
DELIVERY_STATES = ("pending", "sending", "submitted", "sent", "failed", "dead", "unknown", "missed", "skipped")
# What operators may send again (unknown ones may have arrived: only when asked).
RETRYABLE_STATES = ("failed", "dead", "unknown")


class Post(db.Model):
    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint(one_of("kind", POST_KINDS), name="known_kind"),
        CheckConstraint(one_of("status", POST_STATUSES), name="known_status"),
        CheckConstraint("target_mode IN ('groups', 'filter')", name="known_target_mode"),
        Index("ix_posts_author_id_id", "author_id", "id"),
    )

    id: Mapped[IdPk]
    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    content: Mapped[dict] = mapped_column(JSON)
    product_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("products.id"))
    target_mode: Mapped[str] = mapped_column(String(8))
    # institution_id, class_id, age_bands, tags, channels; resolved at send time.
    target_filter: Mapped[dict | None] = mapped_column(JSON)
    # {"kind": once|daily|weekly|cron, "at", "time", "weekdays", "cron", "until"}: local wall times.
    schedule: Mapped[dict] = mapped_column(JSON)
    # Occurrences are planned from here on (creation, last edit or resume).
    starts_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PostTarget(db.Model):
    __tablename__ = "post_targets"

    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id"), primary_key=True, index=True)


class PostOccurrence(db.Model):
    """One firing of a post in one time zone: `slot` is the local wall time, `due_at` the UTC instant."""

    __tablename__ = "post_occurrences"
    __table_args__ = (
        UniqueConstraint("post_id", "timezone", "slot"),
        CheckConstraint(one_of("state", OCCURRENCE_STATES), name="known_state"),
        Index("ix_post_occurrences_state_due_at", "state", "due_at"),
    )

    id: Mapped[IdPk]
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    post_version: Mapped[int] = mapped_column(Integer)
    # The post as it was when this occurrence went out: what every delivery of it renders.
    snapshot: Mapped[dict | None] = mapped_column(JSON)
    deliveries_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    dispatched_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Delivery(db.Model):
    __tablename__ = "deliveries"
    __table_args__ = (
        # Exactly once: a restart or a second scheduler cannot write a second row for the same message.
        UniqueConstraint("post_id", "group_id", "occurrence_id"),
        # wecom_customer_group: one mass message per group per local day (NULL for other channels).
        UniqueConstraint("group_id", "quota_day"),
        CheckConstraint(one_of("state", DELIVERY_STATES), name="known_state"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_deliveries_state_available_at", "state", "available_at"),
        Index("ix_deliveries_occurrence_id", "occurrence_id"),
        Index("ix_deliveries_group_id_id", "group_id", "id"),
        Index("ix_deliveries_post_id_id", "post_id", "id"),
    )

    id: Mapped[IdPk]
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    occurrence_id: Mapped[int] = mapped_column(BigId, ForeignKey("post_occurrences.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id"))
    channel: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    manual_retries: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    # Not before: the first send, a rate-limit deferral or the next retry after a failure.
    available_at: Mapped[datetime]
    # Set when handed to RQ; cleared when the delivery must be handed over again.
    queued_at: Mapped[datetime | None]
    sending_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(128))
    quota_day: Mapped[str | None] = mapped_column(String(10))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SandboxMessage(db.Model):
    """What a sandbox-channel group would have seen."""

    __tablename__ = "sandbox_messages"
    __table_args__ = (Index("ix_sandbox_messages_group_id_id", "group_id", "id"),)

    id: Mapped[IdPk]
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("deliveries.id", ondelete="CASCADE"), unique=True)
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id"))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime]
