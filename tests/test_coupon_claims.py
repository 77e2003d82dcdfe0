"""Claiming coupons: the 409s, limits, idempotency, origins, the Redis gate and its reconciliation."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.accounts import service as accounts
from app.core.clock import now_utc
from app.core.db import db, use_case
from app.coupons import claims
from app.coupons.flash import drain, gate, loading
from app.coupons.models import CouponTemplate, UserCoupon
from tests.coupon_factories import claim, create_template, iso, make_product
from tests.helpers import ApiClient, assert_error


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


def rows(template_id: int) -> list[UserCoupon]:
    """The template's coupons in the database, after landing every granted claim."""
    drain.drain()
    db.session.expire_all()
    return list(db.session.scalars(select(UserCoupon).where(UserCoupon.template_id == template_id)))


def test_claim_grants_a_coupon_valid_from_the_claim(api, operator):
    template = create_template(operator, valid_days=3)
    mom = api.as_user("mom")
    response = claim(mom, template["id"])
    assert response.status_code == 201, response.get_json()
    coupon = response.get_json()
    assert coupon["status"] == "available" and coupon["template_id"] == template["id"]
    assert coupon["headline"] == "立减5.00元"
    from datetime import datetime

    span = datetime.fromisoformat(coupon["valid_until"]) - datetime.fromisoformat(coupon["valid_from"])
    assert span == timedelta(days=3)
    assert gate.snapshot(template_id=template["id"])["remaining"] == 9
    # Granted from Redis alone: the row is on its way through the claim stream.
    assert len(gate.in_flight(template_id=template["id"])) == 1
    assert db.session.get(UserCoupon, coupon["id"]) is None


def test_a_claimed_coupon_is_listed_and_usable_at_once(api, operator):
    template = create_template(operator)
    mom = api.as_user("mom")
    coupon = claim(mom, template["id"]).get_json()
    listed = mom.get("/api/v1/me/coupons").get_json()["items"]
    assert [c["id"] for c in listed] == [coupon["id"]]
    assert listed[0] == coupon
    assert gate.in_flight(template_id=template["id"]) == [] and gate.not_landed(user_id=mom.user["id"]) == 0
    second = create_template(operator)
    fresh = claim(mom, second["id"]).get_json()
    product = make_product(price_fen=3000)
    order = mom.post(
        "/api/v1/orders",
        json={"lines": [{"product_id": product.id, "quantity": 1}], "coupon_id": fresh["id"]},
        headers={"Idempotency-Key": "pay-now"},
    )
    assert order.status_code == 201, order.get_json()
    assert order.get_json()["order"]["discount_fen"] == 500
    db.session.expire_all()
    assert db.session.get(UserCoupon, fresh["id"]).status == "reserved"


@pytest.mark.parametrize("claim_gate", ["redis", "sql"])
def test_same_key_replays_and_a_second_claim_hits_the_limit(api, operator, claim_gate):
    template = create_template(operator, claim_gate=claim_gate)
    mom = api.as_user("mom")
    first = claim(mom, template["id"], key="tap-1")
    again = claim(mom, template["id"], key="tap-1")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert_error(claim(mom, template["id"], key="tap-1", group_id=7), 422, "idempotency_key_reused")
    assert_error(claim(mom, template["id"], key="tap-2"), 409, "coupon_limit_reached")
    assert [c.id for c in rows(template["id"])] == [first.get_json()["id"]]
    assert db.session.get(CouponTemplate, template["id"]).claimed == 1
    # After landing, a retry still replays the same coupon.
    assert claim(mom, template["id"], key="tap-1").get_json() == first.get_json()


@pytest.mark.parametrize(
    "first_gate, second_gate", [("redis", "redis"), ("redis", "sql"), ("sql", "redis"), ("sql", "sql")]
)
def test_a_key_used_for_one_coupon_is_refused_for_another(api, operator, first_gate, second_gate):
    one, other = create_template(operator, claim_gate=first_gate), create_template(operator, claim_gate=second_gate)
    mom = api.as_user("mom")
    first = claim(mom, one["id"], key="tap")
    assert first.status_code == 201
    assert_error(claim(mom, other["id"], key="tap"), 422, "idempotency_key_reused")
    assert rows(other["id"]) == []
    assert claim(mom, one["id"], key="tap").get_json() == first.get_json()  # the key still replays its own claim
    assert claim(api.as_user("dad"), one["id"], key="tap").status_code == 201  # keys are per user


@pytest.mark.parametrize("claim_gate", ["redis", "sql"])
def test_out_of_stock(api, operator, claim_gate):
    template = create_template(operator, stock=2, claim_gate=claim_gate)
    for name in ("a", "b"):
        assert claim(api.as_user(name), template["id"]).status_code == 201
    assert_error(claim(api.as_user("c"), template["id"]), 409, "coupon_out_of_stock")
    assert len(rows(template["id"])) == 2


def test_per_user_and_per_day_limits(api, operator, frozen_clock):
    template = create_template(operator, per_user_limit=2, per_day_limit=1, stock=10)
    mom = api.as_user("mom")
    assert claim(mom, template["id"]).status_code == 201
    assert_error(claim(mom, template["id"]), 409, "coupon_daily_limit_reached")
    frozen_clock(now_utc() + timedelta(hours=20))
    assert claim(mom, template["id"]).status_code == 201
    frozen_clock(now_utc() + timedelta(hours=40))
    assert_error(claim(mom, template["id"]), 409, "coupon_ended")


@pytest.mark.parametrize(
    "zone, instants",
    [
        # China: the day turns at 16:00 UTC.
        (
            "Asia/Shanghai",
            [
                ("2026-11-22T15:59:59.999999+00:00", "20261122"),
                ("2026-11-22T16:00:00+00:00", "20261123"),
                ("2026-11-23T15:59:59+00:00", "20261123"),
                ("2026-11-23T16:00:00+00:00", "20261124"),
                ("2026-11-22T16:00:00+00:00", "20261123"),
            ],
        ),
        # New York's 2026-11-01 is 25 hours long (DST ends): its day must not end at 04:00 UTC on the 2nd.
        (
            "America/New_York",
            [
                ("2026-11-01T04:00:00+00:00", "20261101"),
                ("2026-11-02T04:30:00+00:00", "20261101"),
                ("2026-11-02T05:00:00+00:00", "20261102"),
                ("2026-11-01T03:59:59+00:00", "20261031"),
            ],
        ),
    ],
)
def test_claim_day_follows_the_coupon_zone_across_midnights(app, monkeypatch, zone, instants):
    monkeypatch.setitem(app.config, "COUPON_DAY_TIMEZONE", zone)
    for instant, expected in instants:
        day, compact = claims.claim_day(datetime.fromisoformat(instant))
        assert (compact, day.strftime("%Y%m%d")) == (expected, expected), instant


def test_limit_of_two_gives_two(api, operator):
    template = create_template(operator, per_user_limit=2)
    mom = api.as_user("mom")
    assert [claim(mom, template["id"]).status_code for _ in range(3)][:2] == [201, 201]
    assert sorted(c.seq for c in rows(template["id"])) == [1, 2]


def test_window_and_status_refusals(api, operator, frozen_clock):
    now = now_utc()
    later = create_template(operator, claim_starts_at=iso(now + timedelta(hours=1)))
    mom = api.as_user("mom")
    assert_error(claim(mom, later["id"]), 409, "coupon_not_started")
    current = create_template(operator)
    operator.post(f"/api/v1/coupon-templates/{current['id']}/status", json={"status": "paused"})
    assert_error(claim(mom, current["id"]), 409, "coupon_paused")
    draft = create_template(operator, activate=False)
    assert_error(claim(mom, draft["id"]), 404, "coupon_not_found")
    assert_error(claim(mom, 987654321), 404, "coupon_not_found")
    window = create_template(
        operator, validity_kind="window", valid_from=iso(now), valid_until=iso(now + timedelta(hours=5))
    )
    frozen_clock(now + timedelta(hours=6))
    assert_error(claim(mom, window["id"]), 409, "coupon_ended")
    frozen_clock(now + timedelta(days=2))
    assert_error(claim(mom, later["id"]), 409, "coupon_ended")
    ended = create_template(operator)
    operator.post(f"/api/v1/coupon-templates/{ended['id']}/status", json={"status": "ended"})
    assert_error(claim(mom, ended["id"]), 409, "coupon_ended")


def test_claim_needs_an_idempotency_key_and_a_login(api, operator):
    template = create_template(operator)
    mom = api.as_user("mom")
    assert_error(mom.post(f"/api/v1/coupons/{template['id']}/claim", json={}), 428, "idempotency_key_required")
    assert_error(
        api.post(f"/api/v1/coupons/{template['id']}/claim", json={}, headers={"Idempotency-Key": "x"}),
        401,
        "unauthenticated",
    )


def test_claim_records_its_origin(api, operator):
    template = create_template(operator)
    other = create_template(operator)
    sharer = api.as_user("sharer")
    card = sharer.post(f"/api/v1/coupons/{template['id']}/cards", json={"group_id": 5, "post_id": 9}).get_json()
    assert card["type"] == "coupon" and card["claimable"] and card["group_id"] == 5
    assert card["miniprogram"]["page"].endswith(card["share_code"])
    again = sharer.post(f"/api/v1/coupons/{template['id']}/cards", json={"group_id": 5, "post_id": 9}).get_json()
    assert again["share_code"] == card["share_code"]
    assert api.get(f"/api/v1/coupon-cards/{card['share_code']}").get_json()["template_id"] == template["id"]
    mom = api.as_user("mom")
    assert_error(claim(mom, other["id"], share_code=card["share_code"]), 404, "share_code_not_found")
    coupon = claim(mom, template["id"], share_code=card["share_code"].lower()).get_json()
    assert (coupon["origin_share_code"], coupon["origin_group_id"], coupon["origin_post_id"]) == (
        card["share_code"],
        5,
        9,
    )
    assert rows(template["id"])[0].origin_sharer_id == sharer.user["id"]
    # The gate's answer (rendered by hand) reads exactly as the landed row through UserCouponSchema.
    assert mom.get("/api/v1/me/coupons").get_json()["items"] == [coupon]
    direct = claim(api.as_user("mom2"), template["id"], group_id=11, post_id=12).get_json()
    assert (direct["origin_share_code"], direct["origin_group_id"], direct["origin_post_id"]) == (None, 11, 12)


def test_cards_only_for_live_coupons(api, operator):
    draft = create_template(operator, activate=False)
    mom = api.as_user("mom")
    assert_error(mom.post(f"/api/v1/coupons/{draft['id']}/cards", json={}), 409, "coupon_not_shareable")
    assert_error(api.get("/api/v1/coupon-cards/NOPE"), 404, "share_code_not_found")


def test_no_card_advertises_a_breastmilk_substitute(api, operator):
    """A coupon naming infant formula in its scope cannot be carried into groups (Advertising Law art. 20)."""
    formula = make_product(price_fen=20000)
    formula.is_breastmilk_substitute = True
    db.session.commit()
    toy = make_product(price_fen=5000)
    for_formula = create_template(operator, scope="products", product_ids=[toy.id, formula.id])
    sharer = api.as_user("sharer")
    assert_error(sharer.post(f"/api/v1/coupons/{for_formula['id']}/cards", json={}), 422, "product_not_advertisable")
    excluding = create_template(operator, excluded_product_ids=[formula.id])
    assert sharer.post(f"/api/v1/coupons/{excluding['id']}/cards", json={}).status_code == 200


def test_a_lost_gate_is_rebuilt_from_the_database(app, api, operator):
    template = create_template(operator, stock=3)
    assert claim(api.as_user("a"), template["id"]).status_code == 201
    drain.drain()
    app.extensions["redis"].flushdb()
    assert claim(api.as_user("b"), template["id"]).status_code == 201
    assert gate.snapshot(template_id=template["id"])["remaining"] == 1
    assert_error(claim(api.as_user("a"), template["id"]), 409, "coupon_limit_reached")
    assert len(rows(template["id"])) == 2


def test_a_grant_the_database_refuses_is_kept_and_reported(app, api, operator, caplog, monkeypatch):
    monkeypatch.setattr(drain.log, "disabled", False)  # the migrations' logging config disables loggers
    template = create_template(operator, stock=5)
    mom = api.as_user("mom")
    assert claim(mom, template["id"]).status_code == 201
    drain.drain()
    # A gate that lost count (it must not): it grants the same user's first coupon again.
    app.extensions["redis"].hdel(gate._gate(template["id"]), f"u:{mom.user['id']}")
    told = claim(mom, template["id"])
    assert told.status_code == 201
    drain.drain()
    # The database refuses it (the user already holds seq 1); the grant is not dropped silently.
    assert len(rows(template["id"])) == 1
    (refused,) = gate.refused(template_id=template["id"])
    assert (refused["c"], refused["u"]) == (str(told.get_json()["id"]), str(mom.user["id"]))
    assert refused["reason"].startswith("conflict")
    assert "refused by the database" in caplog.text
    assert gate.in_flight(template_id=template["id"]) == [] and gate.not_landed(user_id=mom.user["id"]) == 0
    (report,) = loading.reconcile(template_id=template["id"])
    assert (report.claimed, report.gate_remaining, report.refused) == (1, 4, 1)
    assert gate.snapshot(template_id=template["id"])[f"u:{mom.user['id']}"] == 1


def test_rebuilding_counts_grants_still_in_the_stream(api, operator):
    template = create_template(operator, stock=5)
    assert claim(api.as_user("a"), template["id"]).status_code == 201
    (report,) = loading.reconcile(template_id=template["id"])
    assert (report.claimed, report.gate_remaining, report.in_flight) == (1, 4, 0)
    b = api.as_user("b")
    assert claim(b, template["id"]).status_code == 201
    # A rebuild without landing first (activation, a lost gate): b's grant is in flight and counts.
    assert loading.load_gate(template_id=template["id"])
    snapshot = gate.snapshot(template_id=template["id"])
    assert snapshot["remaining"] == 3 and snapshot[f"u:{b.user['id']}"] == 1
    assert_error(claim(b, template["id"]), 409, "coupon_limit_reached")
    assert len(rows(template["id"])) == 2


def test_the_drain_lands_each_grant_once_after_a_crash_before_acking(api, operator, monkeypatch):
    template = create_template(operator, stock=5)
    coupons = [claim(api.as_user(name), template["id"]).get_json()["id"] for name in ("a", "b", "c")]

    def crash(entries, refused):
        raise RuntimeError("killed between the commit and the ack")

    with monkeypatch.context() as patched:
        patched.setattr(gate, "settle", crash)
        with pytest.raises(RuntimeError):
            drain.drain()
    db.session.expire_all()
    assert sorted(c.id for c in db.session.scalars(select(UserCoupon))) == sorted(coupons)
    assert len(gate.in_flight(template_id=template["id"])) == 3  # committed, still pending in the stream
    assert drain.drain() == 3  # taken over and landed again: no new rows, no second count
    assert sorted(c.id for c in rows(template["id"])) == sorted(coupons)
    assert db.session.get(CouponTemplate, template["id"]).claimed == 3
    assert gate.in_flight(template_id=template["id"]) == [] and gate.refused() == []


def test_reconcile_repairs_a_counter_that_disagrees_with_its_rows(api, operator):
    template = create_template(operator, stock=5)
    assert claim(api.as_user("a"), template["id"]).status_code == 201
    drain.drain()
    db.session.execute(CouponTemplate.__table__.update().where(CouponTemplate.id == template["id"]).values(claimed=3))
    db.session.commit()
    (report,) = loading.reconcile(template_id=template["id"])
    assert report.db_repaired and report.claimed == 1 and report.gate_remaining == 4


def test_reconcile_command(app, api, operator):
    template = create_template(operator, stock=5)
    assert claim(api.as_user("a"), template["id"]).status_code == 201
    result = app.test_cli_runner().invoke(args=["coupons", "reconcile"])
    assert result.exit_code == 0, result.output
    assert f"template {template['id']}: claimed 1/5, gate remaining 4, in flight 0" in result.output
    assert claim(api.as_user("b"), template["id"]).status_code == 201
    result = app.test_cli_runner().invoke(args=["coupons", "drain"])
    assert result.output.strip() == "1 granted claim(s) landed"


def test_ending_a_drop_lands_its_grants_before_the_budget_settles(api, operator):
    template = create_template(operator, stock=5)
    for name in ("a", "b"):
        assert claim(api.as_user(name), template["id"]).status_code == 201
    ended = operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "ended"}).get_json()
    assert ended["claimed"] == 2 and gate.in_flight(template_id=template["id"]) == []
    assert_error(claim(api.as_user("c"), template["id"]), 409, "coupon_ended")


def test_gate_and_sql_claims_never_share_an_id(api, operator):
    gated, plain = create_template(operator, stock=50), create_template(operator, stock=50, claim_gate="sql")
    told = []
    for i in range(12):
        mom = api.as_user(f"m{i}")
        told += [claim(mom, gated["id"]).get_json()["id"], claim(mom, plain["id"]).get_json()["id"]]
    assert len(set(told)) == len(told)
    assert sorted(c.id for c in rows(gated["id"]) + rows(plain["id"])) == sorted(told)


def test_coupon_centre_counts_a_drop_from_its_gate(api, operator):
    template = create_template(operator, stock=1)
    mom = api.as_user("mom")
    assert claim(mom, template["id"]).status_code == 201
    detail = mom.get(f"/api/v1/coupons/{template['id']}").get_json()
    assert (detail["state"], detail["stock_left"]) == ("out_of_stock", 0)


def _tokens(prefix: str, n: int) -> list[str]:
    with use_case():  # logged in before the burst's threads, which use their own sessions
        return [accounts.login(code=f"sandbox:{prefix}{i}").token for i in range(n)]


def _burst(app, template_id: int, tokens: list[str], attempts: int, workers: int = 12) -> list[tuple[int, int, dict]]:
    def attempt(i: int):
        client = ApiClient(app.test_client(), tokens[i % len(tokens)])
        response = claim(client, template_id, key=f"burst-{i}")
        return i % len(tokens), response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(attempt, range(attempts)))


@pytest.mark.commits
@pytest.mark.parametrize("claim_gate, attempts, users, stock", [("redis", 2000, 500, 100), ("sql", 2000, 500, 100)])
def test_flash_drop_never_oversells(app, api, operator, claim_gate, attempts, users, stock):
    template = create_template(operator, stock=stock, claim_gate=claim_gate)
    tokens = _tokens(f"flash-{claim_gate}-", users)
    results = _burst(app, template["id"], tokens, attempts)
    granted = [(user, body["id"]) for user, status, body in results if status == 201]
    refused = {body["code"] for _, status, body in results if status != 201}
    assert len(granted) == stock
    assert len({user for user, _ in granted}) == stock
    assert refused <= {"coupon_out_of_stock", "coupon_limit_reached"}
    drain.drain()
    db.session.expire_all()
    assert db.session.get(CouponTemplate, template["id"]).claimed == stock
    held = db.session.execute(
        select(UserCoupon.id, UserCoupon.user_id).where(UserCoupon.template_id == template["id"])
    ).all()
    # Every told-claimed coupon is in the database under the id its user was told, and nobody holds two.
    assert sorted(coupon for _, coupon in granted) == sorted(coupon for coupon, _ in held)
    assert len({user for _, user in held}) == stock
    if claim_gate == "redis":
        snapshot = gate.snapshot(template_id=template["id"])
        assert snapshot["remaining"] == 0 and sum(v for k, v in snapshot.items() if k.startswith("u:")) == stock
        assert gate.in_flight(template_id=template["id"]) == [] and gate.refused() == []


def _statements(app):
    from sqlalchemy import event

    seen = []
    engine = db.engine

    def count(*args, **kwargs):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(engine, "before_cursor_execute", count)


def test_a_drop_is_claimed_from_redis_without_the_database(app, api, operator):
    template = create_template(operator, stock=2)
    first, winner, loser = api.as_user("first"), api.as_user("winner"), api.as_user("loser")
    assert claim(first, template["id"], key="f-1").status_code == 201  # this process now knows the template
    winner.get("/api/v1/me"), loser.get("/api/v1/me")  # sessions cached, as in a drop
    seen, stop = _statements(app)
    try:
        won = claim(winner, template["id"], key="w-1")
        assert won.status_code == 201
        assert_error(claim(loser, template["id"], key="l-1"), 409, "coupon_out_of_stock")
        assert_error(claim(winner, template["id"], key="w-2"), 409, "coupon_limit_reached")
        replay = claim(winner, template["id"], key="w-1")
        assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.get_json() == won.get_json()
        assert seen == []
    finally:
        stop()


def test_retries_replay_after_the_gate_is_rebuilt(app, api, operator):
    template = create_template(operator, stock=1)
    mom = api.as_user("mom")
    first = claim(mom, template["id"], key="tap")
    gate.drop(template_id=template["id"])
    loading.reconcile(template_id=template["id"])
    again = claim(mom, template["id"], key="tap")
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert_error(claim(mom, template["id"], key="other"), 409, "coupon_limit_reached")


def test_paused_and_finished_templates_are_refused_with_their_state(api, operator, frozen_clock):
    template = create_template(operator, stock=1)
    assert claim(api.as_user("a"), template["id"]).status_code == 201
    mom = api.as_user("mom")
    assert_error(claim(mom, template["id"]), 409, "coupon_out_of_stock")
    operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "paused"})
    assert_error(claim(mom, template["id"]), 409, "coupon_paused")
    operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "active"})
    assert_error(claim(mom, template["id"]), 409, "coupon_out_of_stock")
    frozen_clock(now_utc() + timedelta(days=2))
    assert_error(claim(mom, template["id"]), 409, "coupon_ended")


def test_pausing_a_template_without_a_gate_leaves_no_half_gate(app, api, operator):
    template = create_template(operator, stock=3)
    gate.drop(template_id=template["id"])
    operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "paused"})
    assert gate.snapshot(template_id=template["id"]) is None
    operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "active"})
    assert claim(api.as_user("mom"), template["id"]).status_code == 201


def test_a_rebuild_counts_a_grant_that_lands_while_it_reads(api, operator, monkeypatch):
    template = create_template(operator, stock=5, per_user_limit=1)
    mom = api.as_user("mom")
    assert claim(mom, template["id"]).status_code == 201  # in flight
    real = gate.rebuild

    def landed_meanwhile(**kwargs):
        # The rebuild has read the rows; a drain (scheduled, or a reader's) lands the grant before the gate is rewritten.
        drain.drain()
        return real(**kwargs)

    monkeypatch.setattr(gate, "rebuild", landed_meanwhile)
    assert loading.load_gate(template_id=template["id"])
    monkeypatch.setattr(gate, "rebuild", real)
    snapshot = gate.snapshot(template_id=template["id"])
    assert (snapshot["remaining"], snapshot.get(f"u:{mom.user['id']}")) == (4, 1)
    assert_error(claim(mom, template["id"]), 409, "coupon_limit_reached")
    assert len(rows(template["id"])) == 1 and gate.refused() == []


def test_a_rebuild_across_midnight_keeps_the_new_days_claims(api, operator, frozen_clock, monkeypatch):
    # China's day turns at 16:00 UTC; the rebuild starts just before, a claim lands just after.
    frozen_clock(datetime.fromisoformat("2026-11-22T15:59:59+00:00"))
    template = create_template(operator, stock=10, per_user_limit=3, per_day_limit=1)
    mom = api.as_user("mom")
    real = gate.rebuild

    def claimed_after_midnight(**kwargs):
        frozen_clock(datetime.fromisoformat("2026-11-22T16:00:01+00:00"))
        assert claim(mom, template["id"]).status_code == 201
        return real(**kwargs)

    monkeypatch.setattr(gate, "rebuild", claimed_after_midnight)
    assert loading.load_gate(template_id=template["id"])
    monkeypatch.setattr(gate, "rebuild", real)
    assert_error(claim(mom, template["id"]), 409, "coupon_daily_limit_reached")
    assert len(rows(template["id"])) == 1 and gate.refused() == []


@pytest.mark.parametrize("status, code", [("paused", "coupon_paused"), ("ended", "coupon_ended")])
def test_a_pause_or_end_during_a_rebuild_is_not_undone_by_it(app, api, operator, monkeypatch, status, code):
    template = create_template(operator, stock=5)
    real = gate.rebuild

    def changed_meanwhile(**kwargs):
        # The rebuild (a reconcile) read the template live; the operator's change commits and closes the gate.
        with app.app_context():
            changed = operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": status})
            assert changed.status_code == 200
        return real(**kwargs)

    monkeypatch.setattr(gate, "rebuild", changed_meanwhile)
    assert loading.load_gate(template_id=template["id"])
    monkeypatch.setattr(gate, "rebuild", real)
    assert_error(claim(api.as_user("mom"), template["id"]), 409, code)
    assert rows(template["id"]) == []


def test_a_rebuild_while_a_drop_ends_cannot_reopen_it_past_the_budget_release(api, operator, monkeypatch):
    host = api.as_user("host-a", roles=("host",))
    budget = operator.post("/api/v1/coupon-budgets", json={"host_id": host.user["id"], "budget_fen": 5000}).get_json()
    template = create_template(host, budget_id=budget["id"], stock=10)
    mom = api.as_user("mom")
    real = drain.drain
    told = []

    def rebuilt_meanwhile(**kwargs):
        # Ending: the gate is closed and drained; a rebuild that read the template live writes it before the end commits.
        landed = real(**kwargs)
        assert loading.load_gate(template_id=template["id"])
        told.append(claim(mom, template["id"]))
        return landed

    monkeypatch.setattr(drain, "drain", rebuilt_meanwhile)
    ended = host.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "ended"})
    monkeypatch.setattr(drain, "drain", real)
    assert ended.status_code == 200 and ended.get_json()["budget_committed_fen"] == 0
    assert_error(told[0], 409, "coupon_ended")
    assert rows(template["id"]) == []
    assert host.get("/api/v1/coupon-budgets").get_json()["items"][0]["committed_fen"] == 0


@pytest.mark.commits  # two sessions: the pause must commit on its own, as it would in production
def test_an_end_that_loses_a_race_leaves_the_gate_following_the_database(app, api, operator, monkeypatch):
    template = create_template(operator, stock=5)
    path = f"/api/v1/coupon-templates/{template['id']}/status"
    real = drain.drain

    def paused_meanwhile(**kwargs):
        # The end has closed the gate; another operator's pause commits before the end's status update.
        monkeypatch.setattr(drain, "drain", real)
        with app.app_context():
            assert operator.post(path, json={"status": "paused"}).status_code == 200
        return real(**kwargs)

    monkeypatch.setattr(drain, "drain", paused_meanwhile)
    assert_error(operator.post(path, json={"status": "ended"}), 409, "coupon_template_changed")
    mom = api.as_user("mom")
    assert_error(claim(mom, template["id"]), 409, "coupon_paused")
    assert operator.post(path, json={"status": "active"}).status_code == 200
    assert claim(mom, template["id"]).status_code == 201
