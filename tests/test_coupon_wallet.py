"""My coupons, the best coupon for a product, the expiry job and the coupon centre."""

from datetime import timedelta

import pytest

from app.core.clock import now_utc
from app.core.db import use_case
from app.coupons import wallet
from tests.coupon_factories import claim, create_template, iso, make_category, make_product
from tests.helpers import assert_error


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


def test_my_coupons_by_status(api, operator, frozen_clock):
    short = create_template(operator, name="短期", valid_days=1)
    long = create_template(operator, name="长期", valid_days=30)
    mom = api.as_user("mom")
    short_coupon = claim(mom, short["id"]).get_json()
    long_coupon = claim(mom, long["id"]).get_json()
    available = mom.get("/api/v1/me/coupons").get_json()["items"]
    assert [c["id"] for c in available] == [long_coupon["id"], short_coupon["id"]]
    assert mom.get("/api/v1/me/coupons?status=used").get_json()["items"] == []
    frozen_clock(now_utc() + timedelta(days=2))
    # Past validity reads as expired at once, before the job marks it.
    assert [c["id"] for c in mom.get("/api/v1/me/coupons?status=expired").get_json()["items"]] == [short_coupon["id"]]
    assert [c["id"] for c in mom.get("/api/v1/me/coupons").get_json()["items"]] == [long_coupon["id"]]
    assert wallet.expire_coupons() == 1
    assert wallet.expire_coupons() == 0
    expired = mom.get("/api/v1/me/coupons?status=expired").get_json()["items"]
    assert [(c["id"], c["status"]) for c in expired] == [(short_coupon["id"], "expired")]
    assert api.as_user("other").get("/api/v1/me/coupons").get_json()["items"] == []
    assert_error(mom.get("/api/v1/me/coupons?status=lost"), 422, "validation_error")


def test_my_coupons_paginate(api, operator):
    mom = api.as_user("mom")
    for _ in range(3):
        assert claim(mom, create_template(operator)["id"]).status_code == 201
    first = mom.get("/api/v1/me/coupons?limit=2").get_json()
    second = mom.get(f"/api/v1/me/coupons?limit=2&cursor={first['next_cursor']}").get_json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None


def test_best_coupon_for_a_product(api, operator):
    toys = make_category("玩具")
    books = make_category("绘本")
    toy = make_product(price_fen=20000, category=toys)
    book = make_product(price_fen=3000, category=books)
    mom = api.as_user("mom")
    fixed = create_template(operator, amount_off_fen=1000)  # 10 off anything
    threshold = create_template(operator, kind="threshold", threshold_fen=15000, amount_off_fen=3000)
    percent = create_template(
        operator, kind="percent", percent_off_bp=2000, cap_fen=2500, scope="categories", category_ids=[books.id]
    )  # 20% off books, cap 25
    for template in (fixed, threshold, percent):
        assert claim(mom, template["id"]).status_code == 201
    best_toy = mom.get(f"/api/v1/me/coupons/best?product_id={toy.id}").get_json()
    assert (best_toy["coupon"]["template_id"], best_toy["discount_fen"], best_toy["payable_fen"]) == (
        threshold["id"],
        3000,
        17000,
    )
    best_book = mom.get(f"/api/v1/me/coupons/best?product_id={book.id}").get_json()
    assert (best_book["coupon"]["template_id"], best_book["discount_fen"]) == (fixed["id"], 1000)
    # Four books: 120 yuan misses the 150 threshold; 20% is 24, beating the 10 off.
    best_books = mom.get(f"/api/v1/me/coupons/best?product_id={book.id}&quantity=4").get_json()
    assert (best_books["coupon"]["template_id"], best_books["discount_fen"], best_books["subtotal_fen"]) == (
        percent["id"],
        2400,
        12000,
    )
    # Five books reach the threshold: 30 off beats 20% capped at 25.
    best_five = mom.get(f"/api/v1/me/coupons/best?product_id={book.id}&quantity=5").get_json()
    assert (best_five["coupon"]["template_id"], best_five["discount_fen"]) == (threshold["id"], 3000)
    nobody = api.as_user("nobody").get(f"/api/v1/me/coupons/best?product_id={toy.id}").get_json()
    assert nobody == {"coupon": None, "subtotal_fen": 20000, "discount_fen": 0, "payable_fen": 20000}
    assert_error(mom.get("/api/v1/me/coupons/best?product_id=999999"), 404, "product_not_found")


def test_coupon_centre_and_detail(api, operator):
    live = create_template(operator, name="领券中心")
    create_template(operator, activate=False, name="草稿")
    mom = api.as_user("mom")
    items = mom.get("/api/v1/coupons").get_json()["items"]
    assert [(i["id"], i["state"], i["stock_left"]) for i in items] == [(live["id"], "claimable", 10)]
    claim(mom, live["id"])
    detail = mom.get(f"/api/v1/coupons/{live['id']}").get_json()
    assert detail["stock_left"] == 9 and detail["headline"] == "立减5.00元"


def test_window_validity_coupons_start_and_stop_with_the_window(api, operator, frozen_clock):
    now = now_utc()
    template = create_template(
        operator,
        validity_kind="window",
        valid_from=iso(now + timedelta(days=1)),
        valid_until=iso(now + timedelta(days=3)),
    )
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    assert coupon["valid_from"].startswith(iso(now + timedelta(days=1))[:16])
    product = make_product(price_fen=5000)
    assert mom.get(f"/api/v1/me/coupons/best?product_id={product.id}").get_json()["coupon"] is None
    frozen_clock(now + timedelta(days=2))
    assert mom.get(f"/api/v1/me/coupons/best?product_id={product.id}").get_json()["coupon"]["id"] == coupon["id"]


def test_demo_coupons_are_live_and_seeding_twice_adds_nothing(api):
    from app.coupons import demo

    for _ in range(2):
        with use_case():
            demo.seed()
    items = api.as_user("mom").get("/api/v1/coupons").get_json()["items"]
    assert sorted(i["name"] for i in items) == sorted(spec["name"] for spec in demo.DEMO)
    assert {i["state"] for i in items} == {"claimable"}


def test_best_coupon_only_for_products_our_checkout_sells(api, operator):
    """Coupons are spent in the own checkout: a union product or one off sale gets no coupon offered."""
    union = make_product(price_fen=20000, source="union")
    off_sale = make_product(price_fen=20000, active=False)
    mom = api.as_user("mom")
    assert claim(mom, create_template(operator, amount_off_fen=1000)["id"]).status_code == 201
    best = mom.get(f"/api/v1/me/coupons/best?product_id={union.id}").get_json()
    assert best == {"coupon": None, "subtotal_fen": 20000, "discount_fen": 0, "payable_fen": 20000}
    assert_error(mom.get(f"/api/v1/me/coupons/best?product_id={off_sale.id}"), 404, "product_not_found")


def test_percent_headlines_never_overstate_the_discount(api, operator):
    """12.5% off is 8.75折, not 8.7折; 0.01% off is 9.999折, not 9.9折; 99.99% off is 0.001折, not 0折."""
    mom = api.as_user("mom")
    for bp, fold in ((1250, "8.75折"), (1, "9.999折"), (9999, "0.001折"), (2000, "8折"), (1500, "8.5折")):
        template = create_template(operator, kind="percent", percent_off_bp=bp, cap_fen=1000)
        assert mom.get(f"/api/v1/coupons/{template['id']}").get_json()["headline"] == f"{fold} 最高减10.00元"
