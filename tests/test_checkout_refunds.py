"""Refunds of own orders: held while WeChat processes them, applied once WeChat reports them done."""

from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from app.checkout import refunds
from app.checkout import sandbox as pay_sandbox
from app.checkout.models import CheckoutOrder, CheckoutRefund
from app.core.clock import now_utc
from app.core.db import db
from tests.coupon_factories import make_product
from tests.helpers import assert_error
from tests.test_checkout import finish_refund, pay, place, refund

REFUND_HOOK = "/api/v1/webhooks/wechatpay/refund"


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


@pytest.fixture
def paid(app, api, client):
    """A 200-yuan order paid through a sharer's link: its sharer earns 5% (1,000 fen) pending."""
    product = make_product(price_fen=10000)
    sharer = api.as_user("sharer")
    code = sharer.post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": product.id, "quantity": 2}], share_code=code).get_json()["order"]
    pay(app, client, order["out_trade_no"])
    return {"order": order, "sharer": sharer}


def detail(operator, order_id: int) -> dict:
    return operator.get(f"/api/v1/admin/checkout-orders/{order_id}").get_json()


def pending(sharer) -> int:
    return sharer.get("/api/v1/me/earnings").get_json()["balances"]["pending"]


def test_a_refund_wechat_closes_frees_its_amount_and_touches_no_commission(operator, paid, client):
    order = paid["order"]
    asked = refund(operator, order["id"], "closed", amount_fen=5000).get_json()
    assert finish_refund(client, asked["out_refund_no"], "REFUNDCLOSE").status_code == 200
    shown = detail(operator, order["id"])
    assert (shown["order"]["status"], shown["order"]["refunded_fen"], shown["order"]["refunding_fen"]) == ("paid", 0, 0)
    assert (shown["refunds"][0]["status"], shown["refunds"][0]["wechat_status"]) == ("failed", "REFUNDCLOSE")
    assert pending(paid["sharer"]) == 1000
    again = refund(operator, order["id"], "again").get_json()  # the whole order is refundable again
    assert (again["amount_fen"], again["seq"]) == (20000, 2)
    assert again["out_refund_no"] != asked["out_refund_no"]
    assert finish_refund(client, again["out_refund_no"]).status_code == 200
    assert detail(operator, order["id"])["order"]["status"] == "refunded"
    assert pending(paid["sharer"]) == 0


def test_a_refund_that_cannot_reach_the_buyer_fails(operator, paid, client):
    order = paid["order"]
    asked = refund(operator, order["id"], "change").get_json()
    finish_refund(client, asked["out_refund_no"], "CHANGE")
    shown = detail(operator, order["id"])
    assert (shown["order"]["status"], shown["order"]["refunding_fen"], shown["refunds"][0]["status"]) == (
        "paid",
        0,
        "failed",
    )


def test_refunds_under_way_never_add_up_past_what_was_paid(operator, paid, client):
    order = paid["order"]
    first = refund(operator, order["id"], "a", amount_fen=15000).get_json()
    assert_error(refund(operator, order["id"], "b", amount_fen=5001), 422, "refund_amount_invalid")
    second = refund(operator, order["id"], "c", amount_fen=5000).get_json()
    assert_error(refund(operator, order["id"], "d"), 409, "refund_in_progress")
    assert detail(operator, order["id"])["order"]["refunding_fen"] == 20000
    finish_refund(client, second["out_refund_no"])
    finish_refund(client, first["out_refund_no"])
    shown = detail(operator, order["id"])["order"]
    assert (shown["status"], shown["refunded_fen"], shown["refunding_fen"]) == ("refunded", 20000, 0)
    assert sum(line["refunded_fen"] for line in shown["lines"]) == 20000


def test_a_refund_notification_replayed_ten_times_refunds_once(operator, paid, client):
    order = paid["order"]
    asked = refund(operator, order["id"], "once", amount_fen=5000).get_json()
    settled = client.post("/wechat-sandbox/sandbox/pay/refund/settle", json={"out_refund_no": asked["out_refund_no"]})
    for _ in range(10):
        assert client.post(REFUND_HOOK, data=settled.get_data(), content_type="text/xml").status_code == 200
    shown = detail(operator, order["id"])["order"]
    assert (shown["refunded_fen"], shown["refunding_fen"]) == (5000, 0)
    assert pending(paid["sharer"]) == 750


def test_the_notification_only_names_the_refund_wechat_is_asked_how_it_ended(app, operator, paid, client):
    """Its payload is encrypted but not signed: while WeChat still says PROCESSING, nothing is refunded."""
    order = paid["order"]
    asked = refund(operator, order["id"], "early").get_json()
    with app.app_context():
        early = pay_sandbox.refund_notification(asked["out_refund_no"])
    assert client.post(REFUND_HOOK, data=early, content_type="text/xml").status_code == 200
    shown = detail(operator, order["id"])
    assert (shown["order"]["refunded_fen"], shown["refunds"][0]["status"]) == (0, "processing")
    assert pending(paid["sharer"]) == 1000


def test_forged_unknown_and_garbled_refund_notifications_are_refused(app, operator, paid, client):
    asked = refund(operator, paid["order"]["id"], "forged").get_json()
    with app.app_context():
        pay_sandbox.settle_refund(asked["out_refund_no"])
        forged = pay_sandbox.refund_notification(asked["out_refund_no"], api_key="not-our-key-at-all-32-characters")
        unknown = pay_sandbox.refund_notification("MMQ-NO-SUCH-REFUND")
    assert_error(client.post(REFUND_HOOK, data=forged, content_type="text/xml"), 400, "invalid_notification")
    assert_error(client.post(REFUND_HOOK, data=unknown, content_type="text/xml"), 404, "refund_not_found")
    for garbage in (b"", b"<xml>", b"<xml><return_code>SUCCESS</return_code></xml>", "<xml>\u00e9</xml>".encode()):
        response = client.post(REFUND_HOOK, data=garbage, content_type="text/xml")
        assert response.status_code == 400, (garbage, response.get_json())
    assert detail(operator, paid["order"]["id"])["refunds"][0]["status"] == "processing"


def test_a_lost_notification_is_made_up_by_the_query_job(app, operator, paid, frozen_clock):
    order = paid["order"]
    asked = refund(operator, order["id"], "lost", amount_fen=5000).get_json()
    with app.app_context():
        pay_sandbox.settle_refund(asked["out_refund_no"])  # WeChat finished it; its notification never arrived
    assert refunds.sync_processing_refunds() == {}  # too fresh: its notification may still come
    frozen_clock(now_utc() + timedelta(minutes=1))
    assert refunds.sync_processing_refunds() == {"succeeded": 1}
    assert refunds.sync_processing_refunds() == {}
    assert detail(operator, order["id"])["order"]["refunded_fen"] == 5000
    assert pending(paid["sharer"]) == 750


def test_the_query_job_leaves_processing_refunds_and_survives_wechat_outages(
    app, operator, paid, frozen_clock, monkeypatch
):
    order = paid["order"]
    refund(operator, order["id"], "slow", amount_fen=5000)
    frozen_clock(now_utc() + timedelta(minutes=1))
    assert refunds.sync_processing_refunds() == {"processing": 1}

    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("WeChat is down")

    monkeypatch.setattr(requests.Session, "request", unreachable)
    assert refunds.sync_processing_refunds() == {"error": 1}
    assert detail(operator, order["id"])["order"]["refunding_fen"] == 5000


def test_operators_ask_wechat_now(app, operator, paid):
    order = paid["order"]
    asked = refund(operator, order["id"], "now").get_json()
    path = f"/api/v1/admin/checkout-refunds/{asked['id']}/sync"
    assert operator.post(path).get_json()["status"] == "processing"
    with app.app_context():
        pay_sandbox.settle_refund(asked["out_refund_no"])
    synced = operator.post(path).get_json()
    assert (synced["status"], synced["wechat_status"]) == ("succeeded", "SUCCESS")
    assert operator.post(path).get_json() == synced
    assert_error(operator.post("/api/v1/admin/checkout-refunds/999999/sync"), 404, "refund_not_found")
    assert detail(operator, order["id"])["order"]["status"] == "refunded"


def test_moms_cannot_sync_refunds(api, operator, paid):
    asked = refund(operator, paid["order"]["id"], "mom").get_json()
    assert_error(api.as_user("mom2").post(f"/api/v1/admin/checkout-refunds/{asked['id']}/sync"), 403, "role_required")


def test_the_sandbox_finishes_refunds_on_its_own_when_told_to(app, operator, paid, frozen_clock, monkeypatch):
    monkeypatch.setitem(app.extensions["wechat_sandbox"].config, "WECHAT_SANDBOX_REFUND_SECONDS", 10)
    order = paid["order"]
    refund(operator, order["id"], "dev")
    frozen_clock(now_utc() + timedelta(seconds=31))
    assert refunds.sync_processing_refunds() == {"succeeded": 1}
    assert detail(operator, order["id"])["order"]["status"] == "refunded"


def test_a_refund_wechat_refuses_writes_nothing(operator, paid, monkeypatch):
    order = paid["order"]

    def refused(*args, **kwargs):
        raise requests.ConnectionError("WeChat is down")

    monkeypatch.setattr(requests.Session, "request", refused)
    assert_error(refund(operator, order["id"], "down"), 502, "wechat_unreachable")
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CheckoutRefund)) == 0
    assert db.session.get(CheckoutOrder, order["id"]).refunding_fen == 0
