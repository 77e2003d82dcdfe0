from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db, one_of

WITHDRAWAL_STATUSES = ("pending", "unknown", "succeeded", "failed")
IN_FLIGHT = "status IN ('pending', 'unknown')"


class Withdrawal(db.Model):
    """A user's request to move available earnings to their WeChat wallet, and the transfer's outcome.

    `pending`: money moved to withdrawing, the transfer not yet answered; `unknown`: WeChat's answer was
    lost or undecided (only a query resolves it); `succeeded` and `failed` are final. At most one
    withdrawal per user is in flight (a partial unique index).
    """

    __tablename__ = "withdrawals"
    __table_args__ = (
        CheckConstraint("amount_fen >= 100", name="at_least_one_yuan"),
        CheckConstraint(one_of("status", WITHDRAWAL_STATUSES), name="known_status"),
        Index(
            "uq_withdrawals_one_in_flight",
            "user_id",
            unique=True,
            postgresql_where=text(IN_FLIGHT),
            sqlite_where=text(IN_FLIGHT),
        ),
        Index("ix_withdrawals_user_id_requested_at", "user_id", "requested_at"),
        Index("ix_withdrawals_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[IdPk]
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    # Reused on every attempt, so WeChat pays at most once whatever happens to our side.
    partner_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    openid: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payment_no: Mapped[str | None] = mapped_column(String(64))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    requested_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WithdrawalAttempt(db.Model):
    """One call to WeChat Pay for a withdrawal (a transfer or a query) and what it answered, for operators.

    Written in the transaction that applies the answer, so a call whose answer was never applied (the
    process died) leaves no row; `Withdrawal.attempts`, committed before each transfer, still counts it.
    """

    __tablename__ = "withdrawal_attempts"
    __table_args__ = (
        CheckConstraint("action IN ('transfer', 'query')", name="known_action"),
        Index("ix_withdrawal_attempts_withdrawal_id_id", "withdrawal_id", "id"),
    )

    id: Mapped[IdPk]
    withdrawal_id: Mapped[int] = mapped_column(BigId, ForeignKey("withdrawals.id"))
    action: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(255))
    payment_no: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    at: Mapped[datetime]
