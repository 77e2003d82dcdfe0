from datetime import UTC, datetime, timedelta

import pytest

from app.affiliate import service as affiliate
from app.ledger import service as ledger
from tests.affiliate_helpers import attribution_of, ingest, make_product, user_id

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def people(api):
    """grandma invited sharer; sharer invited buyer; host and author are unrelated."""
    grandma, grandma_code = user_id(api, "grandma")
    sharer, sharer_code = user_id(api, "sharer", invite_code=grandma_code)
    buyer, _ = user_id(api, "buyer", invite_code=sharer_code)
    host, _ = user_id(api, "host")
    author, _ = user_id(api, "author")
    other, _ = user_id(api, "other")
    return {"grandma": grandma, "sharer": sharer, "buyer": buyer, "host": host, "author": author, "other": other}


def _click(code: str, buyer: int, at: datetime) -> None:
    from app.core import clock

    clock.freeze(at)
    affiliate.record_click(code=code, buyer_id=buyer, visitor=None, via="app")
    affiliate.persist_clicks()


def test_every_share_with_rounding(people, frozen_clock):
    frozen_clock(T0)
    product = make_product(price_fen=9999, commission_rate_bp=1500)
    link = affiliate.create_share_link(
        sharer_id=people["sharer"],
        product_id=product.id,
        group_id=1,
        post_id=2,
        content_id=3,
        host_id=people["host"],
        content_author_id=people["author"],
    )
    result = ingest(external_id="o1", product=product, buyer_id=people["buyer"], tracking_code=link.code)
    a = attribution_of(result.order_id)
    assert a["rule"] == "tracking_code" and (a["group_id"], a["post_id"], a["content_id"]) == (1, 2, 3)
    assert (a["level1_id"], a["level2_id"], a["host_id"], a["content_author_id"]) == (
        people["sharer"],
        people["grandma"],
        people["host"],
        people["author"],
    )
    assert (a["seller_fen"], a["level1_fen"], a["level2_fen"], a["host_fen"], a["content_fen"], a["platform_fen"]) == (
        1499,
        499,
        99,
        99,
        99,
        703,
    )
    assert ledger.balances(owner_id=people["sharer"])["pending"] == 499
    assert ledger.balances(owner_id=people["grandma"])["pending"] == 99
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_cap_scales_shares_down(people):
    product = make_product(price_fen=10000, commission_rate_bp=300)
    link = affiliate.create_share_link(
        sharer_id=people["sharer"], product_id=product.id, host_id=people["host"], content_author_id=people["author"]
    )
    a = attribution_of(
        ingest(external_id="o1", product=product, buyer_id=people["other"], tracking_code=link.code).order_id
    )
    assert (a["level1_fen"], a["level2_fen"], a["host_fen"], a["content_fen"], a["platform_fen"]) == (
        187,
        37,
        37,
        37,
        2,
    )


def test_priority_tracking_code_then_click_then_referrer(people, frozen_clock):
    product = make_product()
    by_sharer = affiliate.create_share_link(sharer_id=people["sharer"], product_id=product.id)
    by_other = affiliate.create_share_link(sharer_id=people["other"], product_id=product.id, group_id=9)
    _click(by_other.code, people["buyer"], T0)
    frozen_clock(T0 + timedelta(hours=1))
    first = attribution_of(
        ingest(external_id="a", product=product, buyer_id=people["buyer"], tracking_code=by_sharer.code).order_id
    )
    assert (first["rule"], first["level1_id"], first["click_id"]) == ("tracking_code", people["sharer"], None)
    second = attribution_of(ingest(external_id="b", product=product, buyer_id=people["buyer"]).order_id)
    assert (second["rule"], second["level1_id"], second["group_id"]) == ("click", people["other"], 9)
    assert second["click_id"] is not None
    unknown_code = attribution_of(
        ingest(external_id="c", product=product, buyer_id=people["buyer"], tracking_code="zzzz").order_id
    )
    assert unknown_code["rule"] == "click"
    frozen_clock(T0 + timedelta(days=8))
    third = attribution_of(ingest(external_id="d", product=product, buyer_id=people["buyer"]).order_id)
    assert (third["rule"], third["level1_id"], third["level2_id"]) == ("referrer", people["sharer"], people["grandma"])
    nobody = attribution_of(ingest(external_id="e", product=product, buyer_id=people["grandma"]).order_id)
    assert nobody["rule"] == "none" and nobody["platform_fen"] == nobody["seller_fen"]


def test_window_edges(people, frozen_clock):
    product = make_product()
    link = affiliate.create_share_link(sharer_id=people["other"], product_id=product.id)
    _click(link.code, people["buyer"], T0)
    frozen_clock(T0 + timedelta(days=7))
    assert (
        attribution_of(ingest(external_id="edge", product=product, buyer_id=people["buyer"]).order_id)["rule"]
        == "click"
    )
    frozen_clock(T0 + timedelta(days=7, microseconds=1))
    assert (
        attribution_of(ingest(external_id="past", product=product, buyer_id=people["buyer"]).order_id)["rule"]
        == "referrer"
    )
    frozen_clock(T0 - timedelta(seconds=1))  # an order paid before the click is not caused by it
    assert (
        attribution_of(ingest(external_id="before", product=product, buyer_id=people["buyer"]).order_id)["rule"]
        == "referrer"
    )


def test_self_purchase_earns_level1_only_and_nobody_twice(people):
    product = make_product(price_fen=10000, commission_rate_bp=1500)
    own = affiliate.create_share_link(
        sharer_id=people["buyer"], product_id=product.id, host_id=people["buyer"], content_author_id=people["author"]
    )
    a = attribution_of(
        ingest(external_id="self", product=product, buyer_id=people["buyer"], tracking_code=own.code).order_id
    )
    # buyer's inviter (sharer) is level-2 of the buyer's own link
    assert (a["level1_id"], a["host_id"], a["content_author_id"], a["level2_id"]) == (
        people["buyer"],
        None,
        people["author"],
        people["sharer"],
    )
    assert a["level1_fen"] == 500 and a["host_fen"] == 0
    twice = affiliate.create_share_link(
        sharer_id=people["host"], product_id=product.id, host_id=people["host"], content_author_id=people["host"]
    )
    b = attribution_of(
        ingest(external_id="twice", product=product, buyer_id=people["other"], tracking_code=twice.code).order_id
    )
    assert (b["level1_id"], b["host_id"], b["content_author_id"]) == (people["host"], None, None)
    assert b["platform_fen"] == 1500 - 500
    ring = affiliate.create_share_link(sharer_id=people["sharer"], product_id=product.id)
    c = attribution_of(
        ingest(external_id="ring", product=product, buyer_id=people["grandma"], tracking_code=ring.code).order_id
    )
    assert (c["level1_id"], c["level2_id"]) == (people["sharer"], None)  # grandma never earns level-2 on her own buy


def test_level2_switch_off_keeps_share_for_platform(people, api):
    operator = api.as_user("op", roles=("operator",))
    operator.patch("/api/v1/admin/settings", json={"level2_enabled": False})
    product = make_product(price_fen=10000, commission_rate_bp=1500)
    link = affiliate.create_share_link(sharer_id=people["sharer"], product_id=product.id)
    a = attribution_of(
        ingest(external_id="x", product=product, buyer_id=people["other"], tracking_code=link.code).order_id
    )
    assert (a["level2_id"], a["level2_fen"], a["level2_enabled"], a["platform_fen"]) == (None, 0, False, 1000)
    assert ledger.balances(owner_id=people["grandma"])["pending"] == 0


def test_rates_are_copied_so_later_rule_edits_change_nothing(people, api):
    operator = api.as_user("op", roles=("operator",))
    product = make_product(price_fen=10000, commission_rate_bp=2000)
    operator.post(
        "/api/v1/admin/commission-rules",
        json={
            "kind": "product",
            "product_id": product.id,
            "level1_bp": 800,
            "level2_bp": 0,
            "host_bp": 0,
            "content_bp": 0,
        },
    )
    link = affiliate.create_share_link(sharer_id=people["sharer"], product_id=product.id)
    order = ingest(external_id="x", product=product, buyer_id=people["other"], tracking_code=link.code)
    operator.post(
        "/api/v1/admin/commission-rules",
        json={"kind": "campaign", "level1_bp": 1500, "level2_bp": 0, "host_bp": 0, "content_bp": 0},
    )
    a = attribution_of(order.order_id)
    assert (a["level1_bp"], a["level1_fen"], a["commission_rule_id"] is not None) == (800, 800, True)
