from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.clock import DEFAULT_ZONE_NAME
from app.core.db import BigId, IdPk, db, one_of

CHANNELS = ("wecom_webhook", "wecom_customer_group", "sandbox")
AGE_BANDS = ("pregnancy", "0-6m", "6-12m", "1-3y", "3-6y", "6y+")
INSTITUTION_KINDS = ("kindergarten", "organisation")
GROUP_ROLES = ("expert", "welfare_officer", "teacher", "obstetrician")
FAN_LEVELS = ("casual", "active", "demand", "trust")
EVENT_KINDS = ("joined", "clicked", "viewed", "demand", "purchased")


class Institution(db.Model):
    __tablename__ = "institutions"
    __table_args__ = (CheckConstraint(one_of("kind", INSTITUTION_KINDS), name="known_kind"),)

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    city: Mapped[str] = mapped_column(String(64), default="")
    # The host (or operator) who registered it and may manage it.
    owner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]


class InstitutionClass(db.Model):
    __tablename__ = "institution_classes"
    __table_args__ = (
        UniqueConstraint("institution_id", "name"),
        CheckConstraint(one_of("age_band", AGE_BANDS), name="known_age_band"),
    )

    id: Mapped[IdPk]
    institution_id: Mapped[int] = mapped_column(BigId, ForeignKey("institutions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    age_band: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ChatGroup(db.Model):
    """A chat group the platform posts into, through one channel."""

    __tablename__ = "chat_groups"
    __table_args__ = (
        CheckConstraint(one_of("channel", CHANNELS), name="known_channel"),
        CheckConstraint(one_of("age_band", AGE_BANDS), name="known_age_band"),
        CheckConstraint("member_count >= 0", name="member_count_not_negative"),
        Index("ix_chat_groups_timezone_active", "timezone", "is_active"),
    )

    id: Mapped[IdPk]
    name: Mapped[str] = mapped_column(String(64))
    host_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    institution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institutions.id"), index=True)
    class_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("institution_classes.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    # Fernet token of the channel credentials (JSON); never leaves the service layer in clear.
    credentials_encrypted: Mapped[str] = mapped_column(Text, default="")
    age_band: Mapped[str] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_ZONE_NAME)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    invite_scene: Mapped[str] = mapped_column(String(32), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class GroupMember(db.Model):
    __tablename__ = "group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "user_id"),
        CheckConstraint(one_of("fan_level", FAN_LEVELS), name="known_fan_level"),
        Index("ix_group_members_group_level", "group_id", "fan_level"),
    )

    id: Mapped[IdPk]
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    fan_level: Mapped[str] = mapped_column(String(16), default="casual")
    fan_level_at: Mapped[datetime]


class GroupMemberRole(db.Model):
    __tablename__ = "group_member_roles"
    __table_args__ = (CheckConstraint(one_of("role", GROUP_ROLES), name="known_role"),)

    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted_at: Mapped[datetime]
    granted_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))


class MemberEvent(db.Model):
    """What a member did in a group; the fan ladder is computed from these."""

    __tablename__ = "member_events"
    __table_args__ = (
        CheckConstraint(one_of("kind", EVENT_KINDS), name="known_kind"),
        # Callers that pass a reference (an order id, a click id) make the event idempotent.
        UniqueConstraint("group_id", "user_id", "kind", "ref"),
        Index("ix_member_events_group_user_at", "group_id", "user_id", "occurred_at"),
    )

    id: Mapped[IdPk]
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime]
