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


def test_persist_is_idempotent_when_the_ack_was_lost(api, monkeypatch):
    product = make_product()
    code = api.as_user("sharer").post("/api/v1/share-links", json={"product_id": product.id}).get_json()["code"]
    api.as_user("buyer").post("/api/v1/clicks", json={"code": code})
    redis = get_redis()
    monkeypatch.setattr(redis, "xack", lambda *a, **k: 0)
    monkeypatch.setattr(redis, "xdel", lambda *a, **k: 0)
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
