from datetime import UTC, datetime, timedelta

from app.affiliate import rules
from app.affiliate.commission import reversed_share, split
from app.catalog import service as catalog
from tests.affiliate_helpers import make_product
from tests.helpers import assert_error

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_split_floors_each_share_and_platform_keeps_remainder():
    s = split(paid_fen=9999, seller_bp=1500, level1_bp=500, level2_bp=100, host_bp=100, content_bp=100)
    assert (s.seller_fen, s.level1_fen, s.level2_fen, s.host_fen, s.content_fen) == (1499, 499, 99, 99, 99)
    assert s.platform_fen == 1499 - 796


def test_split_scales_down_to_seller_commission():
    s = split(paid_fen=10000, seller_bp=300, level1_bp=500, level2_bp=100, host_bp=100, content_bp=100)
    assert (s.level1_fen, s.level2_fen, s.host_fen, s.content_fen) == (187, 37, 37, 37)
    assert s.platform_fen == 2 and s.platform_fen >= 0
    zero = split(paid_fen=10000, seller_bp=0, level1_bp=500, level2_bp=100, host_bp=100, content_bp=100)
    assert zero.level1_fen == 0 and zero.platform_fen == 0


def test_reversed_share_is_pro_rata_and_full_on_full_refund():
    assert reversed_share(share_fen=499, paid_fen=9999, refunded_fen=3333) == 166
    assert reversed_share(share_fen=499, paid_fen=9999, refunded_fen=9999) == 499
    assert reversed_share(share_fen=499, paid_fen=9999, refunded_fen=0) == 0


def test_rule_precedence_and_windows(api, frozen_clock):
    frozen_clock(T0)
    category = catalog.create_category(name="洗护", parent_id=None)
    product = make_product(category_id=category.id)
    other = make_product(category_id=category.id)
    operator = api.as_user("op", roles=("operator",))
    base = {"level2_bp": 0, "host_bp": 0, "content_bp": 0}

    def post(**body):
        response = operator.post("/api/v1/admin/commission-rules", json=base | body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    category_rule = post(kind="category", category_id=category.id, level1_bp=600)
    product_rule = post(kind="product", product_id=product.id, level1_bp=700)
    campaign = post(
        kind="campaign",
        name="双11",
        level1_bp=900,
        starts_at=(T0 + timedelta(days=1)).isoformat(),
        ends_at=(T0 + timedelta(days=2)).isoformat(),
    )
    assert rules.rates_for(product_id=product.id, category_id=category.id).rule_id == product_rule
    assert rules.rates_for(product_id=other.id, category_id=category.id).rule_id == category_rule
    assert rules.rates_for(product_id=other.id, category_id=None).rule_id is None
    inside = T0 + timedelta(days=1)
    assert rules.rates_for(product_id=product.id, category_id=category.id, at=inside).level1_bp == 900
    end = T0 + timedelta(days=2)
    assert rules.rates_for(product_id=product.id, category_id=category.id, at=end).rule_id == product_rule
    assert campaign
    listed = operator.get("/api/v1/admin/commission-rules", query_string={"at": inside.isoformat()}).get_json()
    assert {r["id"] for r in listed["items"]} == {category_rule, product_rule, campaign}
    frozen_clock(T0 + timedelta(seconds=1))
    ended = operator.post(f"/api/v1/admin/commission-rules/{product_rule}/end", json={})
    assert ended.status_code == 200
    assert rules.rates_for(product_id=product.id, category_id=category.id).rule_id == category_rule


def test_rule_validation(api):
    operator = api.as_user("op", roles=("operator",))
    body = {"kind": "product", "level1_bp": 1, "level2_bp": 1, "host_bp": 1, "content_bp": 1}
    assert_error(operator.post("/api/v1/admin/commission-rules", json=body), 422, "rule_target_invalid")
    assert_error(
        operator.post("/api/v1/admin/commission-rules", json=body | {"product_id": 123456}), 422, "unknown_products"
    )
    assert_error(
        operator.post("/api/v1/admin/commission-rules", json=body | {"level1_bp": 10001}), 422, "validation_error"
    )
    assert_error(
        operator.post(
            "/api/v1/admin/commission-rules",
            json={**body, "kind": "campaign", "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"},
        ),
        422,
        "rule_window_invalid",
    )
    assert_error(api.as_user("mom").get("/api/v1/admin/commission-rules"), 403, "role_required")
    assert_error(operator.post("/api/v1/admin/commission-rules/99999/end", json={}), 404, "rule_not_found")
    assert_error(
        operator.post("/api/v1/admin/commission-rules", json={**body, "kind": "campaign", "name": "\ud800"}),
        422,
        "validation_error",
    )  # a lone surrogate no database encodes
    # Times so far out that turning them into UTC overflows are refused, not a 500.
    for far in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"):
        assert_error(
            operator.post("/api/v1/admin/commission-rules", json={**body, "kind": "campaign", "starts_at": far}),
            422,
            "validation_error",
        )
        assert_error(operator.get("/api/v1/admin/commission-rules", query_string={"at": far}), 422, "validation_error")


def test_level2_switch(api):
    operator = api.as_user("op", roles=("operator",))
    assert operator.get("/api/v1/admin/settings").get_json() == {"level2_enabled": True}
    assert operator.patch("/api/v1/admin/settings", json={"level2_enabled": False}).get_json() == {
        "level2_enabled": False
    }
    assert rules.level2_enabled() is False
    assert_error(
        api.as_user("mom").patch("/api/v1/admin/settings", json={"level2_enabled": True}), 403, "role_required"
    )


def test_category_rules_reach_sub_categories_and_the_nearest_wins(api, frozen_clock):
    frozen_clock(T0)
    top = catalog.create_category(name="童装", parent_id=None)
    shoes = catalog.create_category(name="童鞋", parent_id=top.id)
    first_steps = catalog.create_category(name="学步鞋", parent_id=shoes.id)
    toddler_shoe = make_product(category_id=first_steps.id)
    coat = make_product(category_id=top.id)
    operator = api.as_user("op", roles=("operator",))
    base = {"level2_bp": 0, "host_bp": 0, "content_bp": 0}

    def post(**body):
        response = operator.post("/api/v1/admin/commission-rules", json=base | body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def rule_of(product, category):
        return rules.rates_for(product_id=product.id, category_id=category.id).rule_id

    on_top = post(kind="category", category_id=top.id, level1_bp=600)
    assert rule_of(toddler_shoe, first_steps) == on_top  # two levels down
    frozen_clock(T0 + timedelta(seconds=1))
    on_shoes = post(kind="category", category_id=shoes.id, level1_bp=650)
    frozen_clock(T0 + timedelta(seconds=2))
    newer_on_top = post(kind="category", category_id=top.id, level1_bp=800)
    assert rule_of(toddler_shoe, first_steps) == on_shoes  # the nearest category wins over a newer rule further up
    assert rule_of(coat, top) == newer_on_top
    frozen_clock(T0 + timedelta(seconds=3))
    campaign = post(kind="campaign", category_id=top.id, level1_bp=900)
    assert rule_of(toddler_shoe, first_steps) == campaign  # a campaign on a category reaches its sub-categories too
    assert rules.rates_for(product_id=make_product().id, category_id=None).rule_id is None
