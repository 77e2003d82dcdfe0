"""A hypothesis state machine over orders, refunds, settlements, withdrawals and payouts.

After every step: every journal of the run sums to zero, every cached balance equals the sum of its
lines, each Idempotency-Key had one effect, and an available balance is negative only after a clawback.
The size is the settings profile "money-state-machine" (200 examples × 50 steps).
"""
import itertools
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select, text

from app.accounts import service as accounts
from app.affiliate import service as affiliate
from app.core import clock
from app.core.db import db
from app.ledger.models import LedgerAccount, LedgerJournal, LedgerLine
from app.orders import service as orders
from app.payouts import service as payouts
from app.payouts.models import Withdrawal
from tests.affiliate_helpers import make_product

settings.register_profile("money-state-machine", max_examples=200, stateful_step_count=50, deadline=None,
                          suppress_health_check=list(HealthCheck))

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
            self.now = datetime(2027, 1, 1, tzinfo=timezone.utc) + timedelta(days=400 * run)
            clock.freeze(self.now)
            grandma = accounts.ensure_user(openid=f"g{run}", nickname="g")
            self.sharer = accounts.ensure_user(openid=f"s{run}", nickname="s", inviter=grandma)
            self.host = accounts.ensure_user(openid=f"h{run}", nickname="h")
            self.buyer = accounts.ensure_user(openid=f"b{run}", nickname="b")
            self.people = [grandma.id, self.sharer.id, self.host.id]
            self.openid = f"s{run}"
            self._login()
            self.product = make_product(price_fen=10_000, commission_rate_bp=2000, external_id=f"sm{run}")
            self.code = affiliate.create_share_link(sharer_id=self.sharer.id, product_id=self.product.id,
                                                    host_id=self.host.id).code
            self.first_journal = (db.session.scalar(select(func.max(LedgerJournal.id))) or 0) + 1
            self.orders: list[dict] = []
            self.keys: dict[str, int] = {}
            self.keys_amount: dict[str, int] = {}
            self.key_counter = itertools.count()

        def _login(self):
            self.logged_in_at = self.now
            self.headers = {"Authorization": f"Bearer {accounts.login(code=f'sandbox:{self.openid}').token}"}

        def _ingest(self, order: dict, *, version: int | None = None):
            return orders.ingest_order(
                source="union", external_id=order["external_id"], status=order["status"],
                version=order["version"] if version is None else version, event_at=self.now, buyer_id=self.buyer.id,
                tracking_code=self.code, lines=[{"line_id": "1", "product_id": self.product.id, "quantity": 1,
                                                 "paid_fen": order["paid"], "refunded_fen": order["refunded"]}])

        @rule(paid=st.integers(min_value=1, max_value=50_000))
        def pay(self, paid):
            order = {"external_id": f"o{next(ORDER_NUMBERS)}", "status": "paid", "version": 1, "paid": paid,
                     "refunded": 0}
            self.orders.append(order)
            assert self._ingest(order).outcome == "created"

        @precondition(lambda self: self.orders)
        @rule(data=st.data())
        def complete(self, data):
            order = data.draw(st.sampled_from(self.orders))
            if order["status"] in ("paid",):
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
            orders.settle_due()

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
                assert response.get_json()["code"] in {"validation_error", "amount_below_minimum",
                                                       "insufficient_balance", "withdrawal_in_flight",
                                                       "daily_cap_exceeded"}, response.get_json()

        @rule()
        def resolve_payouts(self):
            self.now += timedelta(minutes=2)
            clock.freeze(self.now)
            payouts.resolve_stuck()

        @invariant()
        def ledger_holds(self):
            unbalanced = db.session.scalar(select(func.count()).select_from(
                select(LedgerLine.journal_id).where(LedgerLine.journal_id >= self.first_journal)
                .group_by(LedgerLine.journal_id).having(func.sum(LedgerLine.amount_fen) != 0).subquery()))
            assert unbalanced == 0, "a journal does not sum to zero"
            owners = self.people + [self.buyer.id]
            sums = select(LedgerLine.account_id, func.sum(LedgerLine.amount_fen).label("total")) \
                .group_by(LedgerLine.account_id).subquery()
            accounts_now = db.session.execute(
                select(LedgerAccount.owner_id, LedgerAccount.kind, LedgerAccount.balance_fen, func.coalesce(sums.c.total, 0))
                .outerjoin(sums, sums.c.account_id == LedgerAccount.id).where(LedgerAccount.owner_id.in_(owners))).all()
            for owner, kind, cached, derived in accounts_now:
                assert cached == derived, f"{kind} of {owner}: cached {cached}, lines {derived}"
                if kind in ("pending", "withdrawing", "withdrawn"):
                    assert cached >= 0, kind
                if kind == "available" and cached < 0:
                    # only a clawback of refunded, settled commission can take available below zero
                    assert db.session.scalar(
                        select(func.count()).select_from(LedgerLine)
                        .join(LedgerJournal, LedgerJournal.id == LedgerLine.journal_id)
                        .join(LedgerAccount, LedgerAccount.id == LedgerLine.account_id)
                        .where(LedgerAccount.owner_id == owner, LedgerAccount.kind == "available",
                               LedgerJournal.kind == "clawback")) > 0
            withdrawals = db.session.scalar(select(func.count()).select_from(Withdrawal)
                                            .where(Withdrawal.user_id == self.sharer.id))
            assert withdrawals == len(set(self.keys.values())) == len(self.keys), "one effect per idempotency key"

        def teardown(self):
            clock.freeze(None)

    return MoneyMachine


@pytest.mark.timeout(900)  # 10,000 steps: ~80 s on SQLite and ~160 s on PostgreSQL on an idle 2-core machine
@pytest.mark.commits  # thousands of savepoints in one rolled-back transaction would slow PostgreSQL to a crawl
def test_money_state_machine(app, client):
    from hypothesis.stateful import run_state_machine_as_test

    with fast_commits():
        run_state_machine_as_test(machine_for(app, client), settings=settings.get_profile("money-state-machine"))


@contextmanager
def fast_commits():
    """On PostgreSQL, skip the fsync at each commit: this test commits thousands of times and durability is moot."""
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ALTER DATABASE \"%s\" SET synchronous_commit = off" % db.engine.url.database)
            conn.commit()
        db.engine.dispose()
    try:
        yield
    finally:
        if postgres:
            db.session.remove()
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ALTER DATABASE \"%s\" RESET synchronous_commit" % db.engine.url.database)
                conn.commit()
            db.engine.dispose()
