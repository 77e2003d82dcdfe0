"""Operators' payouts: search withdrawals, one withdrawal's WeChat Pay calls and journals, resolve now."""

from datetime import UTC, datetime, timedelta

import pytest

from app.core.redis import get_redis, key
from app.ledger import service as ledger
from app.payouts import service as payouts
from tests.helpers import assert_error

T0 = datetime(2026, 8, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


def _funded(api, name):
    client = api.as_user(name)
    ledger.adjust(
        user_id=client.user["id"], amount_fen=100_000, account="available", reason="test funds", operator_id=None
    )
    return client


def _withdraw(client, amount, key_="k1"):
    response = client.post("/api/v1/me/withdrawals", json={"amount_fen": amount}, headers={"Idempotency-Key": key_})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _sent(partner_trade_no):
    return int(get_redis().hget(key("sandbox", "transfer", partner_trade_no) + ":attempts", "n") or 0)


def _clean():
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def _ids(response):
    assert response.status_code == 200, response.get_json()
    return [w["id"] for w in response.get_json()["items"]]


def test_search_by_status_stuck_user_and_time_with_cursor(api, operator, frozen_clock):
    frozen_clock(T0)
    mom, dad = _funded(api, "mom"), _funded(api, "dad")
    paid = _withdraw(mom, 500)
    failed = _withdraw(mom, 1013, "k2")
    frozen_clock(T0 + timedelta(hours=1))
    unknown = _withdraw(dad, 1044)

    def search(**q):
        return _ids(operator.get("/api/v1/admin/withdrawals", query_string=q))

    assert search() == [unknown, failed, paid]
    assert search(status="unknown") == [unknown]
    assert search(status="failed") == [failed]
    assert search(user_id=mom.user["id"]) == [failed, paid]
    assert search(requested_from=(T0 + timedelta(minutes=30)).isoformat()) == [unknown]
    assert search(requested_until=(T0 + timedelta(minutes=30)).isoformat()) == [failed, paid]
    for far in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):  # overflow in UTC: refused, not a 500
        assert_error(
            operator.get("/api/v1/admin/withdrawals", query_string={"requested_from": far}), 422, "validation_error"
        )
    assert search(stuck="true") == []  # untouched for less than a minute: the job would not pick it up yet
    frozen_clock(T0 + timedelta(hours=1, minutes=2))
    assert search(stuck="true") == [unknown]
    first = operator.get("/api/v1/admin/withdrawals", query_string={"limit": 2}).get_json()
    assert [w["id"] for w in first["items"]] == [unknown, failed]
    assert first["items"][0]["user_id"] == dad.user["id"] and first["items"][0]["attempts"] == 1
    rest = operator.get("/api/v1/admin/withdrawals", query_string={"limit": 2, "cursor": first["next_cursor"]})
    assert _ids(rest) == [paid] and rest.get_json()["next_cursor"] is None
    assert_error(operator.get("/api/v1/admin/withdrawals", query_string={"status": "lost"}), 422, "validation_error")
    assert_error(operator.get("/api/v1/admin/withdrawals", query_string={"cursor": "nope"}), 422, "invalid_cursor")


def test_one_withdrawal_shows_its_calls_and_journals(api, operator, frozen_clock):
    frozen_clock(T0)
    mom = _funded(api, "mom")
    failed = _withdraw(mom, 1013)
    body = operator.get(f"/api/v1/admin/withdrawals/{failed}").get_json()
    assert body["withdrawal"]["status"] == "failed" and body["withdrawal"]["openid"] == "mom"
    assert [(a["action"], a["outcome"], a["code"], a["created_by_id"]) for a in body["attempts"]] == [
        ("transfer", "failed", "V2_ACCOUNT_SIMPLE_BAN", None)
    ]
    assert [j["kind"] for j in body["journals"]] == ["withdrawal", "payout_failure"]
    for journal in body["journals"]:
        assert sum(line["amount_fen"] for line in journal["lines"]) == 0
    assert {(line["kind"], line["amount_fen"]) for line in body["journals"][1]["lines"]} == {
        ("withdrawing", -1013),
        ("available", 1013),
    }
    assert_error(operator.get("/api/v1/admin/withdrawals/999999"), 404, "withdrawal_not_found")


@pytest.mark.parametrize(
    "amount,final,transfers", [(1044, "succeeded", 1), (1045, "failed", 1), (1046, "succeeded", 2)]
)
def test_resolving_an_unknown_payout_now(api, operator, frozen_clock, amount, final, transfers):
    frozen_clock(T0)
    mom = _funded(api, "mom")
    withdrawal_id = _withdraw(mom, amount)
    resolved = operator.post(f"/api/v1/admin/withdrawals/{withdrawal_id}/resolve")
    assert resolved.status_code == 200, resolved.get_json()
    body = resolved.get_json()
    assert body["withdrawal"]["status"] == final and body["withdrawal"]["attempts"] == transfers
    calls = [(a["action"], a["outcome"]) for a in body["attempts"]]
    expected = {
        1044: [("transfer", "unknown"), ("query", "succeeded")],
        1045: [("transfer", "unknown"), ("query", "failed")],
        1046: [("transfer", "unknown"), ("query", "not_found"), ("transfer", "succeeded")],
    }[amount]
    assert calls == expected
    assert [a["created_by_id"] for a in body["attempts"][1:]] == [operator.user["id"]] * (len(calls) - 1)
    assert [j["kind"] for j in body["journals"]] == [
        "withdrawal",
        "payout_success" if final == "succeeded" else "payout_failure",
    ]
    # Again: nothing is sent, queried or posted twice.
    again = operator.post(f"/api/v1/admin/withdrawals/{withdrawal_id}/resolve").get_json()
    assert again == body
    assert _sent(body["withdrawal"]["partner_trade_no"]) == transfers  # every transfer carried the one number
    balances = ledger.balances(owner_id=mom.user["id"])
    assert (balances["available"], balances["withdrawing"], balances["withdrawn"]) == (
        (100_000 - amount, 0, amount) if final == "succeeded" else (100_000, 0, 0)
    )
    assert payouts.resolve_stuck() == 0  # nothing left for the job
    _clean()


def test_a_pending_payout_whose_job_was_lost_is_sent_now(api, operator, frozen_clock, monkeypatch):
    frozen_clock(T0)
    mom = _funded(api, "mom")
    with monkeypatch.context() as patch:
        patch.setattr(payouts, "enqueue", lambda *args, **kwargs: None)  # the job never ran
        withdrawal_id = _withdraw(mom, 700)
    listed = operator.get("/api/v1/admin/withdrawals", query_string={"status": "pending"}).get_json()["items"]
    assert [w["id"] for w in listed] == [withdrawal_id]
    body = operator.post(f"/api/v1/admin/withdrawals/{withdrawal_id}/resolve").get_json()
    assert body["withdrawal"]["status"] == "succeeded" and body["withdrawal"]["payment_no"]
    assert [(a["action"], a["outcome"]) for a in body["attempts"]] == [("transfer", "succeeded")]
    # A late copy of the lost job, and a second resolve, change nothing.
    assert payouts.pay(withdrawal_id) == "succeeded"
    assert operator.post(f"/api/v1/admin/withdrawals/{withdrawal_id}/resolve").get_json() == body
    assert _sent(body["withdrawal"]["partner_trade_no"]) == 1
    assert ledger.balances(owner_id=mom.user["id"])["withdrawn"] == 700
    _clean()


def test_a_final_withdrawal_is_left_as_it_is(api, operator, frozen_clock):
    frozen_clock(T0)
    mom = _funded(api, "mom")
    failed = _withdraw(mom, 1013)
    before = operator.get(f"/api/v1/admin/withdrawals/{failed}").get_json()
    assert operator.post(f"/api/v1/admin/withdrawals/{failed}/resolve").get_json() == before
    assert _sent(before["withdrawal"]["partner_trade_no"]) == 1
    assert_error(operator.post("/api/v1/admin/withdrawals/999999/resolve"), 404, "withdrawal_not_found")
    _clean()


def test_operators_only(api, frozen_clock):
    frozen_clock(T0)
    mom = _funded(api, "mom")
    withdrawal_id = _withdraw(mom, 1044)
    host = api.as_user("host", roles=("host",))
    for client in (mom, host):
        assert_error(client.get("/api/v1/admin/withdrawals"), 403, "role_required")
        assert_error(client.get(f"/api/v1/admin/withdrawals/{withdrawal_id}"), 403, "role_required")
        assert_error(client.post(f"/api/v1/admin/withdrawals/{withdrawal_id}/resolve"), 403, "role_required")
    assert_error(api.get("/api/v1/admin/withdrawals"), 401, "unauthenticated")
    assert payouts.withdrawal_detail(withdrawal_id=withdrawal_id)["withdrawal"].status == "unknown"
