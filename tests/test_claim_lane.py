"""The claim lane answers gated claims before Flask's request cycle, and leaves the rest to the route's view.

Every answer must be the one the Flask view gives: the same statuses, codes, headers and bodies, with the
lane on or off. `request_started` fires only when Flask dispatches a request, which tells who answered.
"""

import logging

import pytest
from flask import request_started

from app.core.db import db
from app.coupons.flash import lane
from app.coupons.models import UserCoupon
from tests.coupon_factories import claim, create_template

CLAIM = "/api/v1/coupons/{}/claim"


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


@pytest.fixture
def flask_dispatches(app):
    seen = []

    def started(sender, **extra):
        seen.append(1)

    request_started.connect(started, app)
    yield seen
    request_started.disconnect(started, app)


@pytest.fixture
def without_lane(app):
    app.config["COUPON_CLAIM_LANE"] = False
    yield
    app.config["COUPON_CLAIM_LANE"] = True


def _answer(response) -> tuple:
    body = response.get_json(silent=True)
    shape = sorted(body) if isinstance(body, dict) else body
    code = body.get("code") if isinstance(body, dict) else None
    return response.status_code, code, response.headers.get("Idempotent-Replayed"), response.mimetype, shape


def test_grants_refusals_and_replays_never_enter_flask(api, operator, flask_dispatches):
    template = create_template(operator, stock=1, per_user_limit=1, claim_gate="redis")
    mom, dad = api.as_user("mom"), api.as_user("dad")
    # A session no process has checked since login is checked in full by the view once (test_claim_sessions).
    assert mom.get("/api/v1/me").status_code == dad.get("/api/v1/me").status_code == 200
    flask_dispatches.clear()
    granted = claim(mom, template["id"], key="mom-1", share_code=None)
    assert granted.status_code == 201 and granted.get_json()["template_id"] == template["id"]
    replayed = claim(mom, template["id"], key="mom-1", share_code=None)
    assert (replayed.status_code, replayed.headers["Idempotent-Replayed"]) == (201, "true")
    assert replayed.get_json() == granted.get_json()
    assert (claim(mom, template["id"], key="mom-2").get_json()["code"]) == "coupon_limit_reached"
    refused = claim(dad, template["id"], key="dad-1")
    assert (refused.status_code, refused.get_json()["code"], refused.get_json()["status"]) == (
        409,
        "coupon_out_of_stock",
        409,
    )
    assert flask_dispatches == []


REQUESTS = {
    # name: (headers, body keyword arguments for the test client)
    "no key": ({"Idempotency-Key": ""}, {"json": {}}),
    "key too long": ({"Idempotency-Key": "k" * 300}, {"json": {}}),
    "no token": ({"Authorization": ""}, {"json": {}}),
    "basic auth": ({"Authorization": "Basic Zm9vOmJhcg=="}, {"json": {}}),
    "unknown token": ({"Authorization": "Bearer 1.nope"}, {"json": {}}),
    "text body": ({}, {"data": "{}", "content_type": "text/plain"}),
    "bad json": ({}, {"data": "{", "content_type": "application/json"}),
    "a list": ({}, {"json": []}),
    "null": ({}, {"data": "null", "content_type": "application/json"}),
    "unknown field": ({}, {"json": {"coupon": 1}}),
    "long share code": ({}, {"json": {"share_code": "x" * 17}}),
    "string group": ({}, {"json": {"group_id": "one"}}),
    "big body": ({}, {"json": {"share_code": "x" * 5000}}),
    "nested deep": ({}, {"data": "[" * 2000 + "]" * 2000, "content_type": "application/json"}),  # fits the lane's 4 KiB
    "lone surrogate": ({}, {"json": {"share_code": "\ud800"}}),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_requests_the_route_refuses_are_the_views_to_answer(app, api, operator, flask_dispatches, name):
    headers, kwargs = REQUESTS[name]
    answers = []
    for lane_on in (True, False):
        app.config["COUPON_CLAIM_LANE"] = lane_on
        template = create_template(operator, stock=5, claim_gate="redis")
        mom = api.as_user(f"mom-{lane_on}")
        flask_dispatches.clear()
        sent = {"Authorization": f"Bearer {mom.token}", "Idempotency-Key": f"k-{lane_on}", **headers}
        answers.append(_answer(mom.client.post(CLAIM.format(template["id"]), headers=sent, **kwargs)))
        assert flask_dispatches == [1]
    app.config["COUPON_CLAIM_LANE"] = True
    assert answers[0] == answers[1] and 400 <= answers[0][0] < 500, answers


@pytest.mark.parametrize(
    "case", ["sql template", "unknown template", "huge id", "leading zero", "logged out", "draft template", "no body"]
)
def test_what_the_lane_cannot_settle_gets_the_views_answer(app, api, operator, flask_dispatches, case):
    """What the lane cannot settle reaches the view; an unknown or draft template it refuses itself, alike."""
    answers = []
    for lane_on in (True, False):
        app.config["COUPON_CLAIM_LANE"] = lane_on
        mom = api.as_user(f"mom-{lane_on}")
        template = create_template(
            operator,
            stock=5,
            claim_gate="sql" if case == "sql template" else "redis",
            activate=case != "draft template",
        )
        path = {
            "unknown template": CLAIM.format(template["id"] + 1000),
            "huge id": CLAIM.format(2**63),
            "leading zero": f"/api/v1/coupons/0{template['id']}/claim",
        }.get(case, CLAIM.format(template["id"]))
        if case == "logged out":
            assert mom.post("/api/v1/auth/logout").status_code == 204
        body = {"data": "", "content_type": "application/json"} if case == "no body" else {"json": {}}
        flask_dispatches.clear()
        answers.append(_answer(mom.post(path, headers={"Idempotency-Key": f"k-{lane_on}"}, **body)))
        settled_by_lane = lane_on and case in ("unknown template", "draft template")
        assert flask_dispatches == ([] if settled_by_lane else [1]), case
    app.config["COUPON_CLAIM_LANE"] = True
    assert answers[0] == answers[1], answers


def test_the_same_drop_reads_the_same_with_the_lane_or_without(app, api, operator):
    def drop(lane_on: bool) -> list[tuple]:
        app.config["COUPON_CLAIM_LANE"] = lane_on
        template = create_template(operator, stock=2, per_user_limit=1, claim_gate="redis")
        moms = [api.as_user(f"drop-{lane_on}-{i}") for i in range(3)]
        taps = [
            (moms[0], "a", {}),
            (moms[0], "a", {}),
            (moms[1], "b", {"group_id": 7, "post_id": 8}),
            (moms[1], "c", {}),
            (moms[2], "d", {}),
            (moms[0], "b2", {"group_id": 7}),
        ]
        return [_answer(claim(mom, template["id"], key=f"{lane_on}-{key}", **body)) for mom, key, body in taps]

    with_lane = drop(True)
    assert drop(False) == with_lane
    app.config["COUPON_CLAIM_LANE"] = True
    assert [a[:3] for a in with_lane] == [
        (201, None, None),
        (201, None, "true"),
        (201, None, None),
        (409, "coupon_limit_reached", None),
        (409, "coupon_out_of_stock", None),
        (409, "coupon_limit_reached", None),
    ]


def test_an_error_after_the_script_hands_the_claim_to_the_view_which_replays_it(
    app, api, operator, monkeypatch, flask_dispatches, caplog
):
    template = create_template(operator, stock=5, claim_gate="redis")
    mom = api.as_user("mom")
    assert mom.get("/api/v1/me").status_code == 200

    def broken(claimed):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(lane, "claimed_response", broken)
    flask_dispatches.clear()
    with caplog.at_level(logging.WARNING, logger=lane.__name__):
        answered = claim(mom, template["id"], key="once")
    assert (answered.status_code, answered.headers.get("Idempotent-Replayed")) == (201, "true")
    assert flask_dispatches == [1] and "handing a claim to the view" in caplog.text
    monkeypatch.undo()
    assert claim(mom, template["id"], key="once").get_json()["id"] == answered.get_json()["id"]
    from app.coupons.flash import drain

    drain.drain()
    db.session.expire_all()
    assert db.session.query(UserCoupon).filter_by(template_id=template["id"]).count() == 1


def test_switched_off_every_claim_goes_through_flask(app, api, operator, flask_dispatches, without_lane):
    template = create_template(operator, stock=5, claim_gate="redis")
    mom = api.as_user("mom")
    flask_dispatches.clear()
    assert claim(mom, template["id"]).status_code == 201
    assert flask_dispatches == [1]
