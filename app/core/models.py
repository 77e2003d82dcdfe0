"""Tables that belong to the platform rather than to one domain."""

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import IdPk, db


class IdempotencyRecord(db.Model):
    """The first response to a money-affecting POST, replayed for retries carrying the same key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("owner", "scope", "key"),)

    id: Mapped[IdPk]
    owner: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
