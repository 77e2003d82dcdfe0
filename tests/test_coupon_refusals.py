"""Operators settle the granted claims the database refused: list, re-issue through the SQL claim path, dismiss."""

import threading

import pytest
from sqlalchemy import func, select

from app.core.db import db, use_case
from app.coupons import refusals
from app.coupons.flash import drain, gate, loading
from app.coupons.models import CouponRefusalResolution, CouponTemplate, UserCoupon
from tests.coupon_factories import claim, create_template
from tests.helpers import assert_error

REFUSALS = "/api/v1/admin/coupon-refusals"


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


def _refused_grant(app, mom, template_id: int, key: str | None = None) -> dict:
    """Force a refusal as test_coupon_claims does: a gate that lost count grants the user's first coupon again."""
    assert claim(mom, template_id).status_code == 201
    drain.drain()
    app.extensions["redis"].hdel(gate._gate(template_id), f"u:{mom.user['id']}")
    told = claim(mom, template_id, key=key)
    assert told.status_code == 201
    drain.drain()
    return told.get_json()


def _coupons(template_id: int, user_id: int) -> list[UserCoupon]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(UserCoupon)
            .where(UserCoupon.template_id == template_id, UserCoupon.user_id == user_id)
            .order_by(UserCoupon.seq)
        )
    )


def _listed(operator, **query) -> list[dict]:
    response = operator.get(REFUSALS, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_list_then_reissue_and_dismiss(app, api, operator):
    template = create_template(operator, stock=5, per_user_limit=2)
    mom, dad = api.as_user("mom"), api.as_user("dad")
    told_mom_key = "mom-told-claimed"
    told_mom = _refused_grant(app, mom, template["id"], key=told_mom_key)
    told_dad = _refused_grant(app, dad, template["id"])
    items = _listed(operator)
    assert [(r["user_id"], r["coupon_id"], r["template_id"]) for r in items] == [
        (dad.user["id"], told_dad["id"], template["id"]),
        (mom.user["id"], told_mom["id"], template["id"]),
    ]
    assert all(r["reason"].startswith("conflict: ") and r["granted_at"] and r["refused_at"] for r in items)
    assert [r["id"] for r in _listed(operator, user_id=mom.user["id"])] == [items[1]["id"]]
    assert _listed(operator, template_id=template["id"] + 1) == []
    page = operator.get(REFUSALS, query_string={"limit": 1}).get_json()
    assert [r["id"] for r in page["items"]] == [items[0]["id"]]
    rest = operator.get(REFUSALS, query_string={"limit": 1, "cursor": page["next_cursor"]}).get_json()
    assert [r["id"] for r in rest["items"]] == [items[1]["id"]] and rest["next_cursor"] is None

    # Re-issue mom's: the stock and her limit of two allow a second claim row.
    resolved = operator.post(f"{REFUSALS}/{items[1]['id']}/resolve", json={"action": "reissue"})
    assert resolved.status_code == 200, resolved.get_json()
    body = resolved.get_json()
    assert (body["action"], body["granted_coupon_id"], body["resolved_by_id"]) == (
        "reissued",
        told_mom["id"],
        operator.user["id"],
    )
    held = _coupons(template["id"], mom.user["id"])
    assert [c.seq for c in held] == [1, 2] and held[1].id == body["user_coupon_id"] and held[1].status == "available"
    # The re-issued coupon is the one she was told about: her claim's replayed answer names a coupon she holds.
    assert body["user_coupon_id"] == told_mom["id"]
    replayed = claim(mom, template["id"], key=told_mom_key)
    assert (replayed.status_code, replayed.get_json()["id"]) == (201, told_mom["id"])
    assert [c["id"] for c in mom.get("/api/v1/me/coupons").get_json()["items"]].count(body["user_coupon_id"]) == 1
    # Dismiss dad's: he was compensated some other way.
    dismissed = operator.post(
        f"{REFUSALS}/{items[0]['id']}/resolve", json={"action": "dismiss", "note": "compensated with a 5 yuan credit"}
    ).get_json()
    assert (dismissed["action"], dismissed["user_coupon_id"], dismissed["note"]) == (
        "dismissed",
        None,
        "compensated with a 5 yuan credit",
    )
    assert len(_coupons(template["id"], dad.user["id"])) == 1
    assert _listed(operator) == [] and gate.refused(template_id=template["id"]) == []

    # Twice is harmless: the same resolutions, no second coupon; a different action changes nothing either.
    assert operator.post(f"{REFUSALS}/{items[1]['id']}/resolve", json={"action": "reissue"}).get_json() == body
    assert operator.post(f"{REFUSALS}/{items[0]['id']}/resolve", json={"action": "reissue"}).get_json() == dismissed
    assert len(_coupons(template["id"], mom.user["id"])) == 2 and len(_coupons(template["id"], dad.user["id"])) == 1
    assert db.session.scalar(select(func.count()).select_from(CouponRefusalResolution)) == 2
    # The database's counter and the rebuilt gate count the re-issued coupon.
    assert db.session.get(CouponTemplate, template["id"], populate_existing=True).claimed == 3
    snapshot = gate.snapshot(template_id=template["id"])
    assert (snapshot["remaining"], snapshot[f"u:{mom.user['id']}"]) == (2, 2)
    (report,) = loading.reconcile(template_id=template["id"])
    assert (report.refused, report.db_repaired, report.gate_remaining) == (0, False, 2)


def test_a_reissue_the_database_refuses_changes_nothing(app, api, operator):
    template = create_template(operator, stock=5, per_user_limit=1)
    mom = api.as_user("mom")
    _refused_grant(app, mom, template["id"])
    (entry,) = _listed(operator)
    assert_error(
        operator.post(f"{REFUSALS}/{entry['id']}/resolve", json={"action": "reissue"}), 409, "coupon_limit_reached"
    )
    assert len(_coupons(template["id"], mom.user["id"])) == 1
    assert db.session.scalar(select(func.count()).select_from(CouponRefusalResolution)) == 0
    assert [r["id"] for r in _listed(operator)] == [entry["id"]]  # still waiting for an operator
    assert_error(
        operator.post(f"{REFUSALS}/{entry['id']}/resolve", json={"action": "dismiss"}), 422, "validation_error"
    )
    assert (
        operator.post(
            f"{REFUSALS}/{entry['id']}/resolve", json={"action": "dismiss", "note": "holds one already"}
        ).status_code
        == 200
    )
    assert _listed(operator) == []


def test_a_lost_stream_delete_is_finished_later(app, api, operator, monkeypatch):
    template = create_template(operator, stock=5, per_user_limit=1)
    _refused_grant(app, api.as_user("mom"), template["id"])
    (entry,) = _listed(operator)
    with monkeypatch.context() as patch:
        patch.setattr(gate, "forget_refused", lambda **kwargs: None)  # the process died before the delete
        first = operator.post(f"{REFUSALS}/{entry['id']}/resolve", json={"action": "dismiss", "note": "dup"}).get_json()
    assert len(gate.refused(template_id=template["id"])) == 1
    assert _listed(operator) == [] and gate.refused(template_id=template["id"]) == []
    assert (
        operator.post(f"{REFUSALS}/{entry['id']}/resolve", json={"action": "dismiss", "note": "x"}).get_json() == first
    )


def test_operators_only_and_unknown_entries(app, api, operator):
    template = create_template(operator, stock=5, per_user_limit=2)
    mom = api.as_user("mom")
    _refused_grant(app, mom, template["id"])
    (entry,) = _listed(operator)
    host = api.as_user("host", roles=("host",))
    for client in (mom, host):
        assert_error(client.get(REFUSALS), 403, "role_required")
        assert_error(client.post(f"{REFUSALS}/{entry['id']}/resolve", json={"action": "reissue"}), 403, "role_required")
    assert len(_coupons(template["id"], mom.user["id"])) == 1
    for unknown in ("1-0", "not-an-id"):
        assert_error(
            operator.post(f"{REFUSALS}/{unknown}/resolve", json={"action": "reissue"}), 404, "coupon_refusal_not_found"
        )
    assert_error(operator.get(REFUSALS, query_string={"cursor": "bad"}), 422, "invalid_cursor")


@pytest.mark.commits
def test_two_operators_resolving_at_once_settle_it_once(app, api, operator):
    template = create_template(operator, stock=5, per_user_limit=2)
    mom = api.as_user("mom")
    _refused_grant(app, mom, template["id"])
    (entry,) = _listed(operator)
    barrier, results = threading.Barrier(2), []

    def resolve():
        with app.app_context():
            barrier.wait()
            try:
                with use_case():
                    resolved = refusals.resolve_refusal(
                        entry_id=entry["id"], action="reissue", note=None, operator_id=operator.user["id"]
                    )
                    results.append(resolved.id)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and len(set(results)) == 1
    assert len(_coupons(template["id"], mom.user["id"])) == 2
    assert _listed(operator) == []
