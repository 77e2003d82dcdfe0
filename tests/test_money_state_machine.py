"""A hypothesis state machine over orders, refunds, settlements, withdrawals and payouts.

After every step: every journal of the run sums to zero; every account the run created or touched (the
platform's, which have no owner, included) moved its cached balance by exactly the sum of its new lines;
each Idempotency-Key had one effect; and every journal that leaves an available balance below zero, or lower
while below zero, is a clawback. The end of the test verifies the whole ledger (`ledger.verify()`).
The size is the settings profile "money-state-machine" (200 examples × 50 steps).
"""

import itertools
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, or_, select

from app.accounts import service as accounts
from app.affiliate import service as affiliate
from app.core import clock
from app.core.db import db
from app.ledger import service as ledger
from app.ledger.models import LedgerAccount, LedgerJournal, LedgerLine
from app.orders import flows as order_flows
from app.payouts import service as payouts
from app.payouts.models import Withdrawal
from tests.affiliate_helpers import make_product

settings.register_profile(
    "money-state-machine",
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

CLEAN = {"unbalanced_journals": [], "balance_drift": []}
_runs = itertools.count()
# Order ids unique across examples (a machine's id() can repeat once it is garbage-collected).
ORDER_NUMBERS = itertools.count(1)
# Payout endings the sandbox understands: 00 pays, 13 fails, 44 times out then pays, 45 times out then fails.
ENDINGS = [0, 13, 44, 45]


def machine_for(app, client):
    class MoneyMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            run = next(_runs)
            self.now = datetime(2027, 1, 1, tzinfo=UTC) + timedelta(days=400 * run)
            clock.freeze(self.now)
            grandma = accounts.ensure_user(openid=f"g{run}", nickname="g")
            # Plain ids, not ORM objects: an object expires at every commit and reloads at its next use.
            self.sharer_id = accounts.ensure_user(openid=f"s{run}", nickname="s", inviter=grandma).id
            host_id = accounts.ensure_user(openid=f"h{run}", nickname="h").id
            self.buyer_id = accounts.ensure_user(openid=f"b{run}", nickname="b").id
            self.openid = f"s{run}"
            self._login()
            self.product_id = make_product(price_fen=10_000, commission_rate_bp=2000, external_id=f"sm{run}").id
            self.code = affiliate.create_share_link(
                sharer_id=self.sharer_id, product_id=self.product_id, host_id=host_id
            ).code
            self.first_journal = (db.session.scalar(select(func.max(LedgerJournal.id))) or 0) + 1
            # Each step checks cached == cached at the start + the run's lines: it reads only the run's lines and
            # judges the run alone (a failed run cannot fail the runs hypothesis shrinks it with). Run by run, from
            # the empty ledger, that is every account's whole history; the test's end verifies it in full too.
            self.started = dict(db.session.execute(select(LedgerAccount.id, LedgerAccount.balance_fen)).all())
            self.first_account = max(self.started, default=0) + 1
            self.last_line = db.session.scalar(select(func.max(LedgerLine.id))) or 0
            # Available balances replayed journal by journal, to see which journal took one below zero.
            self.available = {}
            self.walked_journal = self.first_journal - 1
            self.orders: list[dict] = []
            self.keys: dict[str, int] = {}
            self.keys_amount: dict[str, int] = {}
            self.key_counter = itertools.count()

        def _login(self):
            self.logged_in_at = self.now
            self.headers = {"Authorization": f"Bearer {accounts.login(code=f'sandbox:{self.openid}').token}"}

        def _ingest(self, order: dict, *, version: int | None = None):
            return order_flows.ingest_order(
                source="union",
                external_id=order["external_id"],
                status=order["status"],
                version=order["version"] if version is None else version,
                event_at=self.now,
                buyer_id=self.buyer_id,
                tracking_code=self.code,
                lines=[
                    {
                        "line_id": "1",
                        "product_id": self.product_id,
                        "quantity": 1,
                        "paid_fen": order["paid"],
                        "refunded_fen": order["refunded"],
                    }
                ],
            )

        @rule(paid=st.integers(min_value=1, max_value=50_000))
        def pay(self, paid):
            order = {
                "external_id": f"o{next(ORDER_NUMBERS)}",
                "status": "paid",
                "version": 1,
                "paid": paid,
                "refunded": 0,
            }
            self.orders.append(order)
            assert self._ingest(order).outcome == "created"

        @precondition(lambda self: self.orders)
        @rule(data=st.data())
        def complete(self, data):
            order = data.draw(st.sampled_from(self.orders))
            # A partly refunded order can still complete, settle, and then be refunded further (a clawback).
            if order["status"] == "paid" or (order["status"] == "refunded" and order["refunded"] < order["paid"]):
                order["status"], order["version"] = "completed", order["version"] + 1
                assert self._ingest(order).outcome == "applied"

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), part=st.integers(min_value=1, max_value=100))
        def refund(self, data, part):
            order = data.draw(st.sampled_from(self.orders))
            order["refunded"] = min(order["paid"], order["refunded"] + max(1, order["paid"] * part // 100))
            order["status"], order["version"] = "refunded", order["version"] + 1
            journals = db.session.scalar(select(func.count()).select_from(LedgerJournal))
            assert self._ingest(order).outcome == "applied"
            assert db.session.scalar(select(func.count()).select_from(LedgerJournal)) <= journals + 1

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), older=st.booleans())
        def replay(self, data, older):
            order = data.draw(st.sampled_from(self.orders))
            journals = db.session.scalar(select(func.count()).select_from(LedgerJournal))
            version = order["version"] - 1 if older and order["version"] > 1 else order["version"]
            assert self._ingest(order, version=version).outcome == "stale"
            assert db.session.scalar(select(func.count()).select_from(LedgerJournal)) == journals

        @rule(days=st.integers(min_value=0, max_value=10))
        def settle(self, days):
            self.now += timedelta(days=days)
            clock.freeze(self.now)
            order_flows.settle_due()

        @rule(yuan=st.integers(min_value=0, max_value=30), ending=st.sampled_from(ENDINGS), reuse=st.booleans())
        def withdraw(self, yuan, ending, reuse):
            amount = yuan * 100 + ending
            if self.now - self.logged_in_at > timedelta(days=20):  # sessions last 30 days
                self._login()
            key = f"k{next(self.key_counter)}" if not (reuse and self.keys) else sorted(self.keys)[0]
            body = {"amount_fen": amount} if key not in self.keys else {"amount_fen": self.keys_amount[key]}
            response = client.post("/api/v1/me/withdrawals", json=body, headers=self.headers | {"Idempotency-Key": key})
            if response.status_code == 201:
                withdrawal_id = response.get_json()["id"]
                if key in self.keys:
                    assert self.keys[key] == withdrawal_id  # a replay, not a second effect
                self.keys[key] = withdrawal_id
                self.keys_amount[key] = body["amount_fen"]
            else:
                assert key not in self.keys
                assert response.get_json()["code"] in {
                    "validation_error",
                    "amount_below_minimum",
                    "insufficient_balance",
                    "withdrawal_in_flight",
                    "daily_cap_exceeded",
                }, response.get_json()

        @rule()
        def resolve_payouts(self):
            self.now += timedelta(minutes=2)
            clock.freeze(self.now)
            payouts.resolve_stuck()

        @invariant()
        def ledger_holds(self):
            unbalanced = db.session.scalar(
                select(func.count()).select_from(
                    select(LedgerLine.journal_id)
                    .where(LedgerLine.journal_id >= self.first_journal)
                    .group_by(LedgerLine.journal_id)
                    .having(func.sum(LedgerLine.amount_fen) != 0)
                    .subquery()
                )
            )
            assert unbalanced == 0, "a journal does not sum to zero"
            moved = dict(
                db.session.execute(
                    select(LedgerLine.account_id, func.sum(LedgerLine.amount_fen))
                    .where(LedgerLine.id > self.last_line)
                    .group_by(LedgerLine.account_id)
                ).all()
            )
            accounts_now = db.session.execute(
                select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.kind, LedgerAccount.balance_fen).where(
                    or_(
                        LedgerAccount.id >= self.first_account,
                        LedgerAccount.owner_id.is_(None),
                        LedgerAccount.id.in_(list(moved)),
                    )
                )
            ).all()
            for account_id, code, kind, cached in accounts_now:
                derived = self.started.get(account_id, 0) + moved.get(account_id, 0)
                assert cached == derived, f"{code}: cached {cached}, lines {derived}"
                if kind in ("pending", "withdrawing", "withdrawn"):
                    assert cached >= 0, code
            self._walk_available()
            withdrawals = db.session.scalar(
                select(func.count()).select_from(Withdrawal).where(Withdrawal.user_id == self.sharer_id)
            )
            assert withdrawals == len(set(self.keys.values())) == len(self.keys), "one effect per idempotency key"

        def _walk_available(self):
            """Replay the run's new journals on available balances: only a clawback may leave one below zero."""
            steps = db.session.execute(
                select(
                    LedgerLine.journal_id, LedgerJournal.kind, LedgerLine.account_id, func.sum(LedgerLine.amount_fen)
                )
                .join(LedgerJournal, LedgerJournal.id == LedgerLine.journal_id)
                .join(LedgerAccount, LedgerAccount.id == LedgerLine.account_id)
                # Both sides bounded: the tables grow from empty within the run, so PostgreSQL's statistics
                # trail them and a join bounded on one side only was planned as a scan of every journal.
                .where(
                    LedgerLine.journal_id > self.walked_journal,
                    LedgerJournal.id > self.walked_journal,
                    LedgerAccount.kind == "available",
                )
                .group_by(LedgerLine.journal_id, LedgerJournal.kind, LedgerLine.account_id)
                .order_by(LedgerLine.journal_id, LedgerLine.account_id)
            ).all()
            for journal_id, journal_kind, account_id, delta in steps:
                before = self.available.get(account_id, self.started.get(account_id, 0))
                after = self.available[account_id] = before + delta
                if delta < 0 and after < 0:
                    assert journal_kind == "clawback", f"{journal_kind} journal {journal_id} took available to {after}"
                self.walked_journal = journal_id

        def teardown(self):
            clock.freeze(None)

    return MoneyMachine


@pytest.mark.timeout(900)  # 10,000 steps: ~70 s on SQLite and ~110 s on PostgreSQL on a 2-core machine (load 2)
@pytest.mark.commits  # thousands of savepoints in one rolled-back transaction would slow PostgreSQL to a crawl
def test_money_state_machine(app, client):
    from hypothesis.stateful import run_state_machine_as_test

    with fast_commits():
        run_state_machine_as_test(machine_for(app, client), settings=settings.get_profile("money-state-machine"))
    assert ledger.verify() == CLEAN


@contextmanager
def fast_commits():
    """On PostgreSQL, skip the fsync at each commit: this test commits thousands of times and durability is moot."""
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:
        with db.engine.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{db.engine.url.database}" SET synchronous_commit = off')
            conn.commit()
        db.engine.dispose()
    try:
        yield
    finally:
        if postgres:
            db.session.remove()
            with db.engine.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{db.engine.url.database}" RESET synchronous_commit')
                conn.commit()
            db.engine.dispose()
