from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db, one_of

USER_KINDS = ("pending", "available", "withdrawing", "withdrawn")
PLATFORM_KINDS = ("platform_revenue", "commission_receivable", "adjustments")
JOURNAL_KINDS = (
    "order_paid",
    "refund",
    "clawback",
    "settlement",
    "withdrawal",
    "payout_success",
    "payout_failure",
    "adjustment",
)


class LedgerAccount(db.Model):
    """A user's pending/available/withdrawing/withdrawn money, or a platform account.

    `balance_fen` is a cache of the sum of the account's lines, moved by the same statement that posts
    them (`balance_fen = balance_fen + delta`, never read-modify-write) and checked by `verify()`.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            one_of("kind", USER_KINDS + PLATFORM_KINDS),
            name="known_kind",
        ),
        CheckConstraint(
            f"(owner_id IS NULL) = ({one_of('kind', PLATFORM_KINDS)})",
            name="owner_matches_kind",
        ),
    )

    id: Mapped[IdPk]
    code: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]


class LedgerJournal(db.Model):
    """One business event's postings; its lines sum to zero. `key` makes posting it idempotent. Append-only too."""

    __tablename__ = "ledger_journals"
    __table_args__ = (
        CheckConstraint(
            one_of("kind", JOURNAL_KINDS),
            name="known_kind",
        ),
    )

    id: Mapped[IdPk]
    key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"), index=True)
    withdrawal_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    created_at: Mapped[datetime]


class LedgerLine(db.Model):
    """One signed amount on one account. Append-only: on PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE."""

    __tablename__ = "ledger_lines"
    __table_args__ = (
        CheckConstraint("amount_fen <> 0", name="amount_not_zero"),
        Index("ix_ledger_lines_account_id_id", "account_id", "id"),
    )

    id: Mapped[IdPk]
    journal_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_journals.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_accounts.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    # The share this line pays (level1, level2, host, content, platform, seller) and what produced it
    # (the why-trace reads these from the line, so they need no index of their own).
    share: Mapped[str | None] = mapped_column(String(16))
    order_line_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("order_lines.id"))
    attribution_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("attributions.id"))
    created_at: Mapped[datetime]
