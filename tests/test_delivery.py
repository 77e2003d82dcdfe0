"""Scheduled posts and the fan-out engine, through the API and the engine's jobs (RQ runs inline)."""

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update

from app.affiliate.models import ShareLink
from app.catalog.models import Product
from app.core.db import db
from app.core.errors import Invalid
from app.core.redis import get_redis, key
from app.delivery import channels, engine, sending, tasks
from app.delivery.models import Delivery
from app.delivery.sandbox import robot_messages
from tests.helpers import assert_error

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai, 12:00 in London


def group(host, name="g", channel="sandbox", tz="Asia/Shanghai", **extra):
    body = {"name": name, "channel": channel, "age_band": "1-3y", "timezone": tz} | extra
    response = host.post("/api/v1/groups", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def robot_group(host, webhook_key, **extra):
    return group(host, channel="wecom_webhook", credentials={"webhook_key": webhook_key}, **extra)


def post(host, group_ids=None, schedule=None, kind="text", content=None, **extra):
    body = {
        "kind": kind,
        "content": content or {"text": "宝宝不爱刷牙怎么办？"},
        "targets": {"group_ids": group_ids} if group_ids is not None else extra.pop("targets"),
        "schedule": schedule or {"kind": "once", "at": "2026-11-22T20:05"},
    }
    response = host.post("/api/v1/posts", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def seen(host, group_id):
    return [
        m["payload"] for m in host.get(f"/api/v1/groups/{group_id}/sandbox-messages?limit=100").get_json()["items"]
    ][::-1]


def deliveries(post_id=None):
    stmt = select(Delivery).order_by(Delivery.id)
    if post_id is not None:
        stmt = stmt.where(Delivery.post_id == post_id)
    db.session.expire_all()
    return list(db.session.scalars(stmt))


def at(frozen_clock, moment):
    frozen_clock(moment)
    tasks.tick()


@pytest.fixture
def host(api, frozen_clock):
    frozen_clock(T0)
    return api.as_user("host1", roles=("host",))


def test_one_off_in_shanghai_and_another_zone(host, frozen_clock):
    shanghai = group(host, "上海群")
    london = group(host, "London group", tz="Europe/London")
    created = post(host, [shanghai, london], {"kind": "once", "at": "2026-11-22T20:05"})
    occurrences = host.get(f"/api/v1/posts/{created['id']}/occurrences").get_json()["items"]
    assert sorted((o["timezone"], o["slot"], o["due_at"]) for o in occurrences) == [
        ("Asia/Shanghai", "2026-11-22T20:05", "2026-11-22T12:05:00+00:00"),
        ("Europe/London", "2026-11-22T20:05", "2026-11-22T20:05:00+00:00"),
    ]
    at(frozen_clock, T0 + timedelta(minutes=4))
    assert seen(host, shanghai) == [] and deliveries() == []
    at(frozen_clock, T0 + timedelta(minutes=5))
    assert seen(host, shanghai) == [{"msgtype": "text", "text": {"content": "宝宝不爱刷牙怎么办？"}}]
    assert seen(host, london) == []
    at(frozen_clock, datetime(2026, 11, 22, 20, 5, 30, tzinfo=UTC))
    assert len(seen(host, london)) == 1 and len(seen(host, shanghai)) == 1
    assert [d.state for d in deliveries()] == ["sent", "sent"]
    assert host.get(f"/api/v1/posts/{created['id']}").get_json()["status"] == "finished"
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "text",
                "content": {"text": "x"},
                "targets": {"group_ids": [shanghai]},
                "schedule": {"kind": "once", "at": "2026-11-22T19:00"},
            },
        ),
        422,
        "schedule_in_past",
    )


def test_daily_weekly_and_cron_in_two_zones(host, frozen_clock):
    shanghai = group(host, "上海群")
    new_york = group(host, "NY group", tz="America/New_York")
    daily = post(
        host,
        [shanghai, new_york],
        {"kind": "daily", "time": "08:00", "until": "2026-11-24T23:00"},
        content={"text": "daily"},
    )
    weekly = post(host, [shanghai], {"kind": "weekly", "time": "21:00", "weekdays": [1, 3]}, content={"text": "weekly"})
    cron = post(host, [new_york], {"kind": "cron", "cron": "30 7 * * 1-5"}, content={"text": "cron"})
    moment = T0
    while moment < datetime(2026, 11, 26, 12, tzinfo=UTC):
        moment += timedelta(minutes=30)
        at(frozen_clock, moment)
    texts = lambda g: [m["text"]["content"] for m in seen(host, g)]  # noqa: E731
    # Shanghai: daily on 23rd and 24th at 08:00; weekly Monday 23rd and Wednesday 25th at 21:00.
    assert texts(shanghai) == ["daily", "weekly", "daily", "weekly"]
    # New York (UTC-5, 07:00 at the start): daily 08:00 on the 22nd, 23rd and 24th; cron 07:30 on weekdays 23-25
    # (the run stops at 07:00 New York time on the 26th).
    assert texts(new_york) == ["daily", "cron", "daily", "cron", "daily", "cron"]
    slots = {
        (o["timezone"], o["slot"]) for o in host.get(f"/api/v1/posts/{daily['id']}/occurrences").get_json()["items"]
    }
    assert ("America/New_York", "2026-11-22T08:00") in slots and ("Asia/Shanghai", "2026-11-22T08:00") not in slots
    ny_due = [
        o["due_at"]
        for o in host.get(f"/api/v1/posts/{cron['id']}/occurrences").get_json()["items"]
        if o["state"] == "dispatched"
    ]
    assert sorted(ny_due)[0] == "2026-11-23T12:30:00+00:00"
    assert host.get(f"/api/v1/posts/{daily['id']}").get_json()["status"] == "finished"
    assert host.get(f"/api/v1/posts/{weekly['id']}").get_json()["status"] == "active"


def test_edit_pause_resume_cancel_touch_only_future(host, frozen_clock):
    gid = group(host)
    created = post(host, [gid], {"kind": "daily", "time": "20:05"}, content={"text": "v1"})
    pid = created["id"]
    at(frozen_clock, T0 + timedelta(minutes=5))
    edited = host.patch(f"/api/v1/posts/{pid}", json={"content": {"text": "v2"}}).get_json()
    assert edited["version"] == 2
    at(frozen_clock, T0 + timedelta(days=1, minutes=5))
    assert [m["text"]["content"] for m in seen(host, gid)] == ["v1", "v2"]
    assert host.post(f"/api/v1/posts/{pid}/pause").get_json()["status"] == "paused"
    assert_error(host.post(f"/api/v1/posts/{pid}/pause"), 409, "post_not_active")
    at(frozen_clock, T0 + timedelta(days=2, minutes=5))
    assert len(seen(host, gid)) == 2
    frozen_clock(T0 + timedelta(days=2, minutes=10))
    assert host.post(f"/api/v1/posts/{pid}/resume").get_json()["status"] == "active"
    at(frozen_clock, T0 + timedelta(days=3, minutes=5))
    assert len(seen(host, gid)) == 3
    host.patch(f"/api/v1/posts/{pid}", json={"schedule": {"kind": "daily", "time": "21:00"}})
    cancelled = host.post(f"/api/v1/posts/{pid}/cancel").get_json()
    assert cancelled["status"] == "cancelled"
    assert_error(host.patch(f"/api/v1/posts/{pid}", json={"content": {"text": "v3"}}), 409, "post_closed")
    at(frozen_clock, T0 + timedelta(days=4, minutes=5))
    states = sorted(o["state"] for o in host.get(f"/api/v1/posts/{pid}/occurrences").get_json()["items"])
    assert states == ["cancelled", "dispatched", "dispatched", "dispatched"]
    assert [d.state for d in deliveries(pid)] == ["sent", "sent", "sent"]


def test_host_refused_on_another_hosts_group_and_post(host, api, frozen_clock):
    other = api.as_user("host2", roles=("host",))
    mine = group(host)
    theirs = group(other, "theirs")
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "text",
                "content": {"text": "x"},
                "targets": {"group_ids": [mine, theirs]},
                "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
            },
        ),
        403,
        "group_not_yours",
    )
    created = post(other, [theirs])
    assert_error(host.get(f"/api/v1/posts/{created['id']}"), 403, "post_not_yours")
    assert_error(host.post(f"/api/v1/posts/{created['id']}/cancel"), 403, "post_not_yours")
    assert_error(host.get(f"/api/v1/groups/{theirs}/deliveries"), 403, "group_not_yours")
    mine_post = post(host, [mine])
    assert_error(host.get(f"/api/v1/posts/{mine_post['id']}/preview?group_id={theirs}"), 403, "group_not_yours")
    # A filter by a host reaches only that host's groups, whatever else matches.
    by_filter = post(host, targets={"filter": {"age_bands": ["1-3y"]}})
    assert by_filter["target_mode"] == "filter"
    at(frozen_clock, T0 + timedelta(minutes=5))
    assert {d.group_id for d in deliveries(by_filter["id"])} == {mine}
    operator = api.as_user("op", roles=("operator",))
    assert operator.get(f"/api/v1/posts/{created['id']}").status_code == 200
    assert_error(api.as_user("mom").get("/api/v1/posts"), 403, "role_required")


def test_filter_targets_resolve_at_send_time(host, frozen_clock):
    first = group(host, "a", tags=["kindergarten", "sunshine"])
    group(host, "b", tags=["other"])
    created = post(
        host, targets={"filter": {"tags": ["kindergarten"]}}, schedule={"kind": "once", "at": "2026-11-22T20:05"}
    )
    late = group(host, "c", tags=["kindergarten"])
    at(frozen_clock, T0 + timedelta(minutes=5))
    assert sorted(d.group_id for d in deliveries(created["id"])) == sorted([first, late])


def test_exactly_once_with_two_scheduler_replicas(app, api, frozen_clock):
    import threading

    frozen_clock(T0)
    host = api.as_user("host1", roles=("host",))
    gids = [group(host, f"g{i}") for i in range(12)]
    created = post(host, gids)
    frozen_clock(T0 + timedelta(minutes=5))
    db.session.remove()
    barrier = threading.Barrier(2)
    errors = []

    def replica():
        with app.app_context():
            try:
                barrier.wait()
                for _ in range(3):
                    tasks.tick()
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = deliveries(created["id"])
    assert sorted(d.group_id for d in rows) == sorted(gids) and {d.state for d in rows} == {"sent"}
    for gid in gids:
        assert len(seen(host, gid)) == 1
    assert engine.dispatch_occurrence(occurrence_id=rows[0].occurrence_id) == 0


test_exactly_once_with_two_scheduler_replicas = pytest.mark.commits(test_exactly_once_with_two_scheduler_replicas)


def test_robot_rate_limit_held(host, frozen_clock, app):
    gid = robot_group(host, "robot-key-0001")
    for i in range(25):
        post(host, [gid], content={"text": f"m{i}"})
    at(frozen_clock, T0 + timedelta(minutes=5))
    redis = get_redis()
    arrived = robot_messages(redis, "robot-key-0001")
    assert len(arrived) == 20
    rows = deliveries()
    assert sorted(d.state for d in rows).count("sent") == 20
    held = [d for d in rows if d.state == "pending"]
    assert len(held) == 5 and all(d.available_at > T0 + timedelta(minutes=5) for d in held)
    assert all(d.error_code is None for d in rows)
    at(frozen_clock, T0 + timedelta(minutes=5, seconds=30))
    assert len(robot_messages(redis, "robot-key-0001")) == 20
    # A minute later the robot's window has room again (the window lives in Redis time: empty it).
    for k in redis.scan_iter(key("robot", "*")):
        redis.delete(k)
    for k in redis.scan_iter(key("sandbox", "robot", "robot-key-0001", "minute", "*")):
        redis.delete(k)
    at(frozen_clock, T0 + timedelta(minutes=7))
    assert len(robot_messages(redis, "robot-key-0001")) == 25
    assert sorted(m["text"]["content"] for m in robot_messages(redis, "robot-key-0001")) == sorted(
        f"m{i}" for i in range(25)
    )


def test_45009_cools_down_then_retries(host, frozen_clock):
    gid = robot_group(host, "robot-key-busy")
    created = post(host, [gid])
    redis = get_redis()
    # Someone else's traffic has used this robot's minute: WeCom answers 45009.
    for minute in (int(time.time() // 60), int(time.time() // 60) + 1):
        redis.set(key("sandbox", "robot", "robot-key-busy", "minute", minute), 20)
    at(frozen_clock, T0 + timedelta(minutes=5))
    (row,) = deliveries(created["id"])
    assert row.state == "pending" and row.attempts == 0 and "45009" in row.error_message
    assert row.available_at >= T0 + timedelta(minutes=6)
    assert redis.pttl(key("robot", channels.robot_id("robot-key-busy"), "cooldown")) > 0
    at(frozen_clock, T0 + timedelta(minutes=5, seconds=20))
    assert deliveries(created["id"])[0].state == "pending" and robot_messages(redis, "robot-key-busy") == []
    for k in list(redis.scan_iter(key("sandbox", "robot", "robot-key-busy", "minute", "*"))) + list(
        redis.scan_iter(key("robot", "*"))
    ):
        redis.delete(k)
    at(frozen_clock, T0 + timedelta(minutes=6, seconds=1))
    assert deliveries(created["id"])[0].state == "sent" and len(robot_messages(redis, "robot-key-busy")) == 1


def test_unknown_outcome_is_never_resent(host, frozen_clock, monkeypatch, api):
    gid = robot_group(host, "robot-key-slow")
    created = post(host, [gid])

    def timeout(*args, **kwargs):
        raise requests.ReadTimeout("read timed out")

    monkeypatch.setattr(requests.Session, "post", timeout)
    at(frozen_clock, T0 + timedelta(minutes=5))
    (row,) = deliveries(created["id"])
    assert row.state == "unknown" and row.error_code == "no_answer"
    monkeypatch.undo()
    for minutes in (6, 30, 120):
        at(frozen_clock, T0 + timedelta(minutes=minutes))
        tasks.reconcile()
    assert deliveries(created["id"])[0].state == "unknown" and robot_messages(get_redis(), "robot-key-slow") == []
    log = host.get(f"/api/v1/posts/{created['id']}/deliveries").get_json()["items"]
    assert log[0]["state"] == "unknown" and "may have been sent" in log[0]["error_message"]
    operator = api.as_user("op", roles=("operator",))
    assert operator.post("/api/v1/admin/deliveries/retry", json={"post_id": created["id"]}).get_json() == {"retried": 0}
    assert operator.post(
        "/api/v1/admin/deliveries/retry", json={"post_id": created["id"], "states": ["unknown"]}
    ).get_json() == {"retried": 1}
    tasks.tick()
    assert deliveries(created["id"])[0].state == "sent" and len(robot_messages(get_redis(), "robot-key-slow")) == 1


def test_worker_lost_mid_send_becomes_unknown(host, frozen_clock, monkeypatch):
    gid = group(host)
    created = post(host, [gid])
    monkeypatch.setattr(engine, "enqueue", lambda *a, **k: None)
    at(frozen_clock, T0 + timedelta(minutes=5))
    (row,) = deliveries(created["id"])
    # The worker claimed it and died before recording the outcome.
    db.session.execute(
        update(Delivery).where(Delivery.id == row.id).values(state="sending", sending_at=T0 + timedelta(minutes=5))
    )
    db.session.commit()
    frozen_clock(T0 + timedelta(minutes=10))
    assert tasks.reconcile()["unknown"] == 1
    tasks.send_chunk([row.id])
    assert deliveries(created["id"])[0].state == "unknown" and seen(host, gid) == []


def test_reconciler_requeues_lost_jobs(host, frozen_clock, monkeypatch):
    gid = group(host)
    created = post(host, [gid])
    monkeypatch.setattr(engine, "enqueue", lambda *a, **k: None)
    at(frozen_clock, T0 + timedelta(minutes=5))
    assert deliveries(created["id"])[0].queued_at is not None
    monkeypatch.undo()
    at(frozen_clock, T0 + timedelta(minutes=6))
    assert deliveries(created["id"])[0].state == "pending"
    frozen_clock(T0 + timedelta(minutes=8))
    assert tasks.reconcile()["requeued"] == 1
    tasks.tick()
    assert deliveries(created["id"])[0].state == "sent" and len(seen(host, gid)) == 1


def test_failures_back_off_then_die_and_operator_retries(host, frozen_clock, app, monkeypatch, api):
    gid = robot_group(host, "robot-key-down")
    revoked = robot_group(host, "invalid-robot-key")
    created = post(host, [gid, revoked])
    monkeypatch.setitem(app.config, "WECOM_WEBHOOK_URL", "http://127.0.0.1:9/cgi-bin/webhook/send")
    moment = T0 + timedelta(minutes=5)
    at(frozen_clock, moment)
    by_group = {d.group_id: d for d in deliveries(created["id"])}
    assert by_group[gid].state == "failed" and by_group[gid].error_code == "unreachable"
    assert by_group[revoked].state == "failed"
    for _ in range(6):
        moment += timedelta(minutes=31)
        at(frozen_clock, moment)
    by_group = {d.group_id: d for d in deliveries(created["id"])}
    assert by_group[gid].state == "dead" and by_group[gid].attempts == sending.MAX_ATTEMPTS
    monkeypatch.undo()
    operator = api.as_user("op", roles=("operator",))
    assert operator.post(
        "/api/v1/admin/deliveries/retry", json={"delivery_ids": [by_group[gid].id, by_group[revoked].id]}
    ).get_json() == {"retried": 2}
    tasks.tick()
    by_group = {d.group_id: d for d in deliveries(created["id"])}
    assert by_group[gid].state == "sent"
    assert by_group[revoked].state == "dead" and by_group[revoked].error_code == "93000"
    assert_error(operator.post("/api/v1/admin/deliveries/retry", json={}), 422, "retry_scope_missing")
    assert_error(host.post("/api/v1/admin/deliveries/retry", json={"post_id": created["id"]}), 403, "role_required")
    log = host.get(f"/api/v1/groups/{revoked}/deliveries").get_json()["items"]
    assert log[0]["error_message"].startswith("invalid webhook url")


def test_misfire_after_downtime(host, frozen_clock, monkeypatch):
    gid = group(host)
    late_post = post(host, [gid], content={"text": "late"})
    at(frozen_clock, T0 + timedelta(minutes=16))
    assert seen(host, gid) == []
    occurrence = host.get(f"/api/v1/posts/{late_post['id']}/occurrences").get_json()["items"][0]
    assert occurrence["state"] == "missed"
    assert [d.state for d in deliveries(late_post["id"])] == ["missed"]
    # Written in time but the workers were down: too late to go out in a burst.
    on_time = post(host, [gid], {"kind": "once", "at": "2026-11-22T20:30"}, content={"text": "queued"})
    monkeypatch.setattr(engine, "enqueue", lambda *a, **k: None)
    at(frozen_clock, T0 + timedelta(minutes=30))
    monkeypatch.undo()
    frozen_clock(T0 + timedelta(minutes=45))
    (row,) = deliveries(on_time["id"])
    assert tasks.send_chunk([row.id]) == {"missed": 1}
    assert seen(host, gid) == []
    figures = host.get(f"/api/v1/groups/{gid}/figures").get_json()
    assert figures["deliveries"]["missed"] == 2 and figures["deliveries"]["sent"] == 0 and figures["posts"] == 2
    assert figures["fans"] == {"casual": 0, "active": 0, "demand": 0, "trust": 0}


def test_product_cards_preview_is_what_is_sent(host, frozen_clock):
    gid = group(host)
    robot = robot_group(host, "robot-key-cards")
    now = T0
    milk = Product(
        source="own",
        external_id="m1",
        title="婴儿配方奶粉 1段",
        price_fen=29900,
        commission_rate_bp=1000,
        is_breastmilk_substitute=True,
        created_at=now,
        updated_at=now,
    )
    toothbrush = Product(
        source="own",
        external_id="t1",
        title="儿童软毛牙刷",
        price_fen=1990,
        commission_rate_bp=1500,
        images=["https://img/t1.png"],
        created_at=now,
        updated_at=now,
    )
    db.session.add_all([milk, toothbrush])
    db.session.commit()
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "product_card",
                "content": {"product_id": milk.id},
                "targets": {"group_ids": [gid]},
                "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
            },
        ),
        422,
        "product_not_advertisable",
    )
    created = post(host, [gid, robot], kind="product_card", content={"product_id": toothbrush.id, "text": "刷牙不哭"})
    preview = host.get(f"/api/v1/posts/{created['id']}/preview?group_id={gid}").get_json()
    card = preview["payload"]["template_card"]
    assert (
        preview["channel"] == "sandbox" and card["card_action"]["type"] == 2 and "19.90" in card["main_title"]["desc"]
    )
    code = parse_qs(urlsplit(card["card_action"]["pagepath"]).query)["code"][0]
    link = db.session.scalar(select(ShareLink).where(ShareLink.code == code))
    assert (link.group_id, link.post_id, link.host_id, link.sharer_id, link.product_id) == (
        gid,
        created["id"],
        host.user["id"],
        host.user["id"],
        toothbrush.id,
    )
    robot_preview = host.get(f"/api/v1/posts/{created['id']}/preview?group_id={robot}").get_json()["payload"]
    at(frozen_clock, T0 + timedelta(minutes=5))
    assert seen(host, gid) == [preview["payload"]]
    assert robot_messages(get_redis(), "robot-key-cards") == [robot_preview]
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "poll",
                "content": {},
                "targets": {"group_ids": [gid]},
                "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
            },
        ),
        422,
        "validation_error",
    )


def test_coupon_drop_carries_the_hosts_share_code(host, frozen_clock, api):
    from tests.coupon_factories import create_template

    gid = group(host)
    operator = api.as_user("op", roles=("operator",))
    platform_coupon = create_template(operator)
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "coupon_drop",
                "content": {"template_id": platform_coupon["id"]},
                "targets": {"group_ids": [gid]},
                "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
            },
        ),
        404,
        "coupon_not_found",
    )
    draft = create_template(operator, activate=False)
    drop = operator.post(
        "/api/v1/posts",
        json={
            "kind": "coupon_drop",
            "content": {"template_id": draft["id"]},
            "targets": {"group_ids": [gid]},
            "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
        },
    )
    assert_error(drop, 409, "coupon_not_shareable")
    created = post(
        operator, [gid], kind="coupon_drop", content={"template_id": platform_coupon["id"], "text": "今晚8点"}
    )
    at(frozen_clock, T0 + timedelta(minutes=5))
    (message,) = seen(host, gid)
    card = message["template_card"]
    assert card["main_title"]["title"] == "立减5元" and card["main_title"]["desc"].startswith("今晚8点")
    code = parse_qs(urlsplit(card["card_action"]["pagepath"]).query)["code"][0]
    landing = api.as_user("mom").get(f"/api/v1/coupon-cards/{code}")
    assert landing.status_code == 200
    assert landing.get_json()["group_id"] == gid and landing.get_json()["post_id"] == created["id"]
    from app.coupons.models import CouponShareCode

    share = db.session.scalar(select(CouponShareCode).where(CouponShareCode.code == code))
    assert (share.group_id, share.post_id, share.sharer_id) == (gid, created["id"], host.user["id"])


def test_a_coupon_drop_for_a_breastmilk_substitute_is_refused_when_scheduled(host, api):
    from tests.coupon_factories import create_template, make_product

    gid = group(host)
    operator = api.as_user("op", roles=("operator",))
    formula = make_product(price_fen=20000)
    formula.is_breastmilk_substitute = True
    db.session.commit()
    coupon = create_template(operator, scope="products", product_ids=[formula.id])
    drop = operator.post(
        "/api/v1/posts",
        json={
            "kind": "coupon_drop",
            "content": {"template_id": coupon["id"]},
            "targets": {"group_ids": [gid]},
            "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
        },
    )
    assert_error(drop, 422, "product_not_advertisable")


def test_customer_group_mass_message_confirmed_by_host(host, frozen_clock, app, client):
    creds = {"corp_id": app.config["WECOM_CORP_ID"], "sender": "zhangsan", "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"}
    gid = group(host, "客户群", channel="wecom_customer_group", credentials=creds)
    created = post(
        host,
        [gid],
        {"kind": "daily", "time": "20:05"},
        kind="miniprogram_card",
        content={"title": "今日育儿知识", "page": "pages/lesson/index?id=7", "pic_media_id": "MEDIA_ID"},
    )
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "text",
                "content": {"text": "again"},
                "targets": {"group_ids": [gid]},
                "schedule": {"kind": "once", "at": "2026-11-23T09:00"},
            },
        ),
        409,
        "daily_mass_message_cap",
    )
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "miniprogram_card",
                "content": {"title": "t", "page": "p"},
                "targets": {"group_ids": [gid]},
                "schedule": {"kind": "once", "at": "2026-11-23T09:00"},
            },
        ),
        422,
        "pic_media_id_required",
    )
    host.post(f"/api/v1/posts/{created['id']}/cancel")
    assert_error(
        host.post(
            "/api/v1/posts",
            json={
                "kind": "text",
                "content": {"text": "x"},
                "targets": {"group_ids": [gid]},
                "schedule": {"kind": "cron", "cron": "0 8,20 * * *"},
            },
        ),
        409,
        "daily_mass_message_cap",
    )
    daily = post(
        host,
        [gid],
        {"kind": "daily", "time": "20:05"},
        kind="miniprogram_card",
        content={"title": "今日育儿知识", "page": "pages/lesson/index?id=7", "pic_media_id": "MEDIA_ID"},
    )
    preview = host.get(f"/api/v1/posts/{daily['id']}/preview?group_id={gid}").get_json()["payload"]
    assert (
        preview["chat_type"] == "group" and preview["sender"] == "<sender>" and preview["chat_id_list"] == ["<chat_id>"]
    )
    assert preview["attachments"][0]["miniprogram"]["pic_media_id"] == "MEDIA_ID"
    at(frozen_clock, T0 + timedelta(minutes=5))
    (row,) = deliveries(daily["id"])
    assert row.state == "submitted" and row.external_id.startswith("msg")
    assert tasks.poll_customer_groups() == {}
    assert client.post(f"/wechat-sandbox/sandbox/groupmsg/{row.external_id}/send").get_json()["errcode"] == 0
    assert tasks.poll_customer_groups() == {"sent": 1}
    assert deliveries(daily["id"])[0].state == "sent"


def test_secrets_never_in_responses(host, frozen_clock, app, api):
    key_value = "robot-secret-key-xyz"
    creds = {"corp_id": app.config["WECOM_CORP_ID"], "sender": "secret-sender-abc", "chat_id": "secret-chat-def"}
    robot = robot_group(host, key_value)
    customer = group(host, "cg", channel="wecom_customer_group", credentials=creds)
    created = post(host, [robot, customer])
    bodies = [
        host.get(f"/api/v1/groups/{robot}"),
        host.get(f"/api/v1/groups/{customer}"),
        host.get("/api/v1/groups"),
        host.get(f"/api/v1/posts/{created['id']}"),
        host.get(f"/api/v1/posts/{created['id']}/preview?group_id={robot}"),
        host.get(f"/api/v1/posts/{created['id']}/preview?group_id={customer}"),
    ]
    at(frozen_clock, T0 + timedelta(minutes=5))
    bodies += [
        host.get(f"/api/v1/posts/{created['id']}/deliveries"),
        host.get(f"/api/v1/groups/{robot}/deliveries"),
        host.get(f"/api/v1/groups/{customer}/figures"),
        api.as_user("op", roles=("operator",)).get("/api/v1/groups"),
    ]
    for response in bodies:
        text = response.get_data(as_text=True)
        assert response.status_code == 200, text
        for secret in (key_value, "secret-sender-abc", "secret-chat-def"):
            assert secret not in text


def test_real_queue_hand_over_and_worker(host, frozen_clock, app, monkeypatch):
    from app.core.worker import run_worker

    gids = [group(host, f"g{i}") for i in range(engine.CHUNK_SIZE + 5)]
    created = post(host, gids)
    monkeypatch.setitem(app.config, "RQ_ASYNC", True)
    at(frozen_clock, T0 + timedelta(minutes=5))
    from rq import Queue

    assert Queue("deliveries", connection=get_redis()).count == 2
    assert {d.state for d in deliveries(created["id"])} == {"pending"}
    run_worker(app, queues=["deliveries"], burst=True)
    assert {d.state for d in deliveries(created["id"])} == {"sent"}
    assert all(len(seen(host, gid)) == 1 for gid in gids)


def test_knowledge_points_go_out_with_the_partners_share(host, frozen_clock, api):
    from tests.affiliate_helpers import make_product
    from tests.content_helpers import KP, approve_all, make_course

    partner = api.as_user("partner", roles=("partner",))
    operator = api.as_user("op", roles=("operator",))
    gid = group(host)
    course, lessons, points = make_course(partner, points=1)
    toothbrush = make_product(title="儿童软毛牙刷")
    with_product = partner.post(
        f"/api/v1/partner/lessons/{lessons[0]['id']}/knowledge-points",
        json=KP | {"title": "选牙刷", "position": 2, "product_ids": [toothbrush.id]},
    )
    assert with_product.status_code == 201, with_product.get_json()
    body = {
        "kind": "knowledge_point",
        "content": {"knowledge_point_id": points[0]["id"]},
        "targets": {"group_ids": [gid]},
        "schedule": {"kind": "once", "at": "2026-11-22T20:05"},
    }
    assert_error(host.post("/api/v1/posts", json=body), 409, "content_not_approved")
    approve_all(partner, operator, course["id"])
    plain = post(host, [gid], kind="knowledge_point", content={"knowledge_point_id": points[0]["id"]})
    carded = post(host, [gid], kind="knowledge_point", content={"knowledge_point_id": with_product.get_json()["id"]})
    at(frozen_clock, T0 + timedelta(minutes=5))
    first, second = seen(host, gid)
    assert first["msgtype"] == "markdown"
    assert (
        first["markdown"]["content"].startswith(f"**{points[0]['title']}**\n")
        and "<" not in first["markdown"]["content"]
    )
    assert "先让宝宝自己玩牙刷。" in first["markdown"]["content"]
    code = parse_qs(urlsplit(second["template_card"]["card_action"]["pagepath"]).query)["code"][0]
    link = db.session.scalar(select(ShareLink).where(ShareLink.code == code))
    from app.content import service as content_service

    assert content_service.content_of(content_id=link.content_id) == ("knowledge_point", with_product.get_json()["id"])
    assert (link.content_author_id, link.post_id, link.group_id, link.host_id) == (
        partner.user["id"],
        carded["id"],
        gid,
        host.user["id"],
    )
    assert {d.state for d in deliveries(plain["id"]) + deliveries(carded["id"])} == {"sent"}


OUTCOMES = {
    "sent": channels.Outcome("sent"),
    "failed": channels.Outcome("failed", error_code="unreachable"),
    "dead": channels.Outcome("dead", error_code="93000"),
    "unknown": channels.Outcome("unknown", error_code="no_answer"),
    "deferred": channels.Outcome("deferred", error_code="45009", retry_after_ms=60_000),
}


def test_delivery_state_machine_never_resends_what_may_have_arrived(host, frozen_clock, monkeypatch):
    """Whatever WeCom answers, in any order, with any clock jumps and reconciler runs: a delivery whose send may
    have arrived (sent or unknown) is never sent again by the engine, and failures end in dead."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    gid = robot_group(host, "robot-key-machine")
    redis = get_redis()
    step = st.one_of(
        st.tuples(st.just("answer"), st.sampled_from(sorted(OUTCOMES))),
        st.tuples(st.just("wait"), st.integers(min_value=0, max_value=40)),
        st.tuples(st.just("reconcile"), st.none()),
    )

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.lists(step, min_size=1, max_size=12))
    def run(steps):
        moment = T0
        frozen_clock(moment)
        db.session.execute(update(Delivery).values(state="dead"))  # earlier examples' rows stay out of the way
        db.session.commit()
        created = post(host, [gid], schedule={"kind": "once", "at": "2026-11-22T20:01"})
        calls: list[str] = []
        answer = ["failed"]

        def fake_send(session, **kwargs):
            calls.append(answer[0])
            return OUTCOMES[answer[0]]

        monkeypatch.setattr(channels, "send_robot", fake_send)
        moment += timedelta(minutes=1)
        for kind, value in steps:
            for k in redis.scan_iter(key("robot", "*")):
                redis.delete(k)
            if kind == "answer":
                answer[0] = value
            elif kind == "wait":
                moment += timedelta(minutes=value)
            frozen_clock(moment)
            if kind == "reconcile":
                tasks.reconcile()
            tasks.tick()
            (row,) = deliveries(created["id"])
            landed = [i for i, c in enumerate(calls) if c in ("sent", "unknown")]
            assert not landed or landed[0] == len(calls) - 1, calls
            failures = sum(c == "failed" for c in calls)
            assert row.attempts <= sending.MAX_ATTEMPTS and failures <= sending.MAX_ATTEMPTS
            if calls:
                last = calls[-1]
                # A cooled-down delivery has not been tried yet: after a long wait it is missed, not sent late.
                expected = {
                    "sent": {"sent"},
                    "unknown": {"unknown"},
                    "dead": {"dead"},
                    "deferred": {"pending", "missed"},
                    "failed": {"failed", "pending", "dead"},
                }[last]
                assert row.state in expected, (calls, row.state)
                if last == "failed" and row.state == "dead":
                    assert failures == sending.MAX_ATTEMPTS
            else:
                assert row.state in ("pending", "missed")
        monkeypatch.undo()

    run()


@pytest.mark.parametrize(
    "schedule, field",
    [
        ({"kind": "once", "at": "9999-12-31T23:59"}, "at"),  # in Los Angeles: its UTC is in year 10000
        ({"kind": "once", "at": "2200-01-01T00:00"}, "at"),
        ({"kind": "daily", "time": "08:00", "until": "9999-12-31T23:00"}, "until"),
        ({"kind": "daily", "time": "08:00", "until": "1999-12-31T23:59"}, "until"),
    ],
)
def test_schedule_wall_times_are_bounded_like_every_instant(host, schedule, field):
    gid = group(host, tz="America/Los_Angeles")
    response = host.post(
        "/api/v1/posts",
        json={"kind": "text", "content": {"text": "x"}, "targets": {"group_ids": [gid]}, "schedule": schedule},
    )
    assert list(assert_error(response, 422, "validation_error")["errors"]["schedule"]) == [field]


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T00:00:00Z",  # datetime's own limits: beyond any real event
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59-05:00",  # whose UTC no datetime holds
        "1999-12-31T23:59:59Z",
        "2200-01-01T00:00:01Z",  # just past the bounds every domain's instants share
    ],
)
def test_group_figures_window_is_bounded_like_every_instant(host, field, value):
    gid = group(host)
    body = assert_error(host.get(f"/api/v1/groups/{gid}/figures", query_string={field: value}), 422, "validation_error")
    assert list(body["errors"]) == [field]


def test_group_figures_count_clicks_claims_orders_and_gmv(host, frozen_clock, api, client):
    import json

    from app.affiliate import service as affiliate
    from app.coupons.flash import drain as coupon_drain
    from app.orders import webhooks
    from tests.affiliate_helpers import make_product, sign_headers
    from tests.coupon_factories import claim, create_template

    gid, other = group(host), group(host, "quiet")
    product = make_product(title="儿童软毛牙刷", price_fen=1990, commission_rate_bp=1500)
    post(host, [gid], kind="product_card", content={"product_id": product.id, "text": "刷牙不哭"})
    at(frozen_clock, T0 + timedelta(minutes=5))
    (message,) = seen(host, gid)
    code = parse_qs(urlsplit(message["template_card"]["card_action"]["pagepath"]).query)["code"][0]

    mom = api.as_user("mom")
    assert mom.post("/api/v1/clicks", json={"code": code}).get_json() == {"counted": True}
    affiliate.persist_clicks()
    template = create_template(api.as_user("op", roles=("operator",)))
    assert claim(mom, template["id"], group_id=gid).status_code == 201
    coupon_drain.drain()  # a flash claim lands through the claim stream
    secret = webhooks.add_source(name="jd-union").secret
    body = json.dumps(
        {
            "event_id": "e1",
            "order": {
                "external_id": "JD1",
                "status": "paid",
                "version": 1,
                "event_at": (T0 + timedelta(minutes=10)).isoformat(),
                "buyer_id": mom.user["id"],
                "tracking_code": code,
                "lines": [{"line_id": "L1", "product_id": product.id, "quantity": 2, "paid_fen": 3980}],
            },
        }
    ).encode()
    frozen_clock(T0 + timedelta(minutes=10))
    assert (
        client.post("/api/v1/webhooks/orders/jd-union", data=body, headers=sign_headers(secret, body)).get_json()[
            "outcome"
        ]
        == "created"
    )

    figures = host.get(f"/api/v1/groups/{gid}/figures").get_json()
    assert (figures["clicks"], figures["claims"], figures["orders"], figures["gmv_fen"], figures["net_gmv_fen"]) == (
        1,
        1,
        1,
        3980,
        3980,
    )
    assert figures["deliveries"]["sent"] == 1 and figures["since"] is None
    quiet = host.get(f"/api/v1/groups/{other}/figures").get_json()
    assert (quiet["clicks"], quiet["claims"], quiet["orders"], quiet["gmv_fen"]) == (0, 0, 0, 0)

    refunded = json.dumps(
        {
            "event_id": "e2",
            "order": {
                "external_id": "JD1",
                "status": "refunded",
                "version": 2,
                "event_at": (T0 + timedelta(minutes=20)).isoformat(),
                "buyer_id": mom.user["id"],
                "tracking_code": code,
                "lines": [
                    {"line_id": "L1", "product_id": product.id, "quantity": 2, "paid_fen": 3980, "refunded_fen": 1990}
                ],
            },
        }
    ).encode()
    assert (
        client.post(
            "/api/v1/webhooks/orders/jd-union", data=refunded, headers=sign_headers(secret, refunded)
        ).get_json()["outcome"]
        == "applied"
    )
    figures = host.get(f"/api/v1/groups/{gid}/figures").get_json()
    assert (figures["gmv_fen"], figures["refunded_fen"], figures["net_gmv_fen"]) == (3980, 1990, 1990)

    before = host.get(
        f"/api/v1/groups/{gid}/figures", query_string={"until": (T0 + timedelta(minutes=5)).isoformat()}
    ).get_json()
    assert (before["clicks"], before["claims"], before["orders"], before["gmv_fen"]) == (0, 0, 0, 0)
    window = {"since": "2026-11-22T20:05:00+08:00", "until": "2026-11-22T20:15:00+08:00"}
    inside = host.get(f"/api/v1/groups/{gid}/figures", query_string=window).get_json()
    assert (inside["clicks"], inside["claims"], inside["orders"], inside["gmv_fen"]) == (1, 1, 1, 3980)
    assert inside["since"].startswith("2026-11-22T12:05:00")
    assert_error(
        host.get(f"/api/v1/groups/{gid}/figures", query_string={"since": "2026-11-22T20:05:00"}),
        422,
        "validation_error",
    )
    assert_error(
        host.get(f"/api/v1/groups/{gid}/figures", query_string={"since": window["until"], "until": window["since"]}),
        422,
        "validation_error",
    )
    widest = host.get(
        f"/api/v1/groups/{gid}/figures", query_string={"since": "2000-01-01T00:00:00Z", "until": "2200-01-01T00:00:00Z"}
    ).get_json()
    assert (widest["clicks"], widest["orders"]) == (1, 1)
    assert_error(api.as_user("host2", roles=("host",)).get(f"/api/v1/groups/{gid}/figures"), 403, "group_not_yours")


def test_rendering_a_delivery_writes_nothing(host, frozen_clock, api, monkeypatch):
    """Codes and a drip's point are made when the occurrence goes out; the sender's render step only reads."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from app.core.db import use_case
    from tests.affiliate_helpers import make_product
    from tests.content_helpers import KP, approve_all, make_course
    from tests.coupon_factories import create_template

    partner = api.as_user("partner", roles=("partner",))
    operator = api.as_user("op", roles=("operator",))
    gid, robot = group(host), robot_group(host, "robot-key-render")
    course, lessons, _ = make_course(partner, points=1)
    toothbrush = make_product(title="儿童软毛牙刷")
    carded = partner.post(
        f"/api/v1/partner/lessons/{lessons[0]['id']}/knowledge-points",
        json=KP | {"title": "选牙刷", "position": 2, "product_ids": [toothbrush.id]},
    ).get_json()
    approve_all(partner, operator, course["id"])
    coupon = create_template(operator)
    created = [
        post(host, [gid, robot], kind="product_card", content={"product_id": toothbrush.id}),
        post(operator, [gid, robot], kind="coupon_drop", content={"template_id": coupon["id"]}),
        post(host, [gid, robot], kind="knowledge_point", content={"course_id": course["id"]}),
        post(host, [gid, robot], kind="knowledge_point", content={"knowledge_point_id": carded["id"]}),
    ]
    monkeypatch.setattr(engine, "enqueue", lambda *a, **k: None)
    at(frozen_clock, T0 + timedelta(minutes=5))
    ids = [d.id for c in created for d in deliveries(c["id"])]
    assert len(ids) == 8 and {d.state for d in deliveries()} == {"pending"}
    with use_case():
        chunk = sending.claim(ids)
    statements: list[str] = []

    def seen_statement(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(Engine, "before_cursor_execute", seen_statement)
    try:
        with use_case():
            sending.render(chunk)
    finally:
        event.remove(Engine, "before_cursor_execute", seen_statement)
    assert statements and set(statements) <= {"SELECT", "BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}, statements
    assert len(chunk.payloads) == 8 and chunk.outcomes == {}
    sending.send(chunk)
    with use_case():
        assert sending.record(chunk) == {"sent": 8}
    kinds_seen = [m["msgtype"] for m in seen(host, gid)]
    pages = [m["template_card"]["card_action"]["pagepath"] for m in seen(host, gid) if "template_card" in m]
    assert kinds_seen.count("template_card") == 3 and all("code=" in page for page in pages)


def test_every_kind_is_one_class_the_posts_table_allows():
    from app.delivery import kinds
    from app.delivery.models import POST_KINDS

    assert kinds.names() == sorted(POST_KINDS)
    with pytest.raises(Invalid) as unknown:
        kinds.of("poll")
    assert unknown.value.code == "post_kind_unavailable"
