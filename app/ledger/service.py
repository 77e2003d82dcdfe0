"""Posting journals and reading balances. Every journal sums to zero; lines are never changed.

Callers build `JournalDraft`s and post them inside their own transaction (posting never commits), so a
journal commits together with the business change that caused it. A journal's `key` is unique: posting
the same key twice posts it once. Balances are the sums of lines; each account also caches its balance,
moved by the same UPDATE that accompanies the lines and checked against them by `verify()`.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from uuid import uuid4

from sqlalchemy import bindparam, func, insert, select, text, update

from app.accounts import service as accounts
from app.core import pg_copy
from app.core.clock import now_utc
from app.core.db import among, db, is_postgres, upsert_insert
from app.core.errors import Conflict, Invalid
from app.core.pagination import keyset_page
from app.ledger.models import PLATFORM_KINDS, USER_KINDS, LedgerAccount, LedgerJournal, LedgerLine
from app.ledger.schemas import JournalSchema as JournalSchema  # orders' and payouts' views show journals

JOURNAL_COLUMNS = ("key", "kind", "order_id", "withdrawal_id", "reason", "created_by_id", "created_at")
LINE_COLUMNS = ("journal_id", "account_id", "amount_fen", "share", "order_line_id", "attribution_id", "created_at")


@dataclass(frozen=True)
class LineDraft:
    owner_id: int | None
    kind: str
    amount_fen: int
    share: str | None = None
    order_line_id: int | None = None
    attribution_id: int | None = None


@dataclass
class JournalDraft:
    key: str
    kind: str
    lines: list[LineDraft] = field(default_factory=list)
    order_id: int | None = None
    withdrawal_id: int | None = None
    reason: str | None = None
    created_by_id: int | None = None


class InsufficientBalance(Conflict):
    code, message = "insufficient_balance", "The available balance is too low."


def account_code(owner_id: int | None, kind: str) -> str:
    if owner_id is None:
        if kind not in PLATFORM_KINDS:
            raise ValueError(f"{kind} is not a platform account")
        return f"platform:{kind}"
    if kind not in USER_KINDS:
        raise ValueError(f"{kind} is not a user account")
    return f"user:{owner_id}:{kind}"


def ensure_accounts(pairs: set[tuple[int | None, str]]) -> dict[tuple[int | None, str], int]:
    """The account ids for (owner, kind) pairs, creating the missing accounts."""
    codes = {account_code(owner, kind): (owner, kind) for owner, kind in pairs}
    if not codes:
        return {}
    found = dict(
        db.session.execute(select(LedgerAccount.code, LedgerAccount.id).where(among(LedgerAccount.code, codes))).all()
    )
    missing = [code for code in codes if code not in found]
    if missing and is_postgres():
        found.update(
            db.session.execute(
                _CREATE_ACCOUNTS,
                {
                    "codes": missing,
                    "owners": [codes[c][0] for c in missing],
                    "kinds": [codes[c][1] for c in missing],
                    "now": now_utc(),
                },
            ).all()
        )
        missing = [code for code in missing if code not in found]  # made meanwhile by a concurrent posting
    elif missing:
        db.session.execute(
            upsert_insert(LedgerAccount).on_conflict_do_nothing(index_elements=["code"]),
            [
                {
                    "code": code,
                    "owner_id": codes[code][0],
                    "kind": codes[code][1],
                    "balance_fen": 0,
                    "created_at": now_utc(),
                }
                for code in missing
            ],
        )
    if missing:
        found.update(
            db.session.execute(
                select(LedgerAccount.code, LedgerAccount.id).where(among(LedgerAccount.code, missing))
            ).all()
        )
    return {codes[code]: account_id for code, account_id in found.items()}


_CREATE_ACCOUNTS = text(
    "INSERT INTO ledger_accounts (code, owner_id, kind, balance_fen, created_at) "
    "SELECT code, owner_id, kind, 0, :now FROM unnest(CAST(:codes AS text[]), CAST(:owners AS bigint[]), "
    "CAST(:kinds AS text[])) AS m(code, owner_id, kind) ON CONFLICT (code) DO NOTHING RETURNING code, id"
)


def post_journals(drafts: list[JournalDraft], *, guard: frozenset[tuple[int | None, str]] = frozenset()) -> list[int]:
    """Post the drafts whose key is new (without committing); returns the new journal ids.

    An account in `guard` may not go below zero through these postings: the balance moves by a
    conditional UPDATE and a refusal raises `InsufficientBalance` (the edge rolls the use case back).
    """
    ready = []
    for draft in drafts:
        lines = [line for line in draft.lines if line.amount_fen != 0]
        if sum(line.amount_fen for line in lines) != 0:
            raise ValueError(f"journal {draft.key} does not sum to zero")
        if lines:
            ready.append((draft, lines))
    if not ready:
        return []
    existing = set(
        db.session.scalars(select(LedgerJournal.key).where(among(LedgerJournal.key, [d.key for d, _ in ready])))
    )
    ready = [(d, lines) for d, lines in ready if d.key not in existing]
    if not ready:
        return []
    accounts = ensure_accounts({(line.owner_id, line.kind) for _, lines in ready for line in lines})
    now = now_utc()
    journal_rows = [
        {
            "key": d.key,
            "kind": d.kind,
            "order_id": d.order_id,
            "withdrawal_id": d.withdrawal_id,
            "reason": d.reason,
            "created_by_id": d.created_by_id,
            "created_at": now,
        }
        for d, _ in ready
    ]
    postgres = is_postgres()
    if postgres:
        journal_ids = pg_copy.allocate_ids(LedgerJournal.__table__, len(journal_rows))
        pg_copy.copy_rows(
            LedgerJournal.__table__,
            ("id", *JOURNAL_COLUMNS),
            ((journal_id, *(row[c] for c in JOURNAL_COLUMNS)) for journal_id, row in zip(journal_ids, journal_rows)),
        )
    else:
        journal_ids = db.session.scalars(
            insert(LedgerJournal).returning(LedgerJournal.id, sort_by_parameter_order=True), journal_rows
        ).all()
    rows, deltas = [], defaultdict(int)
    for journal_id, (_, lines) in zip(journal_ids, ready):
        for line in lines:
            account_id = accounts[(line.owner_id, line.kind)]
            deltas[account_id] += line.amount_fen
            rows.append(
                (journal_id, account_id, line.amount_fen, line.share, line.order_line_id, line.attribution_id, now)
            )
    if postgres:
        pg_copy.copy_rows(LedgerLine.__table__, LINE_COLUMNS, rows)
    else:
        db.session.execute(insert(LedgerLine), [dict(zip(LINE_COLUMNS, row)) for row in rows])
    guarded = {accounts[pair] for pair in guard if pair in accounts}
    for account_id in sorted(a for a in deltas if a in guarded and deltas[a] < 0):
        moved = db.session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == account_id, LedgerAccount.balance_fen + deltas[account_id] >= 0)
            .values(balance_fen=LedgerAccount.balance_fen + deltas[account_id])
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise InsufficientBalance()
    rest = sorted((a, deltas[a]) for a in deltas if not (a in guarded and deltas[a] < 0) and deltas[a] != 0)
    if rest:
        _move_balances(rest, postgres)
    return list(journal_ids)


def _move_balances(deltas: list[tuple[int, int]], postgres: bool) -> None:
    """Add each delta to its account's cached balance, locking the rows in account id order (never deadlocks)."""
    if postgres:
        ids, amounts = [a for a, _ in deltas], [d for _, d in deltas]
        db.session.execute(
            text("SELECT 1 FROM ledger_accounts WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"), {"ids": ids}
        )
        db.session.execute(
            text(
                "UPDATE ledger_accounts AS a SET balance_fen = a.balance_fen + d.delta "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:amounts AS bigint[])) AS d(id, delta) "
                "WHERE a.id = d.id"
            ),
            {"ids": ids, "amounts": amounts},
        )
        return
    table = LedgerAccount.__table__
    db.session.execute(
        table.update()
        .where(table.c.id == bindparam("b_id"))
        .values(balance_fen=table.c.balance_fen + bindparam("b_delta")),
        [{"b_id": a, "b_delta": d} for a, d in deltas],
    )


def balances(*, owner_id: int) -> dict[str, int]:
    """A user's balance per account kind (zero for accounts never used)."""
    rows = db.session.execute(
        select(LedgerAccount.kind, LedgerAccount.balance_fen).where(LedgerAccount.owner_id == owner_id)
    ).all()
    return dict.fromkeys(USER_KINDS, 0) | dict(rows)


def derived_balance(*, owner_id: int | None, kind: str) -> int:
    """An account's balance summed from its lines (the truth the cache must equal)."""
    return (
        db.session.scalar(
            select(func.coalesce(func.sum(LedgerLine.amount_fen), 0))
            .join(LedgerAccount, LedgerAccount.id == LedgerLine.account_id)
            .where(LedgerAccount.code == account_code(owner_id, kind))
        )
        or 0
    )


def verify() -> dict[str, list]:
    """Check the ledger: journals whose lines do not sum to zero, accounts whose cache differs from their lines."""
    unbalanced = list(
        db.session.scalars(
            select(LedgerLine.journal_id).group_by(LedgerLine.journal_id).having(func.sum(LedgerLine.amount_fen) != 0)
        )
    )
    sums = (
        select(LedgerLine.account_id, func.sum(LedgerLine.amount_fen).label("total"))
        .group_by(LedgerLine.account_id)
        .subquery()
    )
    drift = [
        tuple(row)
        for row in db.session.execute(
            select(LedgerAccount.code, LedgerAccount.balance_fen, func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account_id == LedgerAccount.id)
            .where(LedgerAccount.balance_fen != func.coalesce(sums.c.total, 0))
        )
    ]
    return {"unbalanced_journals": unbalanced, "balance_drift": drift}


def adjust(*, user_id: int, amount_fen: int, account: str, reason: str, operator_id: int | None) -> int:
    """Credit (or debit) a user's pending or available balance against the platform, with a reason.

    A debit may not take the balance below zero (409 `insufficient_balance`): only a clawback of refunded
    commission can do that.
    """
    accounts.get_user(user_id=user_id)
    if amount_fen == 0 or account not in ("pending", "available"):
        raise Invalid("An adjustment moves a non-zero amount on pending or available.", code="adjustment_invalid")
    if not reason.strip():
        raise Invalid("Give the reason for the adjustment.", code="reason_required", errors={"reason": ["Blank."]})
    draft = JournalDraft(
        key=f"adjustment:{uuid4().hex}",
        kind="adjustment",
        reason=reason.strip(),
        created_by_id=operator_id,
        lines=[
            LineDraft(user_id, account, amount_fen, share="adjustment"),
            LineDraft(None, "adjustments", -amount_fen, share="adjustment"),
        ],
    )
    return post_journals([draft], guard=frozenset({(user_id, account)}))[0]


def earnings_by_share(*, owner_id: int) -> dict[str, int]:
    """What the user has earned, net of reversals, per share (level1, level2, host, content, adjustment)."""
    rows = db.session.execute(
        select(LedgerLine.share, func.sum(LedgerLine.amount_fen))
        .join(LedgerAccount, LedgerAccount.id == LedgerLine.account_id)
        .where(
            LedgerAccount.owner_id == owner_id,
            LedgerAccount.kind.in_(("pending", "available")),
            LedgerLine.share.is_not(None),
        )
        .group_by(LedgerLine.share)
    ).all()
    return dict.fromkeys(("level1", "level2", "host", "content", "adjustment"), 0) | {s: int(v) for s, v in rows}


def entries(*, owner_id: int, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """The user's ledger lines, newest first, each with its journal (kind, cause, reason)."""
    stmt = (
        select(
            LedgerLine.id,
            LedgerLine.amount_fen,
            LedgerLine.share,
            LedgerLine.order_line_id,
            LedgerLine.attribution_id,
            LedgerLine.created_at,
            LedgerAccount.kind.label("account"),
            LedgerJournal.id.label("journal_id"),
            LedgerJournal.kind.label("journal_kind"),
            LedgerJournal.order_id,
            LedgerJournal.withdrawal_id,
            LedgerJournal.reason,
        )
        .join(LedgerAccount, LedgerAccount.id == LedgerLine.account_id)
        .join(LedgerJournal, LedgerJournal.id == LedgerLine.journal_id)
        .where(LedgerAccount.owner_id == owner_id)
    )
    rows, next_cursor = keyset_page(
        stmt,
        columns=[LedgerLine.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda r: (r.id,),
        session=db.session,
    )
    return [dict(row._mapping) for row in rows], next_cursor


def journals_of_order(*, order_id: int) -> list[dict]:
    """Every journal an order produced, with its lines and the accounts they touch."""
    return _journals_with_lines(LedgerJournal.order_id == order_id)


def journals_of_withdrawal(*, withdrawal_id: int) -> list[dict]:
    """Every journal a withdrawal produced (request, then success or failure), with its lines."""
    return _journals_with_lines(LedgerJournal.withdrawal_id == withdrawal_id)


def _journals_with_lines(condition) -> list[dict]:
    journals = db.session.scalars(select(LedgerJournal).where(condition).order_by(LedgerJournal.id)).all()
    lines = (
        db.session.execute(
            select(
                LedgerLine.journal_id,
                LedgerLine.amount_fen,
                LedgerLine.share,
                LedgerLine.order_line_id,
                LedgerLine.attribution_id,
                LedgerAccount.code,
                LedgerAccount.owner_id,
                LedgerAccount.kind,
            )
            .join(LedgerAccount, LedgerAccount.id == LedgerLine.account_id)
            .where(LedgerLine.journal_id.in_([j.id for j in journals]))
            .order_by(LedgerLine.id)
        )
        .mappings()
        .all()
        if journals
        else []
    )
    by_journal = defaultdict(list)
    for line in lines:
        by_journal[line["journal_id"]].append(
            {k: line[k] for k in ("amount_fen", "share", "order_line_id", "attribution_id", "owner_id", "kind", "code")}
        )
    return [
        {
            "id": j.id,
            "key": j.key,
            "kind": j.kind,
            "reason": j.reason,
            "created_at": j.created_at,
            "lines": by_journal[j.id],
        }
        for j in journals
    ]
