"""Withdrawals: request (money moves available → withdrawing), pay through the channel, resolve unknowns.

Rules: at least 1 yuan; at most the daily cap per user per China calendar day (failed ones do not
count); one withdrawal in flight per user (a partial unique index); only from a positive available
balance (the ledger's guarded UPDATE). A success moves withdrawing → withdrawn; a failure returns the
money to available; an undecided answer leaves the withdrawal `unknown` until a query resolves it.
Every outcome is applied by a conditional UPDATE on the status and a journal with a unique key, so a
job that runs twice has one effect.
"""

import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.core.clock import DEFAULT_ZONE, now_utc
from app.core.db import after_commit, db
from app.core.errors import Conflict, Invalid, NotFound
from app.core.jobs import job
from app.core.pagination import keyset_page
from app.core.queue import enqueue
from app.ledger import service as ledger
from app.ledger.service import JournalDraft, LineDraft
from app.payouts import channel
from app.payouts.models import Withdrawal, WithdrawalAttempt

MINIMUM_FEN = 100
IN_FLIGHT = ("pending", "unknown")
# An in-flight withdrawal untouched this long is stuck: its job was lost, or only a query can decide it.
STUCK_AFTER = timedelta(minutes=1)


def _day_start(at: datetime) -> datetime:
    local = at.astimezone(DEFAULT_ZONE)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(at.tzinfo)


def request_withdrawal(*, user_id: int, openid: str, amount_fen: int) -> Withdrawal:
    """Reserve `amount_fen` of the user's available balance for a payout and queue the transfer."""
    if amount_fen < MINIMUM_FEN:
        raise Invalid(
            "The minimum withdrawal is 1 yuan.",
            code="amount_below_minimum",
            errors={"amount_fen": [f"At least {MINIMUM_FEN}."]},
        )
    now = now_utc()
    cap = current_app.config["WITHDRAWAL_DAILY_CAP_FEN"]
    today = db.session.scalar(
        select(func.coalesce(func.sum(Withdrawal.amount_fen), 0)).where(
            Withdrawal.user_id == user_id, Withdrawal.requested_at >= _day_start(now), Withdrawal.status != "failed"
        )
    )
    if today + amount_fen > cap:
        raise Invalid(
            "This would pass today's withdrawal limit.",
            code="daily_cap_exceeded",
            errors={"amount_fen": [f"At most {max(cap - today, 0)} more today."]},
        )
    withdrawal = Withdrawal(
        user_id=user_id,
        amount_fen=amount_fen,
        status="pending",
        openid=openid,
        partner_trade_no="mmqw" + secrets.token_hex(14),
        attempts=0,
        requested_at=now,
        updated_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(withdrawal)
    except IntegrityError:
        raise Conflict("A withdrawal is already in progress.", code="withdrawal_in_flight") from None
    ledger.post_journals(
        [
            JournalDraft(
                key=f"withdrawal:{withdrawal.id}:request",
                kind="withdrawal",
                withdrawal_id=withdrawal.id,
                lines=[LineDraft(user_id, "available", -amount_fen), LineDraft(user_id, "withdrawing", amount_fen)],
            )
        ],
        guard=frozenset({(user_id, "available")}),  # InsufficientBalance (409) when it is not there
    )
    withdrawal_id = withdrawal.id
    after_commit(lambda: enqueue("payouts", pay, withdrawal_id))
    return withdrawal


def get_withdrawal(*, user_id: int, withdrawal_id: int) -> Withdrawal:
    """One of the user's withdrawals."""
    withdrawal = db.session.get(Withdrawal, withdrawal_id, populate_existing=True)
    if withdrawal is None or withdrawal.user_id != user_id:
        raise NotFound("No such withdrawal.", code="withdrawal_not_found")
    return withdrawal


def list_withdrawals(*, user_id: int, cursor: str | None, limit: int) -> tuple[list[Withdrawal], str | None]:
    """The user's withdrawals, newest first."""
    return keyset_page(
        select(Withdrawal).where(Withdrawal.user_id == user_id),
        columns=[Withdrawal.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda w: (w.id,),
        session=db.session,
    )


def _finish(withdrawal: Withdrawal, outcome: channel.Outcome) -> str:
    """Apply a decided outcome once: a status UPDATE that only an in-flight withdrawal passes, and its journal."""
    now = now_utc()
    final = "succeeded" if outcome.status == "succeeded" else "failed"
    moved = db.session.execute(
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal.id, Withdrawal.status.in_(IN_FLIGHT))
        .values(
            status=final,
            updated_at=now,
            finished_at=now,
            payment_no=outcome.payment_no,
            failure_code=outcome.code if final == "failed" else None,
            failure_message=(outcome.message or "")[:255] if final == "failed" else None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved:
        target = "withdrawn" if final == "succeeded" else "available"
        ledger.post_journals(
            [
                JournalDraft(
                    key=f"withdrawal:{withdrawal.id}:{final}",
                    kind="payout_success" if final == "succeeded" else "payout_failure",
                    withdrawal_id=withdrawal.id,
                    lines=[
                        LineDraft(withdrawal.user_id, "withdrawing", -withdrawal.amount_fen),
                        LineDraft(withdrawal.user_id, target, withdrawal.amount_fen),
                    ],
                )
            ]
        )
    return final


def _mark_unknown(withdrawal: Withdrawal, outcome: channel.Outcome) -> str:
    db.session.execute(
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal.id, Withdrawal.status.in_(IN_FLIGHT))
        .values(
            status="unknown",
            updated_at=now_utc(),
            failure_code=outcome.code,
            failure_message=(outcome.message or "")[:255],
        )
        .execution_options(synchronize_session=False)
    )
    return "unknown"


def _record_attempt(withdrawal_id: int, action: str, outcome: channel.Outcome, operator_id: int | None) -> None:
    """Keep WeChat's answer; it commits with the change the answer causes."""
    db.session.add(
        WithdrawalAttempt(
            withdrawal_id=withdrawal_id,
            action=action,
            outcome=outcome.status,
            code=outcome.code,
            message=(outcome.message or "")[:255] or None,
            payment_no=outcome.payment_no,
            created_by_id=operator_id,
            at=now_utc(),
        )
    )


@job
def pay(withdrawal_id: int, *, operator_id: int | None = None) -> str:
    """Transfer a pending withdrawal (an RQ job; running it twice pays once: the trade number is reused).

    One use case: the attempt, WeChat's answer and the outcome it causes commit together. A crash after
    WeChat answered leaves the withdrawal pending; the next attempt sends the same number and WeChat answers
    with the outcome it recorded.
    """
    withdrawal = db.session.get(Withdrawal, withdrawal_id, populate_existing=True)
    if withdrawal is None or withdrawal.status != "pending":
        return withdrawal.status if withdrawal else "missing"
    db.session.execute(
        update(Withdrawal)
        .where(Withdrawal.id == withdrawal_id)
        .values(attempts=Withdrawal.attempts + 1, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    outcome = channel.send(
        partner_trade_no=withdrawal.partner_trade_no,
        openid=withdrawal.openid,
        amount_fen=withdrawal.amount_fen,
        description="妈妈圈佣金提现",
    )
    _record_attempt(withdrawal_id, "transfer", outcome, operator_id)
    if outcome.status == "unknown":
        return _mark_unknown(withdrawal, outcome)
    return _finish(withdrawal, outcome)


@job
def resolve(withdrawal_id: int, *, operator_id: int | None = None) -> str:
    """Ask WeChat what became of an unknown withdrawal; a transfer it never received is sent again (same number)."""
    withdrawal = db.session.get(Withdrawal, withdrawal_id, populate_existing=True)
    if withdrawal is None or withdrawal.status != "unknown":
        return withdrawal.status if withdrawal else "missing"
    outcome = channel.query(partner_trade_no=withdrawal.partner_trade_no)
    _record_attempt(withdrawal_id, "query", outcome, operator_id)
    if outcome.status == "not_found":
        moved = db.session.execute(
            update(Withdrawal)
            .where(Withdrawal.id == withdrawal_id, Withdrawal.status == "unknown")
            .values(status="pending", updated_at=now_utc())
            .execution_options(synchronize_session=False)
        ).rowcount
        return pay(withdrawal_id, operator_id=operator_id) if moved else withdrawal.status
    if outcome.status == "unknown":
        db.session.execute(
            update(Withdrawal)
            .where(Withdrawal.id == withdrawal_id)
            .values(updated_at=now_utc())
            .execution_options(synchronize_session=False)
        )
        return "unknown"
    return _finish(withdrawal, outcome)


def _next_step(status: str):
    """What moves an in-flight withdrawal on: a query for an unknown one, the (same-numbered) transfer for a pending one."""
    return resolve if status == "unknown" else pay


def _stuck(cutoff: datetime):
    return Withdrawal.status.in_(IN_FLIGHT) & (Withdrawal.updated_at <= cutoff)


@job
def resolve_stuck(*, older_than: timedelta = STUCK_AFTER) -> int:
    """Queue a query for every unknown withdrawal and a new attempt for pending ones whose job was lost (scheduled)."""
    rows = db.session.execute(
        select(Withdrawal.id, Withdrawal.status)
        .where(_stuck(now_utc() - older_than))
        .order_by(Withdrawal.id)
        .limit(1000)
    ).all()
    for withdrawal_id, status in rows:
        _queue_next_step(withdrawal_id, status)
    return len(rows)


def _queue_next_step(withdrawal_id: int, status: str) -> None:
    step = _next_step(status)
    after_commit(lambda: enqueue("payouts", step, withdrawal_id))


def search_withdrawals(
    *,
    status: str | None,
    stuck: bool,
    user_id: int | None,
    requested_from: datetime | None,
    requested_until: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Withdrawal], str | None]:
    """Operators' withdrawal search, newest first; `stuck` keeps the in-flight ones the job would pick up now."""
    stmt = select(Withdrawal)
    if status is not None:
        stmt = stmt.where(Withdrawal.status == status)
    if stuck:
        stmt = stmt.where(_stuck(now_utc() - STUCK_AFTER))
    if user_id is not None:
        stmt = stmt.where(Withdrawal.user_id == user_id)
    if requested_from is not None:
        stmt = stmt.where(Withdrawal.requested_at >= requested_from)
    if requested_until is not None:
        stmt = stmt.where(Withdrawal.requested_at < requested_until)
    return keyset_page(
        stmt,
        columns=[Withdrawal.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda w: (w.id,),
        session=db.session,
    )


def withdrawal_detail(*, withdrawal_id: int) -> dict:
    """A withdrawal with every WeChat Pay call made for it and every journal it produced (operators' view)."""
    withdrawal = db.session.get(Withdrawal, withdrawal_id, populate_existing=True)
    if withdrawal is None:
        raise NotFound("No such withdrawal.", code="withdrawal_not_found")
    attempts = db.session.scalars(
        select(WithdrawalAttempt).where(WithdrawalAttempt.withdrawal_id == withdrawal_id).order_by(WithdrawalAttempt.id)
    ).all()
    return {
        "withdrawal": withdrawal,
        "attempts": list(attempts),
        "journals": ledger.journals_of_withdrawal(withdrawal_id=withdrawal_id),
    }


def resolve_now(*, withdrawal_id: int, operator_id: int) -> dict:
    """Operators: move an in-flight withdrawal on now, as the `payouts-resolve` job would; a final one is left alone.

    The same `resolve`/`pay` the job runs, so the same guarantees: the one partner_trade_no, a conditional
    status UPDATE and keyed journals. A failed withdrawal is final (its money is back in available); the
    user withdraws again, under a new number.
    """
    withdrawal = db.session.get(Withdrawal, withdrawal_id, populate_existing=True)
    if withdrawal is None:
        raise NotFound("No such withdrawal.", code="withdrawal_not_found")
    if withdrawal.status in IN_FLIGHT:
        _next_step(withdrawal.status)(withdrawal_id, operator_id=operator_id)
    return withdrawal_detail(withdrawal_id=withdrawal_id)
