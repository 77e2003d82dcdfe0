"""Member posts through the API: sanitising, WeChat content safety, licence, reports and auto-hide, feeds."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.content.models import AGE_BAND_MONTHS, MemberPost
from app.core.db import db
from app.groups.models import AGE_BANDS
from app.wechat.clients import clients
from tests.affiliate_helpers import make_product
from tests.content_helpers import join, make_group, publish
from tests.helpers import assert_error

XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "<body onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>',
    "<embed src=javascript:alert(1)>",
    '<form action="javascript:alert(1)"><input type=submit></form>',
    "<details open ontoggle=alert(1)>",
    '<p onmouseover="alert(1)">hover</p>',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '"><script>alert(1)</script>',
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<style>@import 'javascript:alert(1)';</style>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<base href=javascript:alert(1)//>",
    "<video><source onerror=alert(1)></video>",
    "<marquee onstart=alert(1)>",
    "<!--<img src=--><img src=x onerror=alert(1)//>",
]
DANGEROUS = (
    "<script",
    "onerror",
    "onload",
    "javascript:",
    "<iframe",
    "<svg",
    "<style",
    "<object",
    "<embed",
    "<form",
    "ontoggle",
    "onmouseover",
    "<meta",
    "<base",
    "onstart",
    "<img",
    "style=",
    "<math",
    "<a ",
)


@pytest.fixture
def mom(api):
    return api.as_user("mom1")


def test_age_bands_cover_the_groups_bands():
    assert set(AGE_BAND_MONTHS) == set(AGE_BANDS)


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_post_text_is_sanitised_against_xss(mom, vector):
    post = mom.post("/api/v1/member-posts", json={"text": f"推荐{vector}好用"}).get_json()
    for bad in DANGEROUS:
        assert bad not in post["text"].lower(), (vector, post["text"])
    assert post["text"].startswith("推荐")


def test_safety_check_flags_risky_words_with_87014(mom, app):
    risky = app.config["CONTENT_RISKY_WORDS"][0]
    draft = mom.post("/api/v1/member-posts", json={"text": f"这里可以{risky}"}).get_json()
    refused = mom.post(f"/api/v1/member-posts/{draft['id']}/publish", json={"accept_license_version": "2026-01"})
    body = assert_error(refused, 422, "content_risky")
    assert body["errors"]["text"]
    assert mom.get(f"/api/v1/member-posts/{draft['id']}").get_json()["status"] == "draft"
    assert_error(
        mom.post(
            "/api/v1/member-posts",
            json={"text": f"<b>{risky}</b>", "publish": True, "accept_license_version": "2026-01"},
        ),
        422,
        "content_risky",
    )
    assert mom.get("/api/v1/me/member-posts").get_json()["items"] == [
        mom.get(f"/api/v1/member-posts/{draft['id']}").get_json()
    ]
    fixed = mom.patch(f"/api/v1/member-posts/{draft['id']}", json={"text": "这里可以放心用"}).get_json()
    assert_error(mom.post(f"/api/v1/member-posts/{fixed['id']}/publish", json={}), 422, "license_required")  # not kept
    published = mom.post(f"/api/v1/member-posts/{fixed['id']}/publish", json={"accept_license_version": "2026-01"})
    assert published.get_json()["status"] == "published"


def test_sandbox_answers_wechat_shapes(app):
    client = clients().miniprogram
    assert client.wxa.check_text_security("今天天气好") == {"errcode": 0, "errmsg": "ok"}
    from wechatpy.exceptions import WeChatClientException

    with pytest.raises(WeChatClientException) as flagged:
        client.wxa.check_text_security("教你" + app.config["CONTENT_RISKY_WORDS"][1])
    assert flagged.value.errcode == 87014 and "risky content" in flagged.value.errmsg
    app.config["CONTENT_RISKY_WORDS"].append("新词")
    try:
        with pytest.raises(WeChatClientException):
            client.wxa.check_text_security("一个新词")
    finally:
        app.config["CONTENT_RISKY_WORDS"].remove("新词")


def test_publishing_records_license_acceptance(mom, frozen_clock):
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    frozen_clock(at)
    assert mom.get("/api/v1/me/content-license").get_json() == {"version": "2026-01", "accepted_at": None}
    assert_error(mom.post("/api/v1/member-posts", json={"text": "好物", "publish": True}), 422, "license_required")
    assert_error(
        mom.post("/api/v1/member-posts", json={"text": "好物", "publish": True, "accept_license_version": "2020-01"}),
        422,
        "license_version_outdated",
    )
    post = mom.post(
        "/api/v1/member-posts", json={"text": "好物", "publish": True, "accept_license_version": "2026-01"}
    ).get_json()
    assert post["status"] == "published" and post["license_version"] == "2026-01"
    assert mom.get("/api/v1/me/content-license").get_json()["accepted_at"] == at.isoformat()
    second = mom.post("/api/v1/member-posts", json={"text": "再来一个", "publish": True}).get_json()
    assert second["status"] == "published"
    assert (
        mom.post("/api/v1/me/content-license", json={"version": "2026-01"}).get_json()["accepted_at"] == at.isoformat()
    )


def test_post_validation(mom, app, api):
    product = make_product()
    assert_error(mom.post("/api/v1/member-posts", json={"text": "x", "product_ids": [999999]}), 422, "unknown_products")
    banned = make_product(is_breastmilk_substitute=True)
    assert_error(
        mom.post("/api/v1/member-posts", json={"text": "x", "product_ids": [banned.id]}),
        422,
        "product_not_advertisable",
    )
    assert_error(
        mom.post(
            "/api/v1/member-posts",
            json={"text": "x", "image_urls": [f"https://img.example/{i}.jpg" for i in range(10)]},
        ),
        422,
        "validation_error",
    )
    assert_error(
        mom.post("/api/v1/member-posts", json={"text": "x", "image_urls": ["javascript:alert(1)"]}),
        422,
        "validation_error",
    )
    assert_error(
        mom.post("/api/v1/member-posts", json={"text": "长" * (app.config["CONTENT_POST_MAX_CHARS"] + 1)}),
        413,
        "body_too_large",
    )
    assert_error(mom.post("/api/v1/member-posts", json={"text": "<script>only()</script>"}), 422, "text_blank")
    assert_error(mom.post("/api/v1/member-posts", json={"text": "x", "min_age_months": 5}), 422, "validation_error")
    host = api.as_user("host1", roles=("host",))
    group = make_group(host)
    assert_error(
        mom.post("/api/v1/member-posts", json={"text": "x", "group_id": group["id"]}), 403, "not_a_group_member"
    )
    made = mom.post("/api/v1/member-posts", json={"text": "好", "product_ids": [product.id, product.id]}).get_json()
    assert [c["product_id"] for c in made["products"]] == [product.id]
    other = api.as_user("mom2")
    assert_error(other.patch(f"/api/v1/member-posts/{made['id']}", json={"text": "mine"}), 403, "post_not_yours")
    assert_error(other.get(f"/api/v1/member-posts/{made['id']}"), 404, "post_not_found")  # a draft is private
    published = publish(mom)
    assert_error(mom.patch(f"/api/v1/member-posts/{published['id']}", json={"text": "y"}), 409, "post_not_editable")
    assert_error(mom.post(f"/api/v1/member-posts/{published['id']}/publish", json={}), 409, "post_not_publishable")


def test_reports_hide_a_post_until_an_operator_reviews(api, mom, app):
    post = publish(mom)
    operator = api.as_user("op", roles=("operator",))
    reporters = [api.as_user(f"reporter{i}") for i in range(app.config["CONTENT_REPORTS_TO_HIDE"] + 1)]
    assert_error(mom.post(f"/api/v1/member-posts/{post['id']}/reports", json={}), 422, "own_post")
    for reporter in reporters[:-2]:
        assert reporter.post(f"/api/v1/member-posts/{post['id']}/reports", json={"reason": "广告"}).status_code == 201
    assert_error(reporters[0].post(f"/api/v1/member-posts/{post['id']}/reports", json={}), 409, "already_reported")
    assert [p["id"] for p in api.get("/api/v1/member-posts").get_json()["items"]] == [post["id"]]
    last = reporters[-2].post(f"/api/v1/member-posts/{post['id']}/reports", json={"reason": "<b>广告</b>"}).get_json()
    assert last["hidden"] is True and last["report_count"] == app.config["CONTENT_REPORTS_TO_HIDE"]
    assert api.get("/api/v1/member-posts").get_json()["items"] == []
    assert_error(api.get(f"/api/v1/member-posts/{post['id']}"), 404, "post_not_found")
    assert mom.get(f"/api/v1/member-posts/{post['id']}").get_json()["hidden"] is True  # the author still sees it
    queue = operator.get("/api/v1/admin/member-posts/reported").get_json()["items"]
    assert [p["id"] for p in queue] == [post["id"]]
    restored = operator.post(
        f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "restore"}
    ).get_json()
    assert restored["hidden"] is False and restored["status"] == "published"
    assert operator.get("/api/v1/admin/member-posts/reported").get_json()["items"] == []
    assert [p["id"] for p in api.get("/api/v1/member-posts").get_json()["items"]] == [post["id"]]
    reporters[-1].post(f"/api/v1/member-posts/{post['id']}/reports", json={})  # one new report does not hide it again
    assert api.get(f"/api/v1/member-posts/{post['id']}").status_code == 200
    assert_error(
        operator.post(f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "reject"}),
        422,
        "validation_error",
    )
    rejected = operator.post(
        f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "reject", "reason": "含广告"}
    ).get_json()
    assert rejected["status"] == "rejected" and rejected["reject_reason"] == "含广告"
    fixed = mom.patch(f"/api/v1/member-posts/{post['id']}", json={"text": "纯分享"}).get_json()
    assert mom.post(f"/api/v1/member-posts/{fixed['id']}/publish", json={}).get_json()["status"] == "published"
    down = operator.post(
        f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "take_down", "reason": "违规"}
    )
    assert down.get_json()["status"] == "taken_down"
    assert_error(mom.post(f"/api/v1/member-posts/{post['id']}/publish", json={}), 409, "post_not_publishable")
    assert_error(
        operator.post(f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "restore"}),
        409,
        "post_taken_down",
    )
    assert_error(
        mom.post(f"/api/v1/admin/member-posts/{post['id']}/moderate", json={"decision": "restore"}),
        403,
        "role_required",
    )


def test_feeds_by_group_product_age_band_newest_and_popular(api, frozen_clock):
    host = api.as_user("host1", roles=("host",))
    toddlers, babies = make_group(host, age_band="1-3y"), make_group(host, age_band="0-6m", name="新生儿群")
    moms = [api.as_user(f"mom{i}") for i in range(3)]
    for mom in moms:
        join(mom, host, toddlers["id"])
    join(moms[0], host, babies["id"])
    toothbrush, wipes = make_product(title="牙刷"), make_product(title="湿巾")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    frozen_clock(start)
    a = publish(moms[0], text="a", group_id=toddlers["id"], product_ids=[toothbrush.id])
    frozen_clock(start + timedelta(minutes=1))
    b = publish(moms[1], text="b", group_id=toddlers["id"], product_ids=[wipes.id, toothbrush.id])
    frozen_clock(start + timedelta(minutes=2))
    c = publish(moms[0], text="c", group_id=babies["id"], product_ids=[wipes.id])
    frozen_clock(start + timedelta(minutes=3))
    d = publish(moms[2], text="d", min_age_months=30, max_age_months=48)
    assert a["min_age_months"] == 12 and a["max_age_months"] == 35  # from the group's band

    def ids(**query):
        seen, cursor = [], None
        while True:
            body = api.get(
                "/api/v1/member-posts", query_string=query | {"limit": 2} | ({"cursor": cursor} if cursor else {})
            ).get_json()
            seen += [p["id"] for p in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                return seen

    assert ids() == [d["id"], c["id"], b["id"], a["id"]]
    assert ids(group_id=toddlers["id"]) == [b["id"], a["id"]]
    assert ids(product_id=toothbrush.id) == [b["id"], a["id"]]
    assert ids(age_band="1-3y") == [d["id"], b["id"], a["id"]]
    assert ids(age_band="3-6y") == [d["id"]]
    assert ids(age_band="0-6m") == [c["id"]]
    for _ in range(3):
        moms[1].get(f"/api/v1/member-posts/{a['id']}")
    moms[2].get(f"/api/v1/member-posts/{c['id']}")
    moms[0].get(f"/api/v1/member-posts/{a['id']}")  # the author's own views do not count
    assert ids(sort="popular") == [a["id"], c["id"], d["id"], b["id"]]
    viewed = api.get(f"/api/v1/member-posts/{a['id']}").get_json()
    assert viewed["view_count"] == 4 and [p["product_id"] for p in b["products"]] == [wipes.id, toothbrush.id]
    assert_error(api.get("/api/v1/member-posts", query_string={"age_band": "teen"}), 422, "validation_error")
    assert_error(api.get("/api/v1/member-posts", query_string={"cursor": "bad"}), 422, "invalid_cursor")


def test_feed_pages_are_cached_briefly_and_refreshed_by_changes(api, app):
    mom = api.as_user("mom1")
    first = publish(mom, text="第一条", product_ids=[make_product().id])
    assert [p["id"] for p in api.get("/api/v1/member-posts").get_json()["items"]] == [first["id"]]
    api.as_user("viewer").get(f"/api/v1/member-posts/{first['id']}")
    assert (
        api.get("/api/v1/member-posts").get_json()["items"][0]["view_count"] == 0
    )  # a view does not refresh the cache
    second = publish(mom, text="第二条", product_ids=[make_product().id], image_urls=["https://img.example/x.jpg"])
    page = api.get("/api/v1/member-posts").get_json()["items"]
    assert [p["id"] for p in page] == [second["id"], first["id"]] and page[1]["view_count"] == 1
    app.config["CONTENT_FEED_CACHE_SECONDS"], ttl = 0, app.config["CONTENT_FEED_CACHE_SECONDS"]
    try:
        api.as_user("viewer").get(f"/api/v1/member-posts/{second['id']}")
        assert api.get("/api/v1/member-posts").get_json()["items"][0]["view_count"] == 1
        # The hand-rendered feed rows are exactly what the schema renders for one post.
        assert (
            api.get("/api/v1/member-posts").get_json()["items"][0]
            == mom.get(f"/api/v1/member-posts/{second['id']}").get_json()
        )
    finally:
        app.config["CONTENT_FEED_CACHE_SECONDS"] = ttl


def test_feed_rows_are_the_post_schema_with_cards_on_sale_in_order_and_their_share_codes(api, app):
    """The hand-rendered feed (built by PostgreSQL there) shows what the schema shows for each post."""
    from app.catalog import service as catalog

    mom = api.as_user("mom1")
    products = [make_product(title=f"商品{i}") for i in range(3)]
    post = publish(mom, text="三件", product_ids=[products[2].id, products[0].id, products[1].id])
    plain = publish(mom, text="无商品")
    catalog.update_product(product_id=products[0].id, changes={"is_active": False})
    app.config["CONTENT_FEED_CACHE_SECONDS"], ttl = 0, app.config["CONTENT_FEED_CACHE_SECONDS"]
    try:
        for query in [{}, {"product_id": products[2].id}, {"limit": 1}]:
            rows = {p["id"]: p for p in api.get("/api/v1/member-posts", query_string=query).get_json()["items"]}
            for post_id, row in rows.items():
                assert row == mom.get(f"/api/v1/member-posts/{post_id}").get_json(), query
        cards = rows.get(post["id"]) or api.get(f"/api/v1/member-posts/{post['id']}").get_json()
        assert [c["product_id"] for c in cards["products"]] == [products[2].id, products[1].id]
        assert all(c["share_code"] for c in cards["products"]) and plain["products"] == []
    finally:
        app.config["CONTENT_FEED_CACHE_SECONDS"] = ttl


def test_feed_cache_refreshes_exactly_the_feeds_a_change_touches(api, app):
    """A publication, a take-down or reports hiding a post show at once in every feed showing the post; other
    feeds keep serving their cached pages (seen through a view count that a view does not refresh)."""
    host = api.as_user("host1", roles=("host",))
    toddlers, babies = make_group(host, age_band="1-3y"), make_group(host, age_band="0-6m", name="新生儿群")
    mom, other, viewer = api.as_user("mom1"), api.as_user("mom2"), api.as_user("viewer")
    join(mom, host, toddlers["id"])
    join(other, host, babies["id"])
    wipes, toothbrush = make_product(title="湿巾"), make_product(title="牙刷")
    first = publish(mom, text="a", group_id=toddlers["id"], product_ids=[wipes.id])
    baby = publish(other, text="b", group_id=babies["id"], product_ids=[toothbrush.id])
    toddler_feeds = [{}, {"group_id": toddlers["id"]}, {"product_id": wipes.id}, {"age_band": "1-3y"}]
    baby_feeds = [{"group_id": babies["id"]}, {"product_id": toothbrush.id}, {"age_band": "0-6m"}]

    def views(query):
        return {
            p["id"]: p["view_count"] for p in api.get("/api/v1/member-posts", query_string=query).get_json()["items"]
        }

    for query in toddler_feeds + baby_feeds:
        views(query)
    viewer.get(f"/api/v1/member-posts/{baby['id']}")
    viewer.get(f"/api/v1/member-posts/{first['id']}")
    second = publish(mom, text="c", group_id=toddlers["id"], product_ids=[wipes.id])
    for query in toddler_feeds:
        assert second["id"] in views(query) and views(query)[first["id"]] == 1, query
    for query in baby_feeds:
        assert views(query) == {baby["id"]: 0}, query  # untouched: still the cached page

    operator = api.as_user("op", roles=("operator",))
    taken = operator.post(
        f"/api/v1/admin/member-posts/{baby['id']}/moderate", json={"decision": "take_down", "reason": "广告"}
    )
    assert taken.status_code == 200
    for query in [{}] + baby_feeds:
        assert baby["id"] not in views(query), query
    for i in range(app.config["CONTENT_REPORTS_TO_HIDE"]):
        api.as_user(f"reporter{i}").post(f"/api/v1/member-posts/{first['id']}/reports", json={"reason": "spam"})
    for query in toddler_feeds:
        assert list(views(query)) == [second["id"]], query


def test_ids_beyond_the_database_range_are_404s(api):
    partner = api.as_user("partner1", roles=("partner",))
    huge = "99999999999999999999"
    assert_error(partner.get(f"/api/v1/partner/courses/{huge}"), 404, "not_found")
    assert_error(api.get(f"/api/v1/member-posts/{huge}"), 404, "not_found")
    assert_error(api.get(f"/api/v1/knowledge-points/{huge}"), 404, "not_found")


_runs = iter(range(10**6))
ACTIONS = ("report", "restore", "reject", "take_down", "republish")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(min_value=0, max_value=4)), max_size=12))
def test_post_moderation_state_machine(app, steps):
    """Any sequence of reports and decisions keeps the rules: taken down is final, hidden means enough unjudged
    reports, the feed shows exactly the published unhidden posts, each member's report counts once."""
    from app.accounts import service as accounts
    from app.content import feeds, ugc
    from app.core.errors import ApiError

    run = next(_runs)
    author = accounts.ensure_user(openid=f"sm-author-{run}", nickname="a")
    reporters = [accounts.ensure_user(openid=f"sm-reporter-{run}-{i}", nickname="r").id for i in range(5)]
    post = ugc.create_post(
        author_id=author.id, values={"text": "分享"}, publish=True, accept_license_version=ugc.current_license()
    )
    threshold = app.config["CONTENT_REPORTS_TO_HIDE"]
    reported, cleared, status = set(), 0, "published"
    for action, who in steps:
        try:
            if action == "report":
                ugc.report_post(post_id=post.id, reporter_id=reporters[who], reason="")
            elif action == "republish":
                ugc.publish_post(post_id=post.id, author_id=author.id, accept_license_version=None)
            else:
                ugc.moderate(post_id=post.id, decision=action, reason=None if action == "restore" else "原因")
        except ApiError:
            current = db.session.get(MemberPost, post.id)
            assert (current.status, current.hidden) == (
                status,
                status == "published" and len(reported) - cleared >= threshold,
            )
            continue
        if action == "report":
            assert status == "published" and reporters[who] not in reported
            reported.add(reporters[who])
        elif action == "republish":
            assert status == "rejected"
            status = "published"
        else:
            assert status != "taken_down" and (action != "restore" or status == "published")
            cleared = len(reported)
            status = {"restore": status, "reject": "rejected", "take_down": "taken_down"}[action]
        db.session.expire_all()
        current = db.session.get(MemberPost, post.id)
        hidden = status == "published" and len(reported) - cleared >= threshold
        assert (current.status, current.hidden, current.report_count) == (status, hidden, len(reported))
        shown = [
            p.id
            for p in feeds.feed(
                group_id=None, product_id=None, age_band=None, sort="newest", cursor=None, limit=100
            ).items
        ]
        assert (post.id in shown) == (status == "published" and not hidden)
