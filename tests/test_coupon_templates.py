"""Coupon templates and host budgets through the operator and host API."""

from datetime import timedelta

import pytest

from app.core.clock import now_utc
from tests.coupon_factories import create_template, iso, make_category, make_product, template_body
from tests.helpers import assert_error


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


@pytest.fixture
def host(api):
    return api.as_user("host-a", roles=("host",))


def test_operator_issues_each_kind(operator):
    fixed = create_template(operator, activate=False)
    assert fixed["status"] == "draft" and fixed["amount_off_fen"] == 500 and fixed["claimed"] == 0
    threshold = create_template(operator, activate=False, kind="threshold", threshold_fen=10000, amount_off_fen=2000)
    assert (threshold["threshold_fen"], threshold["amount_off_fen"]) == (10000, 2000)
    percent = create_template(
        operator, activate=False, kind="percent", percent_off_bp=2000, cap_fen=3000, amount_off_fen=999
    )
    assert (percent["percent_off_bp"], percent["cap_fen"], percent["amount_off_fen"]) == (2000, 3000, 0)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"kind": "threshold", "threshold_fen": 100, "amount_off_fen": 500}, "threshold_fen"),
        ({"kind": "threshold", "threshold_fen": 0, "amount_off_fen": 500}, "threshold_fen"),
        ({"kind": "percent", "percent_off_bp": 2000, "cap_fen": 0}, "cap_fen"),
        ({"kind": "percent", "percent_off_bp": 0, "cap_fen": 100}, "percent_off_bp"),
        ({"kind": "fixed", "amount_off_fen": 0}, "amount_off_fen"),
        ({"validity_kind": "window", "valid_days": None}, "valid_until"),
        ({"validity_kind": "days", "valid_days": None}, "valid_days"),
        ({"scope": "categories"}, "category_ids"),
        ({"scope": "products"}, "product_ids"),
        ({"per_user_limit": 1, "per_day_limit": 2}, "per_day_limit"),
    ],
)
def test_invalid_templates_are_refused(operator, overrides, field):
    response = operator.post("/api/v1/coupon-templates", json=template_body(**overrides))
    body = assert_error(response, 422, "invalid_coupon_template")
    assert field in body["errors"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("claim_starts_at", "0001-01-01T00:30:00+01:00"),
        ("claim_ends_at", "9999-12-31T23:59:59-05:00"),
        ("valid_until", "9999-12-31T20:00:00-08:00"),
    ],
)
def test_instants_utc_cannot_hold_are_refused(operator, field, value):
    # Valid ISO instants whose UTC is before year 1 or after year 9999: refused, not a 500 while storing.
    body = template_body(
        validity_kind="window", valid_from=iso(now_utc()), valid_until=iso(now_utc() + timedelta(days=9))
    )
    body[field] = value
    assert (
        field in assert_error(operator.post("/api/v1/coupon-templates", json=body), 422, "validation_error")["errors"]
    )
    draft = create_template(operator, activate=False)
    response = operator.patch(f"/api/v1/coupon-templates/{draft['id']}", json={field: value})
    assert field in assert_error(response, 422, "validation_error")["errors"]


@pytest.mark.parametrize("field", ["claim_starts_at", "claim_ends_at", "valid_from", "valid_until"])
def test_naive_instants_are_refused_as_everywhere_else(operator, field):
    # Whose midnight a naive time means is a guess (UTC? Beijing?); every other domain refuses one, so coupons do too.
    naive = (now_utc() + timedelta(days=2)).replace(tzinfo=None).isoformat()
    body = template_body(
        validity_kind="window", valid_from=iso(now_utc()), valid_until=iso(now_utc() + timedelta(days=9))
    )
    body[field] = naive
    errors = assert_error(operator.post("/api/v1/coupon-templates", json=body), 422, "validation_error")["errors"]
    assert errors == {field: ["Not a valid aware datetime."]}
    draft = create_template(operator, activate=False)
    response = operator.patch(f"/api/v1/coupon-templates/{draft['id']}", json={field: naive})
    assert assert_error(response, 422, "validation_error")["errors"] == {field: ["Not a valid aware datetime."]}


def test_claim_window_must_be_ordered(operator):
    now = now_utc()
    response = operator.post(
        "/api/v1/coupon-templates",
        json=template_body(claim_starts_at=iso(now + timedelta(hours=2)), claim_ends_at=iso(now + timedelta(hours=1))),
    )
    assert_error(response, 422, "invalid_coupon_template")


def test_scope_targets_must_exist_and_round_trip(operator):
    category = make_category()
    product = make_product(price_fen=1000, category=category)
    response = operator.post("/api/v1/coupon-templates", json=template_body(scope="categories", category_ids=[999999]))
    assert_error(response, 422, "unknown_categories")
    template = create_template(
        operator, activate=False, scope="categories", category_ids=[category.id], excluded_product_ids=[product.id]
    )
    assert template["category_ids"] == [category.id] and template["excluded_product_ids"] == [product.id]
    changed = operator.patch(
        f"/api/v1/coupon-templates/{template['id']}",
        json={"scope": "products", "category_ids": [], "excluded_product_ids": [], "product_ids": [product.id]},
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["product_ids"] == [product.id] and changed.get_json()["category_ids"] == []


def test_status_life_cycle(operator):
    template = create_template(operator, activate=False)
    path = f"/api/v1/coupon-templates/{template['id']}/status"
    assert_error(operator.post(path, json={"status": "paused"}), 409, "invalid_status_transition")
    assert operator.post(path, json={"status": "active"}).get_json()["status"] == "active"
    assert_error(
        operator.patch(f"/api/v1/coupon-templates/{template['id']}", json={"stock": 5}),
        409,
        "coupon_template_not_editable",
    )
    assert operator.post(path, json={"status": "paused"}).get_json()["status"] == "paused"
    assert operator.post(path, json={"status": "active"}).get_json()["status"] == "active"
    assert operator.post(path, json={"status": "ended"}).get_json()["status"] == "ended"
    assert_error(operator.post(path, json={"status": "active"}), 409, "invalid_status_transition")
    assert operator.post(path, json={"status": "ended"}).status_code == 200


def test_moms_cannot_issue(api):
    mom = api.as_user("mom")
    assert_error(mom.post("/api/v1/coupon-templates", json=template_body()), 403, "role_required")
    assert_error(mom.get("/api/v1/coupon-budgets"), 403, "role_required")


def test_host_needs_an_assigned_budget(api, operator, host):
    assert_error(host.post("/api/v1/coupon-templates", json=template_body()), 422, "coupon_budget_required")
    other = api.as_user("host-b", roles=("host",))
    budget = operator.post("/api/v1/coupon-budgets", json={"host_id": other.user["id"], "budget_fen": 10000})
    assert budget.status_code == 201, budget.get_json()
    response = host.post("/api/v1/coupon-templates", json=template_body(budget_id=budget.get_json()["id"]))
    assert_error(response, 403, "coupon_budget_not_yours")
    mom = api.as_user("mom")
    assert_error(
        operator.post("/api/v1/coupon-budgets", json={"host_id": mom.user["id"], "budget_fen": 1}),
        422,
        "budget_needs_host",
    )


def make_group(host) -> int:
    response = host.post(
        "/api/v1/groups",
        json={"name": "阳光幼儿园大一班", "channel": "sandbox", "credentials": {}, "age_band": "3-6y", "tags": []},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_budget_groups_must_be_the_hosts_own(api, operator, host):
    other = api.as_user("host-b", roles=("host",))
    theirs = make_group(other)
    assert_error(
        operator.post(
            "/api/v1/coupon-budgets", json={"host_id": host.user["id"], "group_id": theirs, "budget_fen": 100}
        ),
        403,
        "group_not_yours",
    )
    assert_error(
        operator.post(
            "/api/v1/coupon-budgets", json={"host_id": host.user["id"], "group_id": 999999, "budget_fen": 100}
        ),
        404,
        "group_not_found",
    )
    budget = operator.post("/api/v1/coupon-budgets", json={"host_id": host.user["id"], "budget_fen": 5000}).get_json()
    assert_error(
        host.post("/api/v1/coupon-templates", json=template_body(budget_id=budget["id"], group_id=theirs)),
        403,
        "group_not_yours",
    )
    mine = make_group(host)
    assert create_template(host, activate=False, budget_id=budget["id"], group_id=mine)["group_id"] == mine
    assert create_template(operator, activate=False, group_id=theirs)["group_id"] == theirs


def test_host_issues_within_budget_for_the_budget_group(operator, host):
    group_id = make_group(host)
    other_group = make_group(host)
    budget = operator.post(
        "/api/v1/coupon-budgets", json={"host_id": host.user["id"], "group_id": group_id, "budget_fen": 5000}
    ).get_json()
    # 10 coupons × 5 yuan = 50 yuan: exactly the budget. The budget's group wins over the one asked for.
    template = create_template(host, activate=False, budget_id=budget["id"], group_id=other_group)
    assert template["group_id"] == group_id and template["budget_committed_fen"] == 5000
    assert_error(
        host.post("/api/v1/coupon-templates", json=template_body(budget_id=budget["id"], stock=1)),
        409,
        "coupon_budget_exceeded",
    )
    listed = host.get("/api/v1/coupon-budgets").get_json()["items"]
    assert [(b["id"], b["committed_fen"], b["left_fen"]) for b in listed] == [(budget["id"], 5000, 0)]
    # Lowering the stock of the draft gives budget back; the budget cannot drop below what is committed.
    smaller = host.patch(f"/api/v1/coupon-templates/{template['id']}", json={"stock": 4})
    assert smaller.get_json()["budget_committed_fen"] == 2000
    assert_error(
        operator.patch(f"/api/v1/coupon-budgets/{budget['id']}", json={"budget_fen": 1999}),
        409,
        "coupon_budget_below_committed",
    )
    # A percent template commits stock × cap.
    percent = create_template(
        host, activate=False, budget_id=budget["id"], kind="percent", percent_off_bp=1000, cap_fen=300, stock=10
    )
    assert percent["budget_committed_fen"] == 3000
    assert host.get("/api/v1/coupon-budgets").get_json()["items"][0]["left_fen"] == 0


def test_ending_gives_the_unclaimed_part_back(api, operator, host):
    budget = operator.post("/api/v1/coupon-budgets", json={"host_id": host.user["id"], "budget_fen": 5000}).get_json()
    template = create_template(host, budget_id=budget["id"], stock=10)
    mom = api.as_user("mom")
    response = mom.post(f"/api/v1/coupons/{template['id']}/claim", json={}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201, response.get_json()
    ended = host.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "ended"}).get_json()
    assert ended["budget_committed_fen"] == 500
    assert host.get("/api/v1/coupon-budgets").get_json()["items"][0]["committed_fen"] == 500


def test_hosts_only_see_their_own_templates(api, operator, host):
    budget = operator.post("/api/v1/coupon-budgets", json={"host_id": host.user["id"], "budget_fen": 5000}).get_json()
    mine = create_template(host, activate=False, budget_id=budget["id"], stock=1)
    theirs = create_template(operator, activate=False)
    other = api.as_user("host-b", roles=("host",))
    assert_error(other.get(f"/api/v1/coupon-templates/{mine['id']}"), 404, "coupon_not_found")
    assert_error(
        other.post(f"/api/v1/coupon-templates/{mine['id']}/status", json={"status": "active"}), 404, "coupon_not_found"
    )
    assert [t["id"] for t in host.get("/api/v1/coupon-templates").get_json()["items"]] == [mine["id"]]
    assert {t["id"] for t in operator.get("/api/v1/coupon-templates").get_json()["items"]} == {mine["id"], theirs["id"]}
    drafts = operator.get("/api/v1/coupon-templates?status=draft&limit=1").get_json()
    assert len(drafts["items"]) == 1 and drafts["next_cursor"]


def test_activation_after_the_window_is_refused(operator, frozen_clock):
    template = create_template(operator, activate=False)
    frozen_clock(now_utc() + timedelta(days=2))
    assert_error(
        operator.post(f"/api/v1/coupon-templates/{template['id']}/status", json={"status": "active"}),
        409,
        "coupon_claim_window_passed",
    )


def test_templates_past_their_window_end_by_job(app, operator, frozen_clock):
    from app.coupons.templates import end_finished_templates

    template = create_template(operator)
    frozen_clock(now_utc() + timedelta(days=2))
    assert end_finished_templates() == 1
    assert operator.get(f"/api/v1/coupon-templates/{template['id']}").get_json()["status"] == "ended"


@pytest.mark.commits  # the racing activation commits in its own session while the edit is refused
def test_an_edit_racing_an_activation_leaves_the_live_template_alone(app, operator, monkeypatch):
    from app.coupons import templates
    from app.coupons.flash import gate

    template = create_template(operator, activate=False, stock=10)
    path = f"/api/v1/coupon-templates/{template['id']}"
    validate = templates._validate

    def activated_meanwhile(values, scope_ids):
        # The PATCH has read the draft; another request (its own session) activates it before the PATCH writes.
        validate(values, scope_ids)
        monkeypatch.setattr(templates, "_validate", validate)
        with app.app_context():
            assert operator.post(f"{path}/status", json={"status": "active"}).status_code == 200

    monkeypatch.setattr(templates, "_validate", activated_meanwhile)
    assert_error(operator.patch(path, json={"stock": 20}), 409, "coupon_template_not_editable")
    live = operator.get(path).get_json()
    assert (live["status"], live["stock"]) == ("active", 10)
    assert gate.snapshot(template_id=template["id"])["remaining"] == 10


@pytest.mark.commits  # the racing edit commits in its own session while this one is refused
def test_racing_edits_keep_the_budget_equal_to_what_its_templates_commit(app, operator, host, monkeypatch):
    from app.coupons import templates

    budget = operator.post("/api/v1/coupon-budgets", json={"host_id": host.user["id"], "budget_fen": 10000}).get_json()
    one = create_template(host, activate=False, budget_id=budget["id"], stock=10)
    create_template(host, activate=False, budget_id=budget["id"], stock=10)
    path = f"/api/v1/coupon-templates/{one['id']}"
    validate = templates._validate

    def edited_meanwhile(values, scope_ids):
        # Both requests read 10 coupons committed (5,000 fen); the other one writes first.
        validate(values, scope_ids)
        monkeypatch.setattr(templates, "_validate", validate)
        with app.app_context():
            assert host.patch(path, json={"stock": 2}).status_code == 200

    monkeypatch.setattr(templates, "_validate", edited_meanwhile)
    assert_error(host.patch(path, json={"stock": 2}), 409, "coupon_template_changed")
    listed = host.get("/api/v1/coupon-templates").get_json()["items"]
    committed = host.get("/api/v1/coupon-budgets").get_json()["items"][0]["committed_fen"]
    assert committed == sum(t["budget_committed_fen"] for t in listed) == 1000 + 5000
