from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.affiliate import clicks, service
from app.affiliate.models import Click, ShareLink
from app.core.db import db
from app.core.redis import get_redis, key
from app.delivery import tasks
from tests.affiliate_helpers import ingest, make_product
from tests.content_helpers import KP, approve_all, join, make_course, publish
from tests.helpers import assert_error

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai


def _group(host) -> int:
    response = host.post("/api/v1/groups", json={"name": "g", "channel": "sandbox", "age_band": "1-3y"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _delivered(host, frozen_clock, group_id: int, kind: str = "text", content: dict | None = None) -> int:
    """A post the host's bot has sent into the group (a sandbox group); returns its id."""
    frozen_clock(T0)
    response = host.post(
        "/api/v1/posts",
        json={
            "kind": kind,
            "content": content or {"text": "今晚讲刷牙"},
            "targets": {"group_ids": [group_id]},
            "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
        },
    )
    assert response.status_code == 201, response.get_json()
    frozen_clock(T0 + timedelta(minutes=5))
    tasks.tick()
    return response.get_json()["id"]


def _link_count() -> int:
    return db.session.scalar(select(func.count()).select_from(ShareLink))


def _click_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Click))


def test_share_link_has_code_path_card_and_code_image(api, frozen_clock):
    product = make_product(title="儿童电动牙刷", price_fen=5900, link_url="https://union.example/item/1")
    mom, host = api.as_user("mom"), api.as_user("host", roles=("host",))
    gid = _group(host)
    join(mom, host, gid)
    pid = _delivered(host, frozen_clock, gid)
    response = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid, "post_id": pid})
    assert response.status_code == 201
    body = response.get_json()
    assert len(body["code"]) == 8 and body["path"].endswith(f"?code={body['code']}&product_id={product.id}")
    assert body["card"] == {"title": "儿童电动牙刷", "image": product.images[0], "price_fen": 5900}
    assert body["code_image"].startswith("data:image/png;base64,")
    assert body["url"] == f"/s/{body['code']}" and (body["group_id"], body["post_id"]) == (gid, pid)
    again = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid, "post_id": pid}).get_json()
    assert again["code"] == body["code"]


def test_share_link_for_a_group_pays_its_host(api):
    host = api.as_user("host", roles=("host",))
    gid = _group(host)
    mom, buyer = api.as_user("mom"), api.as_user("buyer")
    join(mom, host, gid)
    product = make_product(price_fen=10000, commission_rate_bp=2000)
    code = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid}).get_json()["code"]
    ingest(external_id="G1", product=product, buyer_id=buyer.user["id"], tracking_code=code)
    assert host.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 100
    assert mom.get("/api/v1/me/earnings").get_json()["balances"]["pending"] == 500
    assert_error(
        mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": 987654}), 404, "group_not_found"
    )


def test_members_and_the_host_make_links_for_their_group(api):
    host = api.as_user("host", roles=("host",))
    gid = _group(host)
    mom = api.as_user("mom")
    join(mom, host, gid)
    product = make_product()
    for sharer in (mom, host):
        response = sharer.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid})
        assert response.status_code == 201, response.get_json()
        link = db.session.scalar(select(ShareLink).where(ShareLink.code == response.get_json()["code"]))
        assert (link.sharer_id, link.group_id, link.host_id) == (sharer.user["id"], gid, host.user["id"])
    # A host is no member of another host's group.
    other = _group(api.as_user("host2", roles=("host",)))
    assert_error(
        host.post("/api/v1/share-links", json={"product_id": product.id, "group_id": other}), 403, "not_a_member"
    )


def test_a_link_for_a_group_is_refused_to_outsiders_and_leavers_and_nothing_is_written(api):
    host = api.as_user("host", roles=("host",))
    gid = _group(host)
    outsider, leaver = api.as_user("outsider"), api.as_user("leaver")
    join(leaver, host, gid)
    assert leaver.post(f"/api/v1/groups/{gid}/leave").status_code == 204
    product = make_product()
    before = _link_count()
    for mom in (outsider, leaver):
        assert_error(
            mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": gid}), 403, "not_a_member"
        )
    assert_error(
        outsider.post("/api/v1/share-links", json={"product_id": product.id, "group_id": 987654}),
        404,
        "group_not_found",
    )
    # Who earns the host and content shares is never the client's to say.
    for field in ("host_id", "content_author_id", "sharer_id"):
        assert_error(
            outsider.post("/api/v1/share-links", json={"product_id": product.id, field: host.user["id"]}),
            422,
            "validation_error",
        )
    assert _link_count() == before


def test_a_post_must_be_one_the_group_got(api, frozen_clock):
    host = api.as_user("host", roles=("host",))
    here, there = _group(host), _group(host)
    mom = api.as_user("mom")
    join(mom, host, here)
    join(mom, host, there)
    pid = _delivered(host, frozen_clock, here)
    product = make_product()
    before = _link_count()
    refusals = [
        ({"group_id": there, "post_id": pid}, "post_not_in_group"),
        ({"group_id": here, "post_id": pid + 1000}, "post_not_in_group"),
        ({"post_id": pid}, "post_requires_group"),
    ]
    for body, code in refusals:
        assert_error(mom.post("/api/v1/share-links", json={"product_id": product.id, **body}), 422, code)
    assert _link_count() == before
    response = mom.post("/api/v1/share-links", json={"product_id": product.id, "group_id": here, "post_id": pid})
    assert response.status_code == 201 and response.get_json()["post_id"] == pid


def _content_id_of(code: str) -> int:
    return db.session.scalar(select(ShareLink.content_id).where(ShareLink.code == code))


def test_a_content_link_credits_the_contents_author_and_only_for_its_products(api):
    author, mom = api.as_user("author"), api.as_user("mom")
    product, unrelated = make_product(), make_product()
    post = publish(author, product_ids=[product.id])
    content_id = _content_id_of(post["products"][0]["share_code"])
    before = _link_count()
    assert_error(
        mom.post("/api/v1/share-links", json={"product_id": product.id, "content_id": content_id + 1000}),
        404,
        "content_not_found",
    )
    assert_error(
        mom.post("/api/v1/share-links", json={"product_id": unrelated.id, "content_id": content_id}),
        422,
        "product_not_in_content",
    )
    assert _link_count() == before
    response = mom.post("/api/v1/share-links", json={"product_id": product.id, "content_id": content_id})
    assert response.status_code == 201, response.get_json()
    link = db.session.scalar(select(ShareLink).where(ShareLink.code == response.get_json()["code"]))
    assert (link.sharer_id, link.content_id, link.content_author_id) == (mom.user["id"], content_id, author.user["id"])
    # A post taken down earns its author nothing more.
    operator = api.as_user("op", roles=("operator",))
    assert (
        operator.post(
            f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "take_down", "reason": "广告"}
        ).status_code
        == 200
    )
    assert_error(
        mom.post("/api/v1/share-links", json={"product_id": product.id, "content_id": content_id}),
        404,
        "content_not_found",
    )


def test_a_post_and_content_together_must_be_the_content_the_post_carried(api, frozen_clock):
    host = api.as_user("host", roles=("host",))
    partner, operator = api.as_user("partner", roles=("partner",)), api.as_user("op", roles=("operator",))
    gid = _group(host)
    mom = api.as_user("mom")
    join(mom, host, gid)
    toothbrush = make_product(title="儿童软毛牙刷")
    course, lessons, _ = make_course(partner, points=1)
    point = partner.post(
        f"/api/v1/partner/lessons/{lessons[0]['id']}/knowledge-points",
        json=KP | {"title": "选牙刷", "position": 2, "product_ids": [toothbrush.id]},
    ).get_json()
    approve_all(partner, operator, course["id"])
    carried = _delivered(host, frozen_clock, gid, kind="knowledge_point", content={"knowledge_point_id": point["id"]})
    plain = _delivered(host, frozen_clock, gid)
    bots = db.session.scalar(select(ShareLink).where(ShareLink.post_id == carried, ShareLink.group_id == gid))
    content_id = bots.content_id
    member_post = publish(api.as_user("author"), product_ids=[toothbrush.id])
    other_content = _content_id_of(member_post["products"][0]["share_code"])
    before = _link_count()
    for post_id, cid in ((plain, content_id), (carried, other_content)):
        assert_error(
            mom.post(
                "/api/v1/share-links",
                json={"product_id": toothbrush.id, "group_id": gid, "post_id": post_id, "content_id": cid},
            ),
            422,
            "content_not_in_post",
        )
    assert _link_count() == before
    response = mom.post(
        "/api/v1/share-links",
        json={"product_id": toothbrush.id, "group_id": gid, "post_id": carried, "content_id": content_id},
    )
    assert response.status_code == 201, response.get_json()
    link = db.session.scalar(select(ShareLink).where(ShareLink.code == response.get_json()["code"]))
    assert (link.sharer_id, link.host_id, link.content_author_id) == (
        mom.user["id"],
        host.user["id"],
        partner.user["id"],
    )


def test_share_link_refusals(api):
    mom = api.as_user("mom")
    assert_error(api.post("/api/v1/share-links", json={"product_id": 1}), 401, "unauthenticated")
    assert_error(mom.post("/api/v1/share-links", json={"product_id": 999999}), 404, "product_not_found")
    formula = make_product(is_breastmilk_substitute=True)
    assert_error(mom.post("/api/v1/share-links", json={"product_id": formula.id}), 422, "product_not_advertisable")
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
    shared = service.create_share_link(
        sharer_id=sharer.user["id"], product_id=product.id, group_id=3, host_id=host.user["id"], content_id=5
    )
    assert shared.link.host_id == host.user["id"] and shared.card.price_fen == product.price_fen
    assert shared.path.startswith("pages/product/index?code=")


def test_hostile_codes_are_plain_404s(api, client):
    assert_error(client.get("/s/ab%00cd"), 404, "share_link_not_found")
    assert_error(api.as_user("b").post("/api/v1/clicks", json={"code": "a\x00b"}), 422, "validation_error")
    assert_error(api.get("/api/v1/products", query_string={"q": "牙\x00刷"}), 422, "validation_error")


def test_a_persisted_click_copies_the_links_fields_and_time(api, frozen_clock):
    from datetime import datetime

    at = datetime(2026, 11, 3, 12, 30, 15, 123000, tzinfo=UTC)
    frozen_clock(at)
    product = make_product()
    sharer, host, author, buyer = (api.as_user(n) for n in ("sharer", "host", "author", "buyer"))
    shared = service.create_share_link(
        sharer_id=sharer.user["id"],
        product_id=product.id,
        group_id=3,
        post_id=4,
        content_id=5,
        host_id=host.user["id"],
        content_author_id=author.user["id"],
    )
    assert buyer.post("/api/v1/clicks", json={"code": shared.code}).get_json() == {"counted": True}
    assert service.persist_clicks() == 1
    row = db.session.scalar(select(Click))
    assert (row.share_link_id, row.code, row.sharer_id, row.product_id) == (
        shared.link.id,
        shared.code,
        sharer.user["id"],
        product.id,
    )
    assert (row.group_id, row.post_id, row.content_id, row.host_id, row.content_author_id) == (
        3,
        4,
        5,
        host.user["id"],
        author.user["id"],
    )
    assert (row.buyer_id, row.visitor, row.via, row.clicked_at) == (buyer.user["id"], None, "app", at)


def test_stream_entries_in_the_earlier_format_are_persisted(api):
    import json

    product = make_product()
    sharer = api.as_user("sharer")
    shared = service.create_share_link(sharer_id=sharer.user["id"], product_id=product.id)
    link = {
        "id": shared.link.id,
        "code": shared.code,
        "sharer_id": sharer.user["id"],
        "product_id": product.id,
        "group_id": None,
        "post_id": None,
        "content_id": None,
        "host_id": None,
        "content_author_id": None,
        "landing": "https://union.example/item/1",
    }
    get_redis().xadd(
        key(clicks.STREAM),
        {"l": json.dumps(link), "t": 1_800_000_000_000, "b": "", "v": "old-visitor", "w": "redirect"},
    )
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
