from datetime import UTC, datetime, timedelta

from app.affiliate import service as affiliate
from app.orders import tasks as order_tasks
from tests.affiliate_helpers import ingest, make_product, user_id
from tests.helpers import assert_error

T0 = datetime(2026, 9, 1, tzinfo=UTC)


def test_earnings_totals_and_entries_with_why_trace(api, frozen_clock):
    frozen_clock(T0)
    _grandma_id, code = user_id(api, "grandma")
    sharer = api.as_user("sharer", invite_code=code)
    buyer_id, _ = user_id(api, "buyer")
    product = make_product(title="儿童电动牙刷", price_fen=10000, commission_rate_bp=2000)
    link = affiliate.create_share_link(
        sharer_id=sharer.user["id"], product_id=product.id, group_id=11, post_id=12, content_id=13
    )
    affiliate.record_click(code=link.code, buyer_id=buyer_id, visitor=None, via="app")
    affiliate.persist_clicks()
    order = ingest(external_id="E1", product=product, buyer_id=buyer_id, status="completed")
    frozen_clock(T0 + timedelta(days=8))
    order_tasks.settle()
    ingest(external_id="E1", product=product, buyer_id=buyer_id, status="refunded", version=2, refunded_fen=2000)

    body = sharer.get("/api/v1/me/earnings").get_json()
    assert body["balances"] == {"pending": 0, "available": 400, "withdrawing": 0, "withdrawn": 0}
    assert body["by_share"] == {"level1": 400, "level2": 0, "host": 0, "content": 0, "adjustment": 0}
    grandma_body = api.as_user("grandma").get("/api/v1/me/earnings").get_json()
    assert grandma_body["by_share"]["level2"] == 80

    page = sharer.get("/api/v1/me/earnings/entries", query_string={"limit": 2}).get_json()
    assert [e["why"]["journal_kind"] for e in page["items"]] == ["clawback", "settlement"]
    clawback = page["items"][0]
    assert (clawback["amount_fen"], clawback["account"], clawback["share"]) == (-100, "available", "level1")
    why = clawback["why"]
    assert why["order"]["external_id"] == "E1" and why["order"]["id"] == order.order_id
    assert why["line"]["product_title"] == "儿童电动牙刷" and why["line"]["refunded_fen"] == 2000
    assert why["attribution"]["rule"] == "click" and why["attribution"]["click_id"] is not None
    assert (why["attribution"]["group_id"], why["attribution"]["post_id"], why["attribution"]["content_id"]) == (
        11,
        12,
        13,
    )
    assert (why["attribution"]["rate_bp"], why["attribution"]["share_fen"], why["attribution"]["base_fen"]) == (
        500,
        500,
        10000,
    )
    rest = sharer.get("/api/v1/me/earnings/entries", query_string={"cursor": page["next_cursor"]}).get_json()
    assert [e["why"]["journal_kind"] for e in rest["items"]] == ["settlement", "order_paid"] and rest[
        "next_cursor"
    ] is None
    assert_error(api.get("/api/v1/me/earnings"), 401, "unauthenticated")


def test_operator_order_search_and_detail(api, frozen_clock):
    frozen_clock(T0)
    operator = api.as_user("op", roles=("operator",))
    sharer_id, _ = user_id(api, "sharer")
    buyer_id, _ = user_id(api, "buyer")
    product = make_product(price_fen=10000, commission_rate_bp=1500)
    link = affiliate.create_share_link(sharer_id=sharer_id, product_id=product.id)
    first = ingest(external_id="A1", product=product, buyer_id=buyer_id, tracking_code=link.code)
    ingest(external_id="A1", product=product, buyer_id=buyer_id, status="refunded", version=2, refunded_fen=5000)
    ingest(external_id="A2", product=product, buyer_id=sharer_id)
    found = operator.get("/api/v1/admin/orders", query_string={"external_id": "A1"}).get_json()
    assert [o["id"] for o in found["items"]] == [first.order_id] and found["items"][0]["status"] == "refunded"
    assert len(operator.get("/api/v1/admin/orders", query_string={"buyer_id": buyer_id}).get_json()["items"]) == 1
    detail = operator.get(f"/api/v1/admin/orders/{first.order_id}").get_json()
    assert [e["version"] for e in detail["events"]] == [1, 2]
    assert detail["attributions"][0]["level1_id"] == sharer_id and detail["attributions"][0]["rule"] == "tracking_code"
    assert [j["kind"] for j in detail["journals"]] == ["order_paid", "refund"]
    assert all(sum(line["amount_fen"] for line in j["lines"]) == 0 for j in detail["journals"])
    assert_error(operator.get("/api/v1/admin/orders/999999"), 404, "order_not_found")
    assert_error(api.as_user("mom").get("/api/v1/admin/orders"), 403, "role_required")
