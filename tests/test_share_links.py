from sqlalchemy import func, select

from app.affiliate import clicks, service
from app.affiliate.models import Click
from app.core.db import db
from app.core.redis import get_redis, key
from tests.affiliate_helpers import ingest, make_product
from tests.helpers import assert_error


def _group(host) -> int:
    response = host.post("/api/v1/groups", json={"name": "g", "channel": "sandbox", "age_band": "1-3y"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _click_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Click))


def test_share_link_has_code_path_card_and_code_image(api):
    product = make_product(title="儿童电动牙刷", price_fen=5900, link_url="https://union.example/item/1")
    mom = api.as_user("mom")
    gid = _group(api.as_user("host", roles=("host",)))
    response = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid, "post_id": 8})
    assert response.status_code == 201
    body = response.get_json()
    assert len(body["code"]) == 8 and body["path"].endswith(f"?code={body['code']}&product_id={product.id}")
    assert body["card"] == {"title": "儿童电动牙刷", "image": product.images[0], "price_fen": 5900}
    assert body["code_image"].startswith("data:image/png;base64,")
    assert body["url"] == f"/s/{body['code']}" and body["group_id"] == gid
    again = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid, "post_id": 8}).get_json()
    assert again["code"] == body["code"]


def test_share_link_for_a_group_pays_its_host(api):
    host = api.as_user("host", roles=("host",))
    gid = _group(host)
    mom, buyer = api.as_user("mom"), api.as_user("buyer")
    product = make_product(price_fen=10000, commission_rate_bp=2000)
    code = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid}).get_json()["code"]
    ingest(external_id="G1", product=product, buyer_id=buyer.user["id"], tracking_code=code)
    assert host.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 100
    assert mom.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 500
    assert_error(mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": 987654}), 404,
                 "group_not_found")


def test_share_link_refusals(api):
    mom = api.as_user("mom")
    assert_error(api.post("/api/v1/share-links", json={"product_id": 1}), 401, "unauthenticated")
    assert_error(mom.post("/api/v1/share-links", json={"product_id": 999999}), 404, "product_not_found")
    formula = make_product(is_breastmilk_substitute=True)
    assert_error(mom.post("/api/v1/share-links", json={"product_id": formula.id}), 422, "product_not_shareable")
    inactive = make_product(is_active=False)
    assert_error(mom.post("/api/v1/share-links", json={"product_id": inactive.id}), 422, "product_inactive")
    assert_error(mom.post("/api/v1/share-links", json={"product_id": "x"}), 422, "validation_error")


def test_redirect_counts_once_a_minute_per_visitor_and_persists(api, client):
    product = make_product(link_url="https://union.example/item/9")
    sharer = api.as_user("sharer")
    code = sharer.post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    first = client.get(f"/s/{code}")
    assert first.status_code == 302 and first.headers["Location"] == "https://union.example/item/9"
    assert "mmq_vid=" in first.headers["Set-Cookie"]
    assert first.get_data() == b"" and first.headers["Content-Length"] == "0"  # no page nobody sees: one write
    assert client.get(f"/s/{code}").status_code == 302  # same browser (cookie kept): not counted again
    other = client.application.test_client()
    other.get(f"/s/{code}")
    buyer = api.as_user("buyer")
    assert buyer.post("/api/v1/clicks", json={"code": code}).get_json() == {"counted": True}
    assert buyer.post("/api/v1/clicks", json={"code": code}).get_json() == {"counted": False}
    assert 0 < get_redis().ttl(key("click-seen", code, f"u{buyer.user['id']}")) <= 60
    assert clicks.backlog() == 3 and _click_count() == 0
    assert service.persist_clicks() == 3
    assert clicks.backlog() == 0 and _click_count() == 3
    row = db.session.scalar(select(Click).where(Click.buyer_id == buyer.user["id"]))
    assert (row.sharer_id, row.product_id, row.via, row.code) == (sharer.user["id"], product.id, "app", code)
    assert service.persist_clicks() == 0 and _click_count() == 3


def test_unknown_code_and_cold_cache(api, client):
    assert_error(client.get("/s/nosuch"), 404, "share_link_not_found")
    assert_error(api.as_user("b").post("/api/v1/clicks", json={"code": "nosuch"}), 404, "share_link_not_found")
    product = make_product()
    code = api.as_user("sharer").post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    get_redis().delete(clicks.link_cache_key(code))
    response = client.get(f"/s/{code}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/api/v1/products/{product.id}")


def test_entries_left_by_a_crashed_consumer_are_reclaimed(api, monkeypatch):
    product = make_product()
    code = api.as_user("sharer").post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    api.as_user("buyer").post("/api/v1/clicks", json={"code": code})
    redis = get_redis()
    clicks._ensure_group(redis)
    taken = redis.xreadgroup(clicks.GROUP, "crashed-worker", {key(clicks.STREAM): ">"}, count=10)
    assert len(taken[0][1]) == 1  # read but never acknowledged: the worker died
    monkeypatch.setattr(clicks, "CLAIM_IDLE_MS", 0)
    assert service.persist_clicks() == 1 and _click_count() == 1


def test_persisting_trims_the_stream_but_keeps_what_a_crashed_consumer_still_holds(api, monkeypatch):
    product = make_product()
    code = api.as_user("sharer").post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    buyers = [api.as_user(f"buyer{n}") for n in range(4)]
    buyers[0].post("/api/v1/clicks", json={"code": code})
    redis = get_redis()
    clicks._ensure_group(redis)
    redis.xreadgroup(clicks.GROUP, "crashed-worker", {key(clicks.STREAM): ">"}, count=10)  # never acknowledged
    for buyer in buyers[1:]:
        buyer.post("/api/v1/clicks", json={"code": code})
    assert service.persist_clicks() == 3 and _click_count() == 3  # the crashed worker's entry is not idle yet
    assert redis.xpending(key(clicks.STREAM), clicks.GROUP)["pending"] == 1 and clicks.backlog() >= 1
    monkeypatch.setattr(clicks, "CLAIM_IDLE_MS", 0)
    assert service.persist_clicks() == 1 and _click_count() == 4
    assert clicks.backlog() == 0 and redis.xlen(key(clicks.STREAM)) == 0


def test_persist_is_idempotent_when_the_ack_was_lost(api, monkeypatch):
    product = make_product()
    code = api.as_user("sharer").post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    api.as_user("buyer").post("/api/v1/clicks", json={"code": code})
    monkeypatch.setattr(clicks, "_acknowledge", lambda *a, **k: None)
    assert service.persist_clicks() == 1
    monkeypatch.undo()
    monkeypatch.setattr(clicks, "CLAIM_IDLE_MS", 0)
    assert service.persist_clicks() == 1
    assert _click_count() == 1 and clicks.backlog() == 0


def test_service_for_cards_records_host_and_author(api):
    product = make_product()
    sharer, host = api.as_user("sharer"), api.as_user("host")
    shared = service.create_share_link(sharer_id=sharer.user["id"], product_id=product.id, group_id=3,
                                       host_id=host.user["id"], content_id=5)
    assert shared.link.host_id == host.user["id"] and shared.card.price_fen == product.price_fen
    assert shared.path.startswith("pages/product/index?code=")


def test_hostile_codes_are_plain_404s(api, client):
    assert_error(client.get("/s/ab%00cd"), 404, "share_link_not_found")
    assert_error(api.as_user("b").post("/api/v1/clicks", json={"code": "a\x00b"}), 422, "validation_error")
    assert_error(api.get("/api/v1/products", query_string={"q": "牙\x00刷"}), 422, "validation_error")


def test_a_persisted_click_copies_the_links_fields_and_time(api, frozen_clock):
    from datetime import datetime, timezone

    at = datetime(2026, 11, 3, 12, 30, 15, 123000, tzinfo=timezone.utc)
    frozen_clock(at)
    product = make_product()
    sharer, host, author, buyer = (api.as_user(n) for n in ("sharer", "host", "author", "buyer"))
    shared = service.create_share_link(sharer_id=sharer.user["id"], product_id=product.id, group_id=3, post_id=4,
                                       content_id=5, host_id=host.user["id"], content_author_id=author.user["id"])
    assert buyer.post("/api/v1/clicks", json={"code": shared.code}).get_json() == {"counted": True}
    assert service.persist_clicks() == 1
    row = db.session.scalar(select(Click))
    assert (row.share_link_id, row.code, row.sharer_id, row.product_id) == (shared.link.id, shared.code,
                                                                           sharer.user["id"], product.id)
    assert (row.group_id, row.post_id, row.content_id, row.host_id, row.content_author_id) == (
        3, 4, 5, host.user["id"], author.user["id"])
    assert (row.buyer_id, row.visitor, row.via, row.clicked_at) == (buyer.user["id"], None, "app", at)


def test_stream_entries_in_the_earlier_format_are_persisted(api):
    import json

    product = make_product()
    sharer = api.as_user("sharer")
    shared = service.create_share_link(sharer_id=sharer.user["id"], product_id=product.id)
    link = {"id": shared.link.id, "code": shared.code, "sharer_id": sharer.user["id"], "product_id": product.id,
            "group_id": None, "post_id": None, "content_id": None, "host_id": None, "content_author_id": None,
            "landing": "https://union.example/item/1"}
    get_redis().xadd(key(clicks.STREAM), {"l": json.dumps(link), "t": 1_800_000_000_000, "b": "", "v": "old-visitor",
                                          "w": "redirect"})
    assert service.persist_clicks() == 1
    row = db.session.scalar(select(Click))
    assert (row.share_link_id, row.visitor, row.buyer_id) == (shared.link.id, "old-visitor", None)
    assert row.clicked_at.timestamp() == 1_800_000_000


def test_persist_works_in_batches_and_leaves_late_clicks_to_the_next_run(api, monkeypatch):
    product = make_product()
    code = service.create_share_link(sharer_id=api.as_user("sharer").user["id"], product_id=product.id).code
    for i in range(5):
        service.record_click(code=code, buyer_id=None, visitor=f"visitor-{i}", via="redirect")
    staged, stage = [], clicks._stage

    def staging(rows):
        staged.append(len(rows))
        if len(rows) < 2:  # a click arriving while the last, short batch is written
            service.record_click(code=code, buyer_id=None, visitor="late", via="redirect")
        stage(rows)

    monkeypatch.setattr(clicks, "_stage", staging)
    assert clicks.persist(batch_size=2) == 5 and staged == [2, 2, 1]
    assert clicks.backlog() == 1 and _click_count() == 5
    assert clicks.persist(batch_size=2) == 1 and _click_count() == 6
