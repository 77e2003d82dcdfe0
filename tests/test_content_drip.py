"""Drips through the delivery engine: course order, no repeats, age fit, skips, what comes next, retries."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.content import drip
from app.content.models import DripSent
from app.core.db import db
from app.delivery import tasks
from app.delivery.models import Delivery
from tests.content_helpers import KP, approve_all, make_group
from tests.helpers import assert_error

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday; 08:00 in Shanghai is 00:00 UTC
MON, WED, FRI, NEXT_MON = (datetime(2026, 11, d, 0, 5, tzinfo=UTC) for d in (23, 25, 27, 30))
WEEKLY = {"kind": "weekly", "time": "08:00", "weekdays": [1, 3, 5]}


@pytest.fixture
def people(api, frozen_clock):
    frozen_clock(T0)
    return (
        api.as_user("partner1", roles=("partner",)),
        api.as_user("op", roles=("operator",)),
        api.as_user("host1", roles=("host",)),
    )


def _point(partner, lesson_id, title, position, low, high):
    body = KP | {"title": title, "position": position, "min_age_months": low, "max_age_months": high}
    response = partner.post(f"/api/v1/partner/lessons/{lesson_id}/knowledge-points", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def build_course(partner, operator, *, topic="刷牙", title="口腔"):
    """Two lessons given out of order; returns the course id and point ids by name."""
    course = partner.post("/api/v1/partner/courses", json={"title": title, "topic": topic}).get_json()
    second = partner.post(
        f"/api/v1/partner/courses/{course['id']}/lessons", json={"title": "二", "position": 2}
    ).get_json()
    first = partner.post(
        f"/api/v1/partner/courses/{course['id']}/lessons", json={"title": "一", "position": 1}
    ).get_json()
    points = {
        "late": _point(partner, second["id"], f"{title}-late", 1, 12, 36),
        "b": _point(partner, first["id"], f"{title}-b", 2, 12, 36),
        "infant": _point(partner, first["id"], f"{title}-infant", 3, 0, 5),
        "a": _point(partner, first["id"], f"{title}-a", 1, 12, 36),
    }
    approve_all(partner, operator, course["id"])
    return course["id"], points


def drip_post(host, content, group_ids, schedule=WEEKLY):
    response = host.post(
        "/api/v1/posts",
        json={"kind": "knowledge_point", "content": content, "targets": {"group_ids": group_ids}, "schedule": schedule},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def received_points(host, group_id):
    """The knowledge point ids a sandbox group got, in order (points without products go out as markdown)."""
    from app.content.models import KnowledgePoint

    titles = {p.title: p.id for p in db.session.scalars(select(KnowledgePoint))}
    messages = host.get(f"/api/v1/groups/{group_id}/sandbox-messages?limit=100").get_json()["items"][::-1]
    return [titles[m["payload"]["markdown"]["content"].split("\n")[0].strip("*")] for m in messages]


def at(frozen_clock, moment):
    frozen_clock(moment)
    tasks.tick()


def test_drip_follows_course_order_fits_ages_never_repeats_and_skips(people, frozen_clock, api):
    partner, operator, host = people
    course_id, p = build_course(partner, operator)
    held = partner.patch(f"/api/v1/partner/knowledge-points/{p['b']}", json={"title": "改过"}).get_json()
    assert held["status"] == "pending_review"  # edited after approval: out of the drip until approved again
    toddlers = make_group(host, age_band="1-3y")["id"]
    infants = make_group(host, age_band="0-6m", name="新生儿")["id"]
    post = drip_post(host, {"course_id": course_id}, [toddlers, infants])

    upcoming = host.get(f"/api/v1/drips/{post['id']}/upcoming", query_string={"group_id": toddlers}).get_json()
    assert [i["id"] for i in upcoming["items"]] == [p["a"], p["late"]]
    assert upcoming["next_at"] == "2026-11-23T00:00:00+00:00"

    at(frozen_clock, MON)
    assert received_points(host, toddlers) == [p["a"]]
    assert received_points(host, infants) == [p["infant"]]
    operator.post(f"/api/v1/admin/content/knowledge-points/{p['b']}/review", json={"decision": "approve"})
    assert [
        i["id"]
        for i in host.get(f"/api/v1/drips/{post['id']}/upcoming", query_string={"group_id": toddlers}).get_json()[
            "items"
        ]
    ] == [p["b"], p["late"]]
    newborn = host.get(f"/api/v1/drips/{post['id']}/upcoming", query_string={"group_id": infants}).get_json()
    assert newborn["items"] == [] and newborn["next_outcome"] == "skip"
    assert upcoming["next_outcome"] == "send"
    preview = host.get(f"/api/v1/posts/{post['id']}/preview?group_id={infants}").get_json()
    assert preview["payload"] is None and preview["skip"]["code"] == "drip_nothing_fits"
    at(frozen_clock, WED)
    at(frozen_clock, FRI)
    at(frozen_clock, NEXT_MON)
    assert received_points(host, toddlers) == [p["a"], p["b"], p["late"]]
    assert received_points(host, infants) == [p["infant"]]  # nothing else fits a newborn: skipped since
    db.session.expire_all()
    infant_rows = db.session.scalars(select(Delivery).where(Delivery.group_id == infants)).all()
    skipped = [d for d in infant_rows if d.state == "skipped"]
    assert len(skipped) == 3 and {d.error_code for d in skipped} == {"drip_nothing_fits"}
    assert all(d.finished_at is not None for d in skipped) and not [d for d in infant_rows if d.state == "dead"]
    # A skip is no failure: the host's log filters it, the figures count it apart, and retries leave it alone.
    logged = host.get(f"/api/v1/groups/{infants}/deliveries", query_string={"state": "skipped"}).get_json()["items"]
    assert len(logged) == 3 and logged[0]["error_code"] == "drip_nothing_fits"
    figures = host.get(f"/api/v1/groups/{infants}/figures").get_json()["deliveries"]
    assert (figures["skipped"], figures["dead"], figures["sent"]) == (3, 0, 1)
    retried = operator.post("/api/v1/admin/deliveries/retry", json={"group_id": infants, "states": ["failed", "dead"]})
    assert retried.get_json() == {"retried": 0}

    # A second drip on the topic reaches the same group: what it already got is not sent again.
    _other_course, q = build_course(partner, operator, title="护齿")
    topic = drip_post(host, {"topic": "刷牙"}, [toddlers], schedule={"kind": "daily", "time": "09:00"})
    assert [
        i["id"]
        for i in host.get(f"/api/v1/drips/{topic['id']}/upcoming", query_string={"group_id": toddlers}).get_json()[
            "items"
        ]
    ] == [q["a"], q["b"], q["late"]]
    at(frozen_clock, datetime(2026, 12, 1, 1, 5, tzinfo=UTC))
    assert received_points(host, toddlers)[-1] == q["a"]
    sent = db.session.scalars(select(DripSent.knowledge_point_id).where(DripSent.group_id == toddlers)).all()
    assert len(sent) == len(set(sent)) == 4


def test_drip_validation_access_and_preview(people, api):
    partner, operator, host = people
    course_id, p = build_course(partner, operator)
    group_id = make_group(host)["id"]
    draft = partner.post("/api/v1/partner/courses", json={"title": "未审", "topic": "辅食"}).get_json()
    for content, code in (
        ({"course_id": draft["id"]}, "drip_source_not_approved"),
        ({"topic": "没有"}, "drip_source_not_approved"),
        ({"course_id": course_id, "topic": "刷牙"}, "invalid_content"),
    ):
        assert_error(
            host.post(
                "/api/v1/posts",
                json={
                    "kind": "knowledge_point",
                    "content": content,
                    "targets": {"group_ids": [group_id]},
                    "schedule": WEEKLY,
                },
            ),
            422,
            code,
        )
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "knowledge_point",
                "content": {"knowledge_point_id": 999999},
                "targets": {"group_ids": [group_id]},
                "schedule": WEEKLY,
            },
        ),
        404,
        "knowledge_point_not_found",
    )
    post = drip_post(host, {"course_id": course_id}, [group_id])
    preview = host.get(f"/api/v1/posts/{post['id']}/preview?group_id={group_id}").get_json()["payload"]
    assert preview["markdown"]["content"].startswith("**口腔-a**\n")
    assert db.session.scalar(select(DripSent.id)) is None  # a preview records nothing
    other_host = api.as_user("host2", roles=("host",))
    other_group = make_group(other_host)["id"]
    assert_error(
        other_host.get(f"/api/v1/drips/{post['id']}/upcoming", query_string={"group_id": other_group}),
        403,
        "post_not_yours",
    )
    second_group = make_group(host, name="另一个群")["id"]
    assert_error(
        host.get(f"/api/v1/drips/{post['id']}/upcoming", query_string={"group_id": second_group}),
        422,
        "group_not_targeted",
    )
    fixed = drip_post(host, {"knowledge_point_id": p["a"]}, [group_id])
    assert_error(
        host.get(f"/api/v1/drips/{fixed['id']}/upcoming", query_string={"group_id": group_id}), 422, "not_a_drip"
    )


def test_a_fixed_point_is_refused_once_it_goes_back_to_review(people, frozen_clock):
    partner, operator, host = people
    _, p = build_course(partner, operator)
    group_id = make_group(host)["id"]
    drip_post(host, {"knowledge_point_id": p["a"]}, [group_id], schedule={"kind": "daily", "time": "08:00"})
    at(frozen_clock, MON)
    assert received_points(host, group_id) == [p["a"]]
    partner.patch(f"/api/v1/partner/knowledge-points/{p['a']}", json={"body": "<p>新版</p>"})
    at(frozen_clock, MON + timedelta(days=1))
    assert received_points(host, group_id) == [p["a"]]  # what was posted stays; nothing new until approved


def test_pick_is_stable_per_occurrence(people):
    partner, operator, host = people
    course_id, p = build_course(partner, operator)
    group_id = make_group(host)["id"]
    post = drip_post(host, {"course_id": course_id}, [group_id])
    first = drip.pick(
        post_id=post["id"], occurrence_id=77, content={"course_id": course_id}, group_id=group_id, age_band="1-3y"
    )
    again = drip.pick(
        post_id=post["id"], occurrence_id=77, content={"course_id": course_id}, group_id=group_id, age_band="1-3y"
    )
    following = drip.pick(
        post_id=post["id"], occurrence_id=78, content={"course_id": course_id}, group_id=group_id, age_band="1-3y"
    )
    assert first["id"] == again["id"] == p["a"] and following["id"] == p["b"]
    drip.pick(
        post_id=post["id"], occurrence_id=79, content={"course_id": course_id}, group_id=group_id, age_band="1-3y"
    )
    assert (
        drip.pick(
            post_id=post["id"], occurrence_id=80, content={"course_id": course_id}, group_id=group_id, age_band="1-3y"
        )
        is None
    )


def test_demo_seeds_build_an_approved_course_a_drip_and_a_post(app, api):
    from app.accounts import demo as accounts_demo
    from app.content import demo as content_demo
    from app.content.models import KnowledgePoint, MemberPost
    from app.delivery import demo as delivery_demo
    from app.delivery.models import Post
    from app.groups import demo as groups_demo

    accounts_demo.seed()
    groups_demo.seed()
    content_demo.seed()
    delivery_demo.seed()
    content_demo.seed()
    delivery_demo.seed()
    points = db.session.scalars(select(KnowledgePoint)).all()
    assert len(points) == 4 and {p.status for p in points} == {"approved"}
    assert db.session.scalar(select(Post.kind).where(Post.kind == "knowledge_point")) == "knowledge_point"
    assert [p.status for p in db.session.scalars(select(MemberPost))] == ["published"]
    assert api.get("/api/v1/member-posts").get_json()["items"][0]["text"].startswith("<p>用了儿歌计时")
