"""Institutions, classes, groups, members, group roles and the fan ladder, through the API."""

from datetime import UTC, datetime, timedelta

import pytest

from app.core.db import db
from app.groups import ladder, service, tasks
from app.groups.models import ChatGroup
from tests.helpers import assert_error

WEBHOOK_KEY = "robot-key-secret-0001"


def make_group(host, **overrides):
    body = {
        "name": "阳光幼儿园大一班",
        "channel": "wecom_webhook",
        "credentials": {"webhook_key": WEBHOOK_KEY},
        "age_band": "3-6y",
        "tags": ["kindergarten"],
    } | overrides
    response = host.post("/api/v1/groups", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def invite_scene(host, group_id):
    return host.get(f"/api/v1/groups/{group_id}/invite").get_json()["scene"]


def test_institution_classes_and_group_placement(api):
    host = api.as_user("host1", roles=("host",))
    other = api.as_user("host2", roles=("host",))
    inst = host.post(
        "/api/v1/institutions", json={"name": "阳光幼儿园", "kind": "kindergarten", "city": "上海"}
    ).get_json()
    klass = host.post(f"/api/v1/institutions/{inst['id']}/classes", json={"name": "大一班", "age_band": "3-6y"})
    assert klass.status_code == 201
    assert_error(
        host.post(f"/api/v1/institutions/{inst['id']}/classes", json={"name": "大一班", "age_band": "3-6y"}),
        409,
        "class_name_taken",
    )
    assert_error(other.get(f"/api/v1/institutions/{inst['id']}"), 403, "institution_not_yours")
    assert_error(
        other.post(f"/api/v1/institutions/{inst['id']}/classes", json={"name": "x", "age_band": "3-6y"}),
        403,
        "institution_not_yours",
    )
    group = make_group(host, institution_id=inst["id"], class_id=klass.get_json()["id"])
    assert group["institution_id"] == inst["id"] and group["class_id"] == klass.get_json()["id"]
    assert_error(
        host.post(
            "/api/v1/groups",
            json={"name": "g", "channel": "sandbox", "age_band": "3-6y", "class_id": klass.get_json()["id"]},
        ),
        422,
        "class_not_in_institution",
    )
    assert [i["id"] for i in host.get("/api/v1/institutions").get_json()["items"]] == [inst["id"]]
    assert other.get("/api/v1/institutions").get_json()["items"] == []
    assert host.get(f"/api/v1/institutions/{inst['id']}/classes").get_json()["items"][0]["name"] == "大一班"
    renamed = host.patch(f"/api/v1/institutions/{inst['id']}", json={"city": "杭州"}).get_json()
    assert renamed["city"] == "杭州"


def test_host_manages_own_groups_operator_all(api):
    host = api.as_user("host1", roles=("host",))
    other = api.as_user("host2", roles=("host",))
    operator = api.as_user("op", roles=("operator",))
    group = make_group(host)
    assert group["host_id"] == host.user["id"] and group["timezone"] == "Asia/Shanghai"
    assert_error(other.get(f"/api/v1/groups/{group['id']}"), 403, "group_not_yours")
    assert_error(other.patch(f"/api/v1/groups/{group['id']}", json={"name": "mine now"}), 403, "group_not_yours")
    assert_error(other.get(f"/api/v1/groups/{group['id']}/members"), 403, "group_not_yours")
    assert operator.patch(f"/api/v1/groups/{group['id']}", json={"name": "改名"}).get_json()["name"] == "改名"
    assert [g["id"] for g in other.get("/api/v1/groups").get_json()["items"]] == []
    assert [g["id"] for g in operator.get("/api/v1/groups").get_json()["items"]] == [group["id"]]
    mom = api.as_user("mom1")
    assert_error(mom.get("/api/v1/groups"), 403, "role_required")
    assign = operator.post(
        "/api/v1/groups", json={"name": "g2", "channel": "sandbox", "age_band": "0-6m", "host_id": host.user["id"]}
    )
    assert assign.get_json()["host_id"] == host.user["id"]
    assert_error(
        other.post(
            "/api/v1/groups", json={"name": "g3", "channel": "sandbox", "age_band": "0-6m", "host_id": host.user["id"]}
        ),
        403,
        "host_assignment_forbidden",
    )
    assert_error(
        operator.post(
            "/api/v1/groups", json={"name": "g4", "channel": "sandbox", "age_band": "0-6m", "host_id": mom.user["id"]}
        ),
        422,
        "not_a_host",
    )


def test_credentials_validated_encrypted_and_never_returned(api, app):
    host = api.as_user("host1", roles=("host",))
    assert_error(
        host.post("/api/v1/groups", json={"name": "g", "channel": "wecom_webhook", "age_band": "3-6y"}),
        422,
        "credentials_missing",
    )
    assert_error(
        host.post(
            "/api/v1/groups",
            json={
                "name": "g",
                "channel": "wecom_customer_group",
                "age_band": "3-6y",
                "credentials": {"corp_id": "wwother", "sender": "u", "chat_id": "c"},
            },
        ),
        422,
        "wecom_corp_unknown",
    )
    assert_error(
        host.post(
            "/api/v1/groups", json={"name": "g", "channel": "sandbox", "age_band": "3-6y", "timezone": "Mars/Olympus"}
        ),
        422,
        "unknown_timezone",
    )
    group = make_group(host)
    bodies = [
        host.get(f"/api/v1/groups/{group['id']}").get_data(as_text=True),
        host.get("/api/v1/groups").get_data(as_text=True),
        host.patch(
            f"/api/v1/groups/{group['id']}", json={"credentials": {"webhook_key": "robot-key-secret-0002"}}
        ).get_data(as_text=True),
    ]
    assert group["credentials_set"] is True
    for body in bodies + [str(group)]:
        assert "robot-key-secret" not in body and "credentials_encrypted" not in body
    stored = db.session.get(ChatGroup, group["id"]).credentials_encrypted
    assert "robot-key-secret" not in stored
    assert service.delivery_targets(group_ids=[group["id"]])[group["id"]].credentials == {
        "webhook_key": "robot-key-secret-0002"
    }
    switched = host.patch(f"/api/v1/groups/{group['id']}", json={"channel": "sandbox"}).get_json()
    assert switched["channel"] == "sandbox"
    assert_error(
        host.patch(f"/api/v1/groups/{group['id']}", json={"channel": "wecom_webhook"}), 422, "credentials_missing"
    )


def test_join_by_invite_leave_and_rejoin(api):
    host = api.as_user("host1", roles=("host",))
    group = make_group(host)
    scene = invite_scene(host, group["id"])
    assert len(scene) <= 32
    mom = api.as_user("mom1")
    joined = mom.post("/api/v1/groups/join", json={"scene": scene})
    assert joined.status_code == 200 and joined.get_json()["fan_level"] == "casual"
    mom.post("/api/v1/groups/join", json={"scene": scene})
    assert host.get(f"/api/v1/groups/{group['id']}").get_json()["member_count"] == 1
    assert [m["group_id"] for m in mom.get("/api/v1/me/groups").get_json()["items"]] == [group["id"]]
    assert_error(mom.post("/api/v1/groups/join", json={"scene": "nope"}), 404, "invite_not_found")
    assert mom.post(f"/api/v1/groups/{group['id']}/leave").status_code == 204
    assert_error(mom.post(f"/api/v1/groups/{group['id']}/leave"), 404, "not_a_member")
    assert host.get(f"/api/v1/groups/{group['id']}").get_json()["member_count"] == 0
    assert mom.get("/api/v1/me/groups").get_json()["items"] == []
    mom.post("/api/v1/groups/join", json={"scene": scene})
    assert host.get(f"/api/v1/groups/{group['id']}").get_json()["member_count"] == 1


def test_group_roles(api):
    host = api.as_user("host1", roles=("host",))
    other = api.as_user("host2", roles=("host",))
    group = make_group(host)
    mom = api.as_user("mom1")
    base = f"/api/v1/groups/{group['id']}/members/{mom.user['id']}/roles"
    assert_error(host.put(f"{base}/teacher"), 404, "not_a_member")
    mom.post("/api/v1/groups/join", json={"scene": invite_scene(host, group["id"])})
    assert host.put(f"{base}/teacher").get_json()["roles"] == ["teacher"]
    assert host.put(f"{base}/expert").get_json()["roles"] == ["expert", "teacher"]
    assert host.put(f"{base}/expert").get_json()["roles"] == ["expert", "teacher"]
    assert host.put(f"{base}/janitor").status_code == 404
    assert_error(other.put(f"{base}/obstetrician"), 403, "group_not_yours")
    members = host.get(f"/api/v1/groups/{group['id']}/members").get_json()["items"]
    assert members[0]["roles"] == ["expert", "teacher"] and members[0]["nickname"] is not None
    assert host.delete(f"{base}/teacher").get_json()["roles"] == ["expert"]
    mom.post(f"/api/v1/groups/{group['id']}/leave")
    mom.post("/api/v1/groups/join", json={"scene": invite_scene(host, group["id"])})
    assert host.get(f"/api/v1/groups/{group['id']}/members").get_json()["items"][0]["roles"] == []


def test_fan_ladder_climbs_from_events(api, frozen_clock):
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    frozen_clock(start)
    host = api.as_user("host1", roles=("host",))
    group = make_group(host)
    scene = invite_scene(host, group["id"])
    moms = {name: api.as_user(name) for name in ("casual", "active", "demand", "buyer", "trust")}
    for mom in moms.values():
        mom.post("/api/v1/groups/join", json={"scene": scene})
    gid = group["id"]
    ids = {name: mom.user["id"] for name, mom in moms.items()}
    for i in range(3):
        assert service.record_member_event(group_id=gid, user_id=ids["active"], kind="clicked", ref=f"c{i}")
    assert not service.record_member_event(group_id=gid, user_id=ids["active"], kind="clicked", ref="c0")
    assert moms["demand"].post(f"/api/v1/groups/{gid}/demands", json={"text": "宝宝不爱刷牙怎么办"}).status_code == 201
    service.record_member_event(group_id=gid, user_id=ids["buyer"], kind="purchased", ref="order-1")
    service.record_member_event(group_id=gid, user_id=ids["trust"], kind="purchased", ref="order-2")
    service.record_member_event(group_id=gid, user_id=ids["trust"], kind="purchased", ref="order-3")
    service.record_member_event(group_id=gid, user_id=ids["trust"], kind="purchased", ref="order-3")
    outsider = api.as_user("outsider")
    assert not service.record_member_event(group_id=gid, user_id=outsider.user["id"], kind="purchased", ref="order-9")
    assert_error(outsider.post(f"/api/v1/groups/{gid}/demands", json={"text": "hi"}), 403, "not_a_member")
    assert tasks.recompute_fan_levels() == 4
    counts = host.get(f"/api/v1/groups/{gid}/fans").get_json()["counts"]
    assert counts == {"casual": 1, "active": 1, "demand": 2, "trust": 1}
    at_demand = host.get(f"/api/v1/groups/{gid}/members?level=demand").get_json()["items"]
    assert sorted(m["user_id"] for m in at_demand) == sorted([ids["demand"], ids["buyer"]])
    assert tasks.recompute_fan_levels() == 0
    frozen_clock(start + timedelta(days=31))
    tasks.recompute_fan_levels()
    host = api.as_user("host1")
    counts = host.get(f"/api/v1/groups/{gid}/fans").get_json()["counts"]
    assert counts == {"casual": 2, "active": 0, "demand": 2, "trust": 1}
    frozen_clock(start + timedelta(days=61))
    tasks.recompute_fan_levels()
    host = api.as_user("host1")
    assert host.get(f"/api/v1/groups/{gid}/fans").get_json()["counts"] == {
        "casual": 3,
        "active": 0,
        "demand": 1,
        "trust": 1,
    }


@pytest.mark.parametrize(
    "signals,level",
    [
        ((0, 0, 0), "casual"),
        ((2, 0, 0), "casual"),
        ((3, 0, 0), "active"),
        ((9, 1, 0), "demand"),
        ((0, 0, 1), "demand"),
        ((0, 0, 2), "trust"),
        ((5, 3, 7), "trust"),
    ],
)
def test_ladder_thresholds(signals, level):
    assert ladder.level_for(ladder.Signals(*signals)) == level


def test_demo_seed_builds_groups_and_posts(app):
    from sqlalchemy import func, select

    from app.accounts import demo as accounts_demo
    from app.delivery import demo as delivery_demo
    from app.delivery.models import Post
    from app.groups import demo as groups_demo

    accounts_demo.seed()
    groups_demo.seed()
    delivery_demo.seed()
    groups_demo.seed()
    delivery_demo.seed()
    assert db.session.scalar(select(func.count()).select_from(ChatGroup)) == 2
    assert sorted(g.member_count for g in db.session.scalars(select(ChatGroup))) == [5, 5]
    assert db.session.scalar(select(func.count()).select_from(Post)) == 2


def test_clicks_and_purchases_through_the_groups_links_climb_the_ladder(api, frozen_clock):
    from app.affiliate import service as affiliate
    from tests.affiliate_helpers import ingest, make_product

    frozen_clock(datetime(2026, 11, 1, tzinfo=UTC))
    host = api.as_user("host1", roles=("host",))
    gid = make_group(host)["id"]
    mom, outsider = api.as_user("mom"), api.as_user("outsider")
    mom.post("/api/v1/groups/join", json={"scene": invite_scene(host, gid)})
    products = [make_product(price_fen=5000) for _ in range(3)]
    codes = [
        mom.post("/api/v1/share-links", json={"product_id": p.id, "group_id": gid}).get_json()["code"] for p in products
    ]

    def level():
        tasks.recompute_fan_levels()
        members = api.as_user("host1").get(f"/api/v1/groups/{gid}/members").get_json()["items"]
        return {m["user_id"]: m["fan_level"] for m in members}[mom.user["id"]]

    for code in codes[:2]:
        assert mom.post("/api/v1/clicks", json={"code": code}).get_json() == {"counted": True}
    outsider.post("/api/v1/clicks", json={"code": codes[2]})
    affiliate.persist_clicks()
    assert level() == "casual"
    assert mom.post("/api/v1/clicks", json={"code": codes[2]}).get_json() == {"counted": True}
    affiliate.persist_clicks()
    assert level() == "active"

    ingest(external_id="O1", product=products[0], buyer_id=mom.user["id"], tracking_code=codes[0])
    ingest(
        external_id="O1",
        product=products[0],
        buyer_id=mom.user["id"],
        tracking_code=codes[0],
        version=2,
        status="completed",
    )
    ingest(external_id="O9", product=products[0], buyer_id=outsider.user["id"], tracking_code=codes[0])
    assert level() == "demand"
    ingest(external_id="O2", product=products[1], buyer_id=mom.user["id"], tracking_code=codes[1])
    assert level() == "trust"
    counts = api.as_user("host1").get(f"/api/v1/groups/{gid}/fans").get_json()["counts"]
    assert counts == {"casual": 0, "active": 0, "demand": 0, "trust": 1}


def test_member_events_in_bulk_skip_non_members_and_repeats(api):
    from app.core.clock import now_utc

    host = api.as_user("host1", roles=("host",))
    gid = make_group(host)["id"]
    mom, outsider = api.as_user("mom"), api.as_user("outsider")
    mom.post("/api/v1/groups/join", json={"scene": invite_scene(host, gid)})
    at = now_utc()
    events = [
        service.MemberEventIn(group_id=gid, user_id=mom.user["id"], kind="clicked", occurred_at=at, ref="click:1"),
        service.MemberEventIn(group_id=gid, user_id=mom.user["id"], kind="clicked", occurred_at=at, ref="click:2"),
        service.MemberEventIn(group_id=gid, user_id=outsider.user["id"], kind="clicked", occurred_at=at, ref="c:3"),
    ]
    assert service.record_member_events(events=events) == 2
    assert service.record_member_events(events=events) == 0
    assert service.record_member_events(events=[]) == 0
    with pytest.raises(ValueError):
        service.record_member_events(
            events=[service.MemberEventIn(group_id=gid, user_id=mom.user["id"], kind="nope", occurred_at=at)]
        )
