import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.core.db import db, use_case
from app.core.errors import ApiError
from app.core.redis import get_redis, key
from app.ledger import service as ledger
from app.payouts import service as payouts
from app.payouts.models import Withdrawal
from tests.helpers import assert_error

T0 = datetime(2026, 8, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def mom(api, frozen_clock):
    frozen_clock(T0)
    client = api.as_user("mom")
    ledger.adjust(
        user_id=client.user["id"], amount_fen=100_000, account="available", reason="test funds", operator_id=None
    )
    return client


def _withdraw(client, amount, key_="k1"):
    return client.post("/api/v1/me/withdrawals", json={"amount_fen": amount}, headers={"Idempotency-Key": key_})


def _bal(client):
    return ledger.balances(owner_id=client.user["id"])


def _clean():
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_successful_withdrawal_and_idempotent_retry(mom):
    first = _withdraw(mom, 500)
    assert first.status_code == 201
    again = _withdraw(mom, 500)
    assert again.get_json() == first.get_json() and again.headers.get("Idempotent-Replayed") == "true"
    withdrawal = mom.get(f"/api/v1/me/withdrawals/{first.get_json()['id']}").get_json()
    assert withdrawal["status"] == "succeeded"
    assert _bal(mom) == {"pending": 0, "available": 99_500, "withdrawing": 0, "withdrawn": 500}
    assert db.session.scalar(select(func.count()).select_from(Withdrawal)) == 1
    assert [w["id"] for w in mom.get("/api/v1/me/withdrawals").get_json()["items"]] == [withdrawal["id"]]
    _clean()


def test_a_crash_before_the_answer_is_stored_leaves_nothing_and_frees_the_key(mom, monkeypatch):
    """The withdrawal, its key and the stored answer commit together: a crash while answering leaves none of
    them (no key stuck "in progress"), no payout is queued, and the retry with the same key pays once."""
    from app.core.models import IdempotencyRecord
    from app.payouts import schemas

    def crash(self, *args, **kwargs):
        raise RuntimeError("the worker died while answering")

    with monkeypatch.context() as patch:
        patch.setattr(schemas.WithdrawalSchema, "dump", crash)
        assert_error(_withdraw(mom, 500), 500, "internal_error")
    assert db.session.scalar(select(func.count()).select_from(Withdrawal)) == 0
    assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    assert _bal(mom)["available"] == 100_000
    retry = _withdraw(mom, 500)
    assert retry.status_code == 201 and retry.get_json()["status"] == "pending"  # the payout runs after the commit
    assert mom.get(f"/api/v1/me/withdrawals/{retry.get_json()['id']}").get_json()["status"] == "succeeded"
    assert db.session.scalar(select(func.count()).select_from(Withdrawal)) == 1
    assert _bal(mom) == {"pending": 0, "available": 99_500, "withdrawing": 0, "withdrawn": 500}
    _clean()


def test_refusals(mom, api):
    assert_error(_withdraw(mom, 99), 422, "amount_below_minimum")
    assert_error(_withdraw(mom, 100_001, "k2"), 409, "insufficient_balance")
    assert_error(mom.post("/api/v1/me/withdrawals", json={"amount_fen": 100}), 428, "idempotency_key_required")
    poor = api.as_user("poor")
    assert_error(_withdraw(poor, 100), 409, "insufficient_balance")
    assert db.session.scalar(select(func.count()).select_from(Withdrawal)) == 0
    assert_error(api.as_user("other").get("/api/v1/me/withdrawals/1"), 404, "withdrawal_not_found")
    _clean()


def test_failure_returns_the_money(mom):
    body = _withdraw(mom, 1013).get_json()
    withdrawal = db.session.get(Withdrawal, body["id"])
    assert (withdrawal.status, withdrawal.failure_code) == ("failed", "V2_ACCOUNT_SIMPLE_BAN")
    assert _bal(mom) == {"pending": 0, "available": 100_000, "withdrawing": 0, "withdrawn": 0}
    _clean()


@pytest.mark.parametrize("amount,final,attempts", [(1044, "succeeded", 1), (1045, "failed", 1), (1046, "succeeded", 2)])
def test_timeout_stays_unknown_until_a_query_resolves_it(mom, frozen_clock, amount, final, attempts):
    body = _withdraw(mom, amount).get_json()
    withdrawal = db.session.get(Withdrawal, body["id"])
    assert withdrawal.status == "unknown"
    assert _bal(mom)["withdrawing"] == amount
    assert_error(_withdraw(mom, 100, "k2"), 409, "withdrawal_in_flight")
    assert payouts.resolve_stuck() == 0  # too fresh to query
    frozen_clock(T0 + timedelta(minutes=2))
    assert payouts.resolve_stuck() == 1
    db.session.refresh(withdrawal)
    assert (withdrawal.status, withdrawal.attempts) == (final, attempts)
    sent = int(get_redis().hget(key("sandbox", "transfer", withdrawal.partner_trade_no) + ":attempts", "n"))
    assert sent == attempts  # every attempt carried the same partner_trade_no
    expected = {"succeeded": (100_000 - amount, amount), "failed": (100_000, 0)}[final]
    assert (_bal(mom)["available"], _bal(mom)["withdrawn"]) == expected and _bal(mom)["withdrawing"] == 0
    assert payouts.resolve(withdrawal.id) == final  # a late duplicate job changes nothing
    _clean()


def test_daily_cap_by_beijing_day(mom, app, monkeypatch, frozen_clock):
    monkeypatch.setitem(app.config, "WITHDRAWAL_DAILY_CAP_FEN", 1000)
    assert _withdraw(mom, 600).status_code == 201
    assert_error(_withdraw(mom, 401, "k2"), 422, "daily_cap_exceeded")
    assert _withdraw(mom, 400, "k3").status_code == 201
    frozen_clock(T0.replace(hour=16))  # 00:00 next day in Beijing
    assert _withdraw(mom, 1000, "k4").status_code == 201


@pytest.mark.commits
def test_two_withdrawals_racing_for_one_balance(app, api):
    user = api.as_user("racer")
    with use_case():
        ledger.adjust(user_id=user.user["id"], amount_fen=1000, account="available", reason="funds", operator_id=None)
    barrier, results = threading.Barrier(2), []

    def attempt():
        with app.app_context():
            barrier.wait()
            try:
                with use_case():
                    payouts.request_withdrawal(user_id=user.user["id"], openid="racer", amount_fen=800)
                results.append("ok")
            except ApiError as exc:
                results.append(exc.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1, results
    assert set(results) - {"ok"} <= {"insufficient_balance", "withdrawal_in_flight"}
    assert _bal(user)["available"] == 200
    _clean()


@pytest.mark.commits
def test_guarded_balance_race_without_the_in_flight_rule(app, api):
    user = api.as_user("racer")
    uid = user.user["id"]
    with use_case():
        ledger.adjust(user_id=uid, amount_fen=1000, account="available", reason="funds", operator_id=None)
    barrier, results = threading.Barrier(4), []

    def attempt(n):
        with app.app_context():
            barrier.wait()
            try:
                with use_case():
                    ledger.post_journals(
                        [
                            ledger.JournalDraft(
                                key=f"race-{n}",
                                kind="withdrawal",
                                lines=[
                                    ledger.LineDraft(uid, "available", -600),
                                    ledger.LineDraft(uid, "withdrawing", 600),
                                ],
                            )
                        ],
                        guard=frozenset({(uid, "available")}),
                    )
                results.append("ok")
            except ApiError as exc:
                results.append(exc.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and results.count("insufficient_balance") == 3
    assert _bal(user)["available"] == 400
    _clean()
