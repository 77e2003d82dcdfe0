from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import BigId, IdPk, db


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("inviter_id IS NULL OR inviter_id <> id", name="not_self_invited"),)

    id: Mapped[IdPk]
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64))
    nickname: Mapped[str] = mapped_column(String(64), default="")
    invite_code: Mapped[str] = mapped_column(String(16), unique=True)
    # The referral binding (锁粉): set once, never changed.
    inviter_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    bound_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]

    roles: Mapped[list["UserRole"]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", foreign_keys="UserRole.user_id"
    )


class UserRole(db.Model):
    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint("role IN ('host', 'partner', 'operator')", name="grantable_role"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted_at: Mapped[datetime]
    granted_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))


class AuthSession(db.Model):
    """A login session; only the SHA-256 of its opaque token is stored."""

    __tablename__ = "auth_sessions"

    id: Mapped[IdPk]
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
