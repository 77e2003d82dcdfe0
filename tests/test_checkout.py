"""Own checkout through the API: pricing with coupons, WeChat Pay prepay, notifications, expiry, refunds."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import count

import pytest
from sqlalchemy import func, select

from app.checkout import flows, service
from app.checkout import sandbox as pay_sandbox
from app.checkout.models import CheckoutOrder, CheckoutPayment, CheckoutRefund
from app.core.clock import now_utc
from app.core.db import db
from app.coupons.models import UserCoupon
from tests.coupon_factories import claim, create_template, make_category, make_product
from tests.helpers import ApiClient, assert_error

_keys = count(1)


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


@pytest.fixture
def shop():
    toys = make_category("玩具")
    return {
        "toy": make_product(price_fen=8000, category=toys, title="积木"),
        "book": make_product(price_fen=3000, title="绘本"),
        "union": make_product(price_fen=5000, source="union"),
    }


def place(user, lines, key=None, **body):
    return user.post(
        "/api/v1/orders", json={"lines": lines, **body}, headers={"Idempotency-Key": key or f"order-{next(_keys)}"}
    )


def notify(client, xml: str):
    return client.post("/api/v1/webhooks/wechatpay", data=xml, content_type="text/xml")


def pay(app, client, out_trade_no: str):
    with app.app_context():
        pay_sandbox.mark_paid(out_trade_no)
        xml = pay_sandbox.payment_notification(out_trade_no)
    return notify(client, xml), xml


def finish_refund(client, out_refund_no: str, status: str = "SUCCESS"):
    """WeChat finishes a refund and notifies us (the sandbox answers the notification it would send)."""
    settled = client.post(
        "/wechat-sandbox/sandbox/pay/refund/settle", json={"out_refund_no": out_refund_no, "status": status}
    )
    assert settled.status_code == 200
    assert settled.headers["X-Notify-Url"].endswith("/api/v1/webhooks/wechatpay/refund")
    return client.post("/api/v1/webhooks/wechatpay/refund", data=settled.get_data(), content_type="text/xml")


def refund(operator, order_id: int, key: str, **body):
    return operator.post(
        f"/api/v1/admin/checkout-orders/{order_id}/refunds", json=body, headers={"Idempotency-Key": key}
    )


def refunded(operator, client, order_id: int, key: str, **body) -> dict:
    """Ask for a refund and have WeChat finish it; the refund as the order's detail shows it then."""
    asked = refund(operator, order_id, key, **body)
    assert asked.status_code == 201, asked.get_json()
    assert finish_refund(client, asked.get_json()["out_refund_no"]).status_code == 200
    detail = operator.get(f"/api/v1/admin/checkout-orders/{order_id}").get_json()
    return next(r for r in detail["refunds"] if r["id"] == asked.get_json()["id"])


def coupon_status(coupon_id: int) -> str:
    db.session.expire_all()
    return db.session.get(UserCoupon, coupon_id).status


def test_place_order_returns_pay_parameters(api, shop):
    mom = api.as_user("mom")
    response = place(
        mom, [{"product_id": shop["toy"].id, "quantity": 2}, {"product_id": shop["book"].id, "quantity": 1}]
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    order = body["order"]
    assert (order["status"], order["subtotal_fen"], order["discount_fen"], order["payable_fen"]) == (
        "pending_payment",
        19000,
        0,
        19000,
    )
    assert [(line["title"], line["quantity"], line["paid_fen"]) for line in order["lines"]] == [
        ("积木", 2, 16000),
        ("绘本", 1, 3000),
    ]
    params = body["pay_params"]
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"].startswith("prepay_id=wx")
    from datetime import datetime

    assert datetime.fromisoformat(order["expires_at"]) - datetime.fromisoformat(order["created_at"]) == timedelta(
        minutes=15
    )
    again = mom.get(f"/api/v1/orders/{order['id']}").get_json()
    assert again["pay_params"]["package"] == params["package"]
    assert_error(api.as_user("other").get(f"/api/v1/orders/{order['id']}"), 404, "order_not_found")


def test_only_own_active_products_and_clean_lines(api, shop):
    mom = api.as_user("mom")
    assert_error(place(mom, [{"product_id": shop["union"].id, "quantity": 1}]), 422, "product_not_purchasable")
    assert_error(place(mom, [{"product_id": 999999, "quantity": 1}]), 422, "unknown_products")
    assert_error(place(mom, [{"product_id": shop["toy"].id, "quantity": 1}] * 2), 422, "duplicate_order_lines")
    assert_error(place(mom, []), 422, "validation_error")
    assert_error(place(mom, [{"product_id": shop["toy"].id, "quantity": 0}]), 422, "validation_error")
    assert db.session.scalar(select(func.count()).select_from(CheckoutOrder)) == 0


def test_coupon_prices_the_order_and_is_held(api, operator, shop):
    template = create_template(operator, kind="threshold", threshold_fen=10000, amount_off_fen=2000)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    too_small = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"])
    assert_error(too_small, 409, "coupon_not_applicable")
    assert coupon_status(coupon["id"]) == "available"
    response = place(
        mom,
        [{"product_id": shop["toy"].id, "quantity": 1}, {"product_id": shop["book"].id, "quantity": 1}],
        coupon_id=coupon["id"],
    )
    order = response.get_json()["order"]
    assert (order["subtotal_fen"], order["discount_fen"], order["payable_fen"]) == (11000, 2000, 9000)
    assert [line["discount_fen"] for line in order["lines"]] == [1455, 545]
    assert coupon_status(coupon["id"]) == "reserved"
    listed = mom.get("/api/v1/me/coupons").get_json()["items"]
    assert [(c["status"], c["reserved_order_id"]) for c in listed] == [("reserved", order["id"])]
    second = place(mom, [{"product_id": shop["toy"].id, "quantity": 2}], coupon_id=coupon["id"])
    assert_error(second, 409, "coupon_unavailable")
    assert_error(
        place(api.as_user("thief"), [{"product_id": shop["toy"].id, "quantity": 2}], coupon_id=coupon["id"]),
        404,
        "coupon_not_found",
    )


def test_scoped_coupon_discounts_only_its_lines(api, operator, shop):
    template = create_template(
        operator, kind="percent", percent_off_bp=5000, cap_fen=100000, scope="products", product_ids=[shop["book"].id]
    )
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(
        mom,
        [{"product_id": shop["toy"].id, "quantity": 1}, {"product_id": shop["book"].id, "quantity": 2}],
        coupon_id=coupon["id"],
    ).get_json()["order"]
    assert (order["discount_fen"], order["payable_fen"]) == (3000, 11000)
    assert [line["discount_fen"] for line in order["lines"]] == [0, 3000]


def test_a_coupon_bigger_than_the_order_leaves_one_fen(api, operator):
    cheap = make_product(price_fen=300)
    template = create_template(operator, amount_off_fen=500)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": cheap.id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    assert (order["discount_fen"], order["payable_fen"]) == (299, 1)


def test_wechat_refusing_the_prepay_writes_nothing(app, api, operator, shop, monkeypatch):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    from app.wechat.clients import clients

    monkeypatch.setattr(clients().pay, "api_key", "a-wrong-key")
    response = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"])
    assert_error(response, 502, "wechat_error")
    assert db.session.scalar(select(func.count()).select_from(CheckoutOrder)) == 0
    assert coupon_status(coupon["id"]) == "available"


def test_notification_replayed_ten_times_pays_once(app, api, operator, shop, client):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    first, xml = pay(app, client, order["out_trade_no"])
    assert first.status_code == 200 and b"SUCCESS" in first.data and first.mimetype == "text/xml"
    for _ in range(9):
        again = notify(client, xml)
        assert again.status_code == 200 and b"SUCCESS" in again.data
    assert db.session.scalar(select(func.count()).select_from(CheckoutPayment)) == 1
    paid = mom.get(f"/api/v1/orders/{order['id']}").get_json()
    assert paid["order"]["status"] == "paid" and paid["pay_params"] is None
    assert coupon_status(coupon["id"]) == "used"
    assert [c["id"] for c in mom.get("/api/v1/me/coupons?status=used").get_json()["items"]] == [coupon["id"]]


@pytest.mark.commits
def test_concurrent_replays_make_one_payment(app, api, shop):
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}]).get_json()["order"]
    with app.app_context():
        pay_sandbox.mark_paid(order["out_trade_no"])
        xml = pay_sandbox.payment_notification(order["out_trade_no"])
    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(lambda _: notify(app.test_client(), xml).status_code, range(10)))
    assert statuses == [200] * 10
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CheckoutPayment)) == 1
    assert db.session.get(CheckoutOrder, order["id"]).status == "paid"


def test_wrong_amounts_forgeries_and_garbage_are_refused(app, api, shop, client):
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}]).get_json()["order"]
    with app.app_context():
        pay_sandbox.mark_paid(order["out_trade_no"])
        wrong_amount = pay_sandbox.payment_notification(order["out_trade_no"], total_fee=1)
        forged = pay_sandbox.payment_notification(order["out_trade_no"], api_key="someone-elses-key")
        unknown = pay_sandbox.payment_notification("MMQ-NOT-OURS", total_fee=100)
    assert_error(notify(client, wrong_amount), 409, "payment_amount_mismatch")
    assert_error(notify(client, forged), 400, "invalid_signature")
    assert_error(notify(client, "<xml><a>1</a>"), 400, "invalid_signature")
    assert_error(notify(client, "not xml at all"), 400, "invalid_signature")
    assert_error(notify(client, unknown), 404, "order_not_found")
    assert db.session.scalar(select(func.count()).select_from(CheckoutPayment)) == 0
    assert mom.get(f"/api/v1/orders/{order['id']}").get_json()["order"]["status"] == "pending_payment"
    assert pay(app, client, order["out_trade_no"])[0].status_code == 200


def test_unpaid_orders_expire_and_release_the_coupon(app, api, operator, shop, client, frozen_clock):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    frozen_clock(now_utc() + timedelta(minutes=14))
    assert flows.expire_unpaid_orders() == {"expired": 0, "paid": 0, "skipped": 0}
    frozen_clock(now_utc() + timedelta(minutes=2))
    assert flows.expire_unpaid_orders() == {"expired": 1, "paid": 0, "skipped": 0}
    assert flows.expire_unpaid_orders() == {"expired": 0, "paid": 0, "skipped": 0}
    assert mom.get(f"/api/v1/orders/{order['id']}").get_json()["order"]["status"] == "expired"
    assert coupon_status(coupon["id"]) == "available"
    # The WeChat order is closed: the buyer can no longer pay it.
    simulated = client.post("/wechat-sandbox/sandbox/pay/simulate", json={"out_trade_no": order["out_trade_no"]})
    assert simulated.status_code == 409
    # The released coupon works on a new order.
    again = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"])
    assert again.status_code == 201


def test_expiry_finds_a_payment_whose_notification_was_lost(app, api, operator, shop, frozen_clock):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    pay_sandbox.mark_paid(order["out_trade_no"])
    frozen_clock(now_utc() + timedelta(minutes=16))
    assert flows.expire_unpaid_orders() == {"expired": 0, "paid": 1, "skipped": 0}
    assert mom.get(f"/api/v1/orders/{order['id']}").get_json()["order"]["status"] == "paid"
    assert coupon_status(coupon["id"]) == "used"


def test_refunds_partial_then_full_bring_the_coupon_back(app, api, operator, shop, client):
    template = create_template(operator, valid_days=30)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(
        mom,
        [{"product_id": shop["toy"].id, "quantity": 1}, {"product_id": shop["book"].id, "quantity": 1}],
        coupon_id=coupon["id"],
    ).get_json()["order"]
    assert order["payable_fen"] == 10500
    path = f"/api/v1/admin/checkout-orders/{order['id']}"
    assert_error(refund(operator, order["id"], "r0"), 409, "order_not_refundable")
    pay(app, client, order["out_trade_no"])
    assert_error(refund(operator, order["id"], "r1", amount_fen=10501), 422, "refund_amount_invalid")
    partial = refund(operator, order["id"], "r2", amount_fen=3000, reason="少发一本")
    assert partial.status_code == 201, partial.get_json()
    asked = partial.get_json()
    assert (asked["status"], asked["settled_at"], asked["coupon_restored"]) == ("processing", None, False)
    assert asked["wechat_refund_id"]
    assert refund(operator, order["id"], "r2", amount_fen=3000, reason="少发一本").get_json() == asked
    detail = operator.get(path).get_json()
    # WeChat accepted the refund but has not finished it: the amount is held, nothing is refunded yet.
    assert (detail["order"]["status"], detail["order"]["refunded_fen"], detail["order"]["refunding_fen"]) == (
        "paid",
        0,
        3000,
    )
    assert sum(line["refunded_fen"] for line in detail["order"]["lines"]) == 0
    assert finish_refund(client, asked["out_refund_no"]).status_code == 200
    detail = operator.get(path).get_json()
    assert (detail["order"]["status"], detail["order"]["refunded_fen"], detail["order"]["refunding_fen"]) == (
        "partially_refunded",
        3000,
        0,
    )
    assert (detail["refunds"][0]["status"], detail["refunds"][0]["wechat_status"]) == ("succeeded", "SUCCESS")
    assert detail["refunds"][0]["settled_at"]
    assert sum(line["refunded_fen"] for line in detail["order"]["lines"]) == 3000
    assert coupon_status(coupon["id"]) == "used"
    rest = refund(operator, order["id"], "r3").get_json()
    assert (rest["amount_fen"], rest["coupon_restored"]) == (7500, False)
    assert_error(refund(operator, order["id"], "r3b"), 409, "refund_in_progress")
    assert coupon_status(coupon["id"]) == "used"
    assert finish_refund(client, rest["out_refund_no"]).status_code == 200
    detail = operator.get(path).get_json()
    assert (detail["order"]["status"], detail["order"]["refunded_fen"]) == ("refunded", 10500)
    assert detail["refunds"][1]["coupon_restored"] is True
    assert all(line["refunded_fen"] == line["paid_fen"] for line in detail["order"]["lines"])
    assert coupon_status(coupon["id"]) == "available"
    assert_error(refund(operator, order["id"], "r4"), 409, "order_not_refundable")
    assert db.session.scalar(select(func.count()).select_from(CheckoutRefund)) == 2


def test_a_full_refund_after_the_coupon_expired_does_not_bring_it_back(app, api, operator, shop, client, frozen_clock):
    template = create_template(operator, valid_days=1)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    pay(app, client, order["out_trade_no"])
    frozen_clock(now_utc() + timedelta(days=2))
    assert refunded(operator, client, order["id"], "late")["coupon_restored"] is False
    assert coupon_status(coupon["id"]) == "used"


def test_moms_cannot_refund(api, shop):
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}]).get_json()["order"]
    assert_error(
        mom.post(f"/api/v1/admin/checkout-orders/{order['id']}/refunds", json={}, headers={"Idempotency-Key": "x"}),
        403,
        "role_required",
    )


@pytest.mark.commits
def test_one_coupon_cannot_be_redeemed_twice_at_once(app, api, operator, shop):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    toy_id = shop["toy"].id

    def attempt(i: int):
        return place(
            ApiClient(app.test_client(), mom.token),
            [{"product_id": toy_id, "quantity": 1}],
            key=f"race-{i}",
            coupon_id=coupon["id"],
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(attempt, range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 5, [r.get_json() for r in responses]
    assert {r.get_json()["code"] for r in responses if r.status_code == 409} == {"coupon_unavailable"}
    db.session.expire_all()
    assert (
        db.session.scalar(
            select(func.count()).select_from(CheckoutOrder).where(CheckoutOrder.coupon_id == coupon["id"])
        )
        == 1
    )


def test_paid_own_orders_enter_the_affiliate_pipeline(app, api, operator, client):
    """End to end: share link → order with its code → payment → attribution and pending commission → refund."""
    product = make_product(price_fen=10000)
    sharer = api.as_user("sharer")
    link = sharer.post("/api/v1/share-links", json={"product_id": product.id})
    assert link.status_code == 201, link.get_json()
    code = link.get_json()["code"]
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": product.id, "quantity": 2}], share_code=code).get_json()["order"]
    assert (
        operator.get(f"/api/v1/admin/orders?source=own&external_id={order['out_trade_no']}").get_json()["items"] == []
    )
    response, xml = pay(app, client, order["out_trade_no"])
    assert response.status_code == 200
    notify(client, xml)  # a retried notice changes nothing downstream either
    found = operator.get(f"/api/v1/admin/orders?source=own&external_id={order['out_trade_no']}").get_json()["items"]
    assert len(found) == 1
    detail = operator.get(f"/api/v1/admin/orders/{found[0]['id']}").get_json()
    assert (detail["order"]["paid_fen"], detail["order"]["buyer_id"], detail["order"]["tracking_code"]) == (
        20000,
        mom.user["id"],
        code,
    )
    assert [a["rule"] for a in detail["attributions"]] == ["tracking_code"]
    pending = sharer.get("/api/v1/me/earnings").get_json()
    assert pending["balances"]["pending"] == 1000  # level-1: 5% of the 200 yuan paid
    asked = refund(operator, order["id"], "e2e-1", amount_fen=5000)
    assert asked.status_code == 201
    assert sharer.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 1000  # not refunded yet
    finish_refund(client, asked.get_json()["out_refund_no"])
    assert sharer.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 750
    refunded(operator, client, order["id"], "e2e-2")
    assert sharer.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 0
    detail = operator.get(f"/api/v1/admin/orders/{found[0]['id']}").get_json()
    assert (detail["order"]["status"], detail["order"]["refunded_fen"]) == ("refunded", 20000)
    assert flows.resend_to_affiliate() == 0


def test_the_sweeper_resends_what_the_pipeline_missed(app, api, operator, client, monkeypatch):
    product = make_product(price_fen=10000)
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": product.id, "quantity": 1}]).get_json()["order"]
    monkeypatch.setattr(service, "queue_for_affiliate", lambda order_id: None)  # the queue lost the job
    pay(app, client, order["out_trade_no"])
    search = f"/api/v1/admin/orders?source=own&external_id={order['out_trade_no']}"
    assert operator.get(search).get_json()["items"] == []
    assert flows.resend_to_affiliate() == 1
    assert len(operator.get(search).get_json()["items"]) == 1
    assert flows.resend_to_affiliate() == 0
    assert flows.push_to_affiliate(order_id=order["id"]) == "up_to_date"


def test_a_failed_checkout_right_after_a_flash_claim_can_be_retried_with_its_key(app, api, operator, shop, monkeypatch):
    """Landing the fresh claim commits on its own; the checkout's Idempotency-Key must not commit with it."""
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()  # answered by the gate; its row lands during the checkout
    from app.wechat.clients import clients

    lines = [{"product_id": shop["toy"].id, "quantity": 1}]
    with monkeypatch.context() as patched:
        patched.setattr(clients().pay, "api_key", "a-wrong-key")
        assert_error(place(mom, lines, key="pay-now", coupon_id=coupon["id"]), 502, "wechat_error")
    retried = place(mom, lines, key="pay-now", coupon_id=coupon["id"])
    assert retried.status_code == 201, retried.get_json()
    assert coupon_status(coupon["id"]) == "reserved"


def test_own_orders_complete_so_their_commission_settles(app, api, operator, client, frozen_clock):
    """Union orders complete when the merchant says so; ours complete CHECKOUT_COMPLETE_DAYS after payment."""
    from app.orders import tasks as order_tasks

    product = make_product(price_fen=10000)
    sharer = api.as_user("sharer")
    code = sharer.post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    mom = api.as_user("mom")
    kept = place(mom, [{"product_id": product.id, "quantity": 2}], share_code=code).get_json()["order"]
    returned = place(mom, [{"product_id": product.id, "quantity": 1}], share_code=code).get_json()["order"]
    pay(app, client, kept["out_trade_no"])
    pay(app, client, returned["out_trade_no"])
    refunded(operator, client, kept["id"], "part", amount_fen=5000)
    refunded(operator, client, returned["id"], "all")
    paid_at = now_utc()
    frozen_clock(paid_at + timedelta(days=9))
    assert flows.complete_paid_orders() == 0
    frozen_clock(paid_at + timedelta(days=10, minutes=1))
    assert flows.complete_paid_orders() == 1  # the fully refunded order has nothing left to complete
    assert flows.complete_paid_orders() == 0
    search = operator.get(f"/api/v1/admin/orders?source=own&external_id={kept['out_trade_no']}").get_json()["items"]
    assert search[0]["status"] == "completed"
    frozen_clock(paid_at + timedelta(days=17, minutes=2))
    order_tasks.settle()
    assert sharer.get("/api/v1/me/earnings").get_json()["balances"] == {
        "pending": 0,
        "available": 750,
        "withdrawing": 0,
        "withdrawn": 0,
    }  # 5% of the 150 yuan kept


def test_buyers_cancel_unpaid_orders_and_get_their_coupon_back(app, api, operator, shop, client):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    assert coupon_status(coupon["id"]) == "reserved"
    cancelled = mom.post(f"/api/v1/orders/{order['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.get_json()
    assert (cancelled.get_json()["order"]["status"], cancelled.get_json()["pay_params"]) == ("cancelled", None)
    assert coupon_status(coupon["id"]) == "available"
    # Twice is harmless; the WeChat order is closed, so it can no longer be paid.
    assert mom.post(f"/api/v1/orders/{order['id']}/cancel").get_json()["order"]["status"] == "cancelled"
    simulated = client.post("/wechat-sandbox/sandbox/pay/simulate", json={"out_trade_no": order["out_trade_no"]})
    assert simulated.status_code == 409
    assert place(mom, [{"product_id": shop["book"].id, "quantity": 1}], coupon_id=coupon["id"]).status_code == 201
    # The expiry job leaves a cancelled order alone.
    assert flows.expire_unpaid_orders() == {"expired": 0, "paid": 0, "skipped": 0}


def test_only_unpaid_own_orders_can_be_cancelled(app, api, operator, shop, client):
    mom, dad = api.as_user("mom"), api.as_user("dad")
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}]).get_json()["order"]
    assert_error(dad.post(f"/api/v1/orders/{order['id']}/cancel"), 404, "order_not_found")
    assert_error(mom.post("/api/v1/orders/99999999/cancel"), 404, "order_not_found")
    assert pay(app, client, order["out_trade_no"])[0].status_code == 200
    assert_error(mom.post(f"/api/v1/orders/{order['id']}/cancel"), 409, "order_already_paid")
    assert mom.get(f"/api/v1/orders/{order['id']}").get_json()["order"]["status"] == "paid"


def test_cancelling_an_order_paid_meanwhile_records_the_payment(app, api, operator, shop):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}], coupon_id=coupon["id"]).get_json()["order"]
    pay_sandbox.mark_paid(order["out_trade_no"])  # paid at WeChat; its notification has not come yet
    assert_error(mom.post(f"/api/v1/orders/{order['id']}/cancel"), 409, "order_already_paid")
    assert mom.get(f"/api/v1/orders/{order['id']}").get_json()["order"]["status"] == "paid"
    assert coupon_status(coupon["id"]) == "used"
    assert db.session.scalar(select(func.count()).select_from(CheckoutPayment)) == 1


def test_cancel_waits_for_wechat_when_it_cannot_answer(app, api, shop, monkeypatch):
    mom = api.as_user("mom")
    order = place(mom, [{"product_id": shop["toy"].id, "quantity": 1}]).get_json()["order"]

    def unreachable(*args, **kwargs):
        raise ConnectionError("WeChat Pay is unreachable")

    from app.wechat.clients import clients

    with app.app_context():
        monkeypatch.setattr(type(clients().pay.order), "query", unreachable)
        assert_error(mom.post(f"/api/v1/orders/{order['id']}/cancel"), 502, "wechat_pay_unavailable")
    monkeypatch.undo()
    assert mom.get(f"/api/v1/orders/{order['id']}").get_json()["order"]["status"] == "pending_payment"


def test_my_orders_newest_first_by_status_a_page_at_a_time(app, api, shop, client):
    mom, dad = api.as_user("mom"), api.as_user("dad")
    placed = [
        place(
            mom, [{"product_id": shop["toy"].id, "quantity": n}, {"product_id": shop["book"].id, "quantity": 1}]
        ).get_json()["order"]
        for n in (1, 2, 3)
    ]
    place(dad, [{"product_id": shop["toy"].id, "quantity": 1}])
    assert pay(app, client, placed[0]["out_trade_no"])[0].status_code == 200
    first = mom.get("/api/v1/me/orders", query_string={"limit": 2}).get_json()
    assert [o["id"] for o in first["items"]] == [placed[2]["id"], placed[1]["id"]]
    assert [line["quantity"] for line in first["items"][0]["lines"]] == [3, 1]
    rest = mom.get("/api/v1/me/orders", query_string={"limit": 2, "cursor": first["next_cursor"]}).get_json()
    assert ([o["id"] for o in rest["items"]], rest["next_cursor"]) == ([placed[0]["id"]], None)
    paid = mom.get("/api/v1/me/orders", query_string={"status": "paid"}).get_json()["items"]
    assert [(o["id"], o["status"]) for o in paid] == [(placed[0]["id"], "paid")]
    assert_error(mom.get("/api/v1/me/orders", query_string={"status": "lost"}), 422, "validation_error")
    assert_error(mom.get("/api/v1/me/orders", query_string={"cursor": "garbage"}), 422, "invalid_cursor")
    assert api.get("/api/v1/me/orders").status_code == 401
