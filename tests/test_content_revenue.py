"""Content revenue share end to end: a post's card → click → order → content share in the ledger, with the why."""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from app.affiliate import service as affiliate
from app.core.money import share_of
from app.delivery import tasks
from tests.affiliate_helpers import ingest, make_product
from tests.content_helpers import approve_all, join, make_group, publish
from tests.helpers import assert_error

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_member_post_click_order_credits_author_content_share(api, frozen_clock):
    """A mom taps a post's card and buys: her own code (自用省钱, level-1 to her), the content share to the author."""
    frozen_clock(T0)
    author = api.as_user("author")
    buyer = api.as_user("buyer")
    product = make_product(title="儿童牙刷", price_fen=9999, commission_rate_bp=2000)
    post = publish(author, text="我家宝宝很喜欢", product_ids=[product.id])
    authors_code = post["products"][0]["share_code"]
    assert (
        authors_code
        and api.get("/api/v1/member-posts").get_json()["items"][0]["products"][0]["share_code"] == authors_code
    )

    own_code = buyer.post(f"/api/v1/member-posts/{post['id']}/share").get_json()["items"][0]["share_code"]
    assert buyer.post("/api/v1/clicks", json={"code": own_code}).get_json()["counted"] is True
    affiliate.persist_clicks()
    order = ingest(external_id="UGC-1", product=product, buyer_id=buyer.user["id"])

    content_fen = share_of(9999, 100)  # the default content share, 1%, floored
    assert author.get("/api/v1/me/earnings").get_json()["by_share"]["content"] == content_fen == 99
    assert buyer.get("/api/v1/me/earnings").get_json()["by_share"]["level1"] == share_of(9999, 500)
    entries = author.get("/api/v1/me/earnings/entries").get_json()["items"]
    assert [e["share"] for e in entries] == ["content"]
    why = entries[0]["why"]
    assert entries[0]["amount_fen"] == content_fen and why["order"]["id"] == order.order_id
    assert why["attribution"]["rule"] == "click" and why["attribution"]["content_id"] is not None
    assert why["line"]["product_title"] == "儿童牙刷" and why["attribution"]["rate_bp"] == 100
    assert why["attribution"]["share_fen"] == content_fen and why["attribution"]["base_fen"] == 9999

    dashboard = author.get("/api/v1/me/content/dashboard").get_json()["items"]
    assert dashboard == [
        {
            "id": post["id"],
            "title": "我家宝宝很喜欢",
            "status": "published",
            "reach": 0,
            "views": 0,
            "clicks": 1,
            "orders": 1,
            "gmv_fen": 9999,
            "earnings_fen": content_fen,
        }
    ]

    # Through the author's own card she is the sharer: level-1 is hers and nobody is paid twice on a line.
    other = api.as_user("other")
    other.post("/api/v1/clicks", json={"code": authors_code})
    affiliate.persist_clicks()
    ingest(external_id="UGC-2", product=product, buyer_id=other.user["id"])
    assert author.get("/api/v1/me/earnings").get_json()["by_share"] == {
        "level1": share_of(9999, 500),
        "level2": 0,
        "host": 0,
        "content": content_fen,
        "adjustment": 0,
    }


def test_a_member_resharing_earns_commission_and_the_author_keeps_content_share(api, frozen_clock):
    frozen_clock(T0)
    author, sharer, buyer = api.as_user("author"), api.as_user("sharer"), api.as_user("buyer")
    product = make_product(price_fen=20000, commission_rate_bp=1500)
    post = publish(author, product_ids=[product.id])
    mine = sharer.post(f"/api/v1/member-posts/{post['id']}/share").get_json()["items"]
    assert mine[0]["product_id"] == product.id and mine[0]["share_code"] != post["products"][0]["share_code"]
    buyer.post("/api/v1/clicks", json={"code": mine[0]["share_code"]})
    affiliate.persist_clicks()
    ingest(external_id="UGC-2", product=product, buyer_id=buyer.user["id"])
    assert sharer.get("/api/v1/me/earnings").get_json()["by_share"] == {
        "level1": 1000,
        "level2": 0,
        "host": 0,
        "content": 0,
        "adjustment": 0,
    }
    assert author.get("/api/v1/me/earnings").get_json()["by_share"]["content"] == 200
    assert_error(sharer.post("/api/v1/member-posts/999999/share"), 404, "post_not_found")
    draft = author.post("/api/v1/member-posts", json={"text": "草稿", "product_ids": [product.id]}).get_json()
    assert draft["products"][0]["share_code"] is None
    assert_error(sharer.post(f"/api/v1/member-posts/{draft['id']}/share"), 404, "post_not_found")


def test_knowledge_point_card_credits_the_partner_and_fills_the_dashboard(api, frozen_clock):
    frozen_clock(T0)
    partner = api.as_user("partner1", roles=("partner",))
    operator = api.as_user("op", roles=("operator",))
    host = api.as_user("host1", roles=("host",))
    buyer = api.as_user("buyer")
    product = make_product(price_fen=10000, commission_rate_bp=1500)
    course = partner.post("/api/v1/partner/courses", json={"title": "刷牙课", "topic": "刷牙"}).get_json()
    lesson = partner.post(f"/api/v1/partner/courses/{course['id']}/lessons", json={"title": "一"}).get_json()
    point = partner.post(
        f"/api/v1/partner/lessons/{lesson['id']}/knowledge-points",
        json={
            "title": "选牙刷",
            "body": "<p>软毛</p>",
            "min_age_months": 12,
            "max_age_months": 36,
            "product_ids": [product.id],
        },
    ).get_json()
    approve_all(partner, operator, course["id"])
    group = make_group(host)
    for name in ("m1", "m2", "m3"):
        join(api.as_user(name), host, group["id"])
    host.post(
        "/api/v1/posts",
        json={
            "kind": "knowledge_point",
            "content": {"course_id": course["id"]},
            "targets": {"group_ids": [group["id"]]},
            "schedule": {"kind": "daily", "time": "08:00"},
        },
    ).get_json()
    frozen_clock(datetime(2026, 11, 23, 0, 5, tzinfo=UTC))
    tasks.tick()
    message = host.get(f"/api/v1/groups/{group['id']}/sandbox-messages").get_json()["items"][0]["payload"]
    assert message["template_card"]["main_title"]["title"] == "选牙刷"
    code = parse_qs(urlsplit(message["template_card"]["card_action"]["pagepath"]).query)["code"][0]
    assert api.get(f"/api/v1/knowledge-points/{point['id']}").get_json()["title"] == "选牙刷"
    buyer.post("/api/v1/clicks", json={"code": code})
    affiliate.persist_clicks()
    ingest(external_id="PGC-1", product=product, buyer_id=buyer.user["id"])
    assert partner.get("/api/v1/me/earnings").get_json()["by_share"]["content"] == 100
    assert host.get("/api/v1/me/earnings").get_json()["by_share"]["level1"] == 500  # the host shares the card
    rows = partner.get("/api/v1/partner/dashboard").get_json()["items"]
    assert rows == [
        {
            "id": point["id"],
            "title": "选牙刷",
            "status": "approved",
            "deliveries": 1,
            "reach": 3,
            "views": 1,
            "clicks": 1,
            "orders": 1,
            "gmv_fen": 10000,
            "earnings_fen": 100,
        }
    ]
    assert_error(api.as_user("mom").get("/api/v1/partner/dashboard"), 403, "role_required")
    partner.patch(f"/api/v1/partner/knowledge-points/{point['id']}", json={"title": "新版"})
    assert_error(api.get(f"/api/v1/knowledge-points/{point['id']}"), 409, "content_not_approved")
