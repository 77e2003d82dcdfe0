import json

import pytest
from flask import g, jsonify
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.accounts import service as accounts
from app.catalog.models import Category
from app.core.clock import now_utc
from app.core.db import db, use_case
from app.core.idempotency import idempotent
from tests.helpers import assert_error


def test_400_404_405_413_415_422_in_the_envelope(client, app):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    response = client.delete("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    big = json.dumps({"code": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)})
    assert_error(client.post("/api/v1/auth/login", data=big, content_type="application/json"), 413, "payload_too_large")
    assert_error(
        client.post("/api/v1/auth/login", data="code=1", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    body = assert_error(client.post("/api/v1/auth/login", json={"code": ""}), 422, "validation_error")
    assert "code" in body["errors"]
    assert_error(
        client.post("/api/v1/auth/login", data="{not json", content_type="application/json"), 400, "malformed_json"
    )


@pytest.mark.parametrize(
    "content_type, accepted",
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/merge-patch+json", True),
        (" application/json ;charset=utf-8", True),
        ("text/plain", False),
        ("application/jsonp", False),
        ("text/json", False),
        ("", False),
    ],
)
def test_only_json_bodies_are_read(client, content_type, accepted):
    response = client.post("/api/v1/auth/login", data=json.dumps({"code": ""}), content_type=content_type or None)
    if accepted:
        assert_error(response, 422, "validation_error")
    else:
        assert_error(response, 415, "unsupported_media_type")


def test_unexpected_errors_are_500_in_the_envelope(api, monkeypatch):
    alice = api.as_user("alice")

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(accounts, "team", broken)
    body = assert_error(alice.get("/api/v1/me/team"), 500, "internal_error")
    assert "boom" not in body["message"]


def test_login_is_rate_limited_per_ip_with_429_in_the_envelope(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3/minute")
    for _ in range(3):
        assert client.post("/api/v1/auth/login", json={"code": "sandbox:alice"}).status_code == 200
    response = client.post("/api/v1/auth/login", json={"code": "sandbox:alice"})
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    other_ip = client.post(
        "/api/v1/auth/login", json={"code": "sandbox:alice"}, environ_base={"REMOTE_ADDR": "10.9.8.7"}
    )
    assert other_ip.status_code == 200


def _create_category_view():
    from flask import request

    category = Category(name=request.get_json()["name"], created_at=now_utc())
    db.session.add(category)
    db.session.flush()
    return jsonify({"id": category.id, "name": category.name}), 201


def _call(app, user, body, key):
    view = idempotent(_create_category_view)
    headers = {"Idempotency-Key": key} if key is not None else {}
    with app.test_request_context("/api/v1/things", method="POST", json=body, headers=headers), use_case():
        g.user = user
        return app.make_response(view())


def _categories() -> int:
    return db.session.scalar(select(func.count()).select_from(Category))


def test_idempotency_replays_the_first_response(app):
    user = accounts.ensure_user(openid="alice", nickname="alice")
    first = _call(app, user, {"name": "奶粉"}, "key-1")
    replay = _call(app, user, {"name": "奶粉"}, "key-1")
    assert first.status_code == replay.status_code == 201
    assert first.get_json() == replay.get_json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _categories() == 1


def test_idempotency_key_reuse_with_another_body_is_422(app):
    user = accounts.ensure_user(openid="alice", nickname="alice")
    _call(app, user, {"name": "奶粉"}, "key-1")
    from app.core.errors import ApiError

    with pytest.raises(ApiError) as refused:
        _call(app, user, {"name": "尿不湿"}, "key-1")
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")
    assert _categories() == 1


def test_idempotency_keys_are_per_user_and_required(app):
    from app.core.errors import ApiError

    alice = accounts.ensure_user(openid="alice", nickname="alice")
    bob = accounts.ensure_user(openid="bob", nickname="bob")
    _call(app, alice, {"name": "奶粉"}, "same")
    _call(app, bob, {"name": "尿不湿"}, "same")
    assert _categories() == 2
    with pytest.raises(ApiError) as refused:
        _call(app, alice, {"name": "玩具"}, None)
    assert (refused.value.status, refused.value.code) == (428, "idempotency_key_required")


def test_a_failed_request_stores_nothing_so_the_key_can_be_retried(app):
    user = accounts.ensure_user(openid="alice", nickname="alice")
    _call(app, user, {"name": "奶粉"}, "k1")
    with pytest.raises(IntegrityError):
        _call(app, user, {"name": "奶粉"}, "k2")  # unique name: the effect fails, so does the key
    assert _call(app, user, {"name": "辅食"}, "k2").status_code == 201


def test_openapi_and_docs_are_served(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in spec["paths"]
    assert client.get("/api/docs").status_code == 200
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_health_and_readiness(client, app, monkeypatch):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json()["status"] == "ready"

    class DeadRedis:
        def ping(self):
            raise ConnectionError("down")

    monkeypatch.setitem(app.extensions, "redis", DeadRedis())
    body = assert_error(client.get("/readyz"), 503, "not_ready")
    assert set(body["errors"]) == {"redis"} and "redis" in body["message"]


def test_an_id_beyond_bigint_is_a_404_not_a_database_error(api):
    operator = api.as_user("op", roles=("operator",))
    assert_error(operator.post(f"/api/v1/admin/users/{2**63}/roles/host"), 404, "not_found")
    assert_error(operator.post(f"/api/v1/admin/users/{2**63 - 1}/roles/host"), 404, "user_not_found")


def test_a_configured_default_limit_still_applies_to_every_route(client, monkeypatch):
    from flask_limiter import Limit
    from flask_limiter.util import get_remote_address

    from app.core.extensions import limiter

    assert not limiter._request_wide_limits()  # as configured: no request pays the limiter's pass
    monkeypatch.setattr(
        limiter.limit_manager,
        "_default_limits",
        [Limit(limit_provider="2/minute", key_function=get_remote_address).bind(limiter)],
    )
    assert [client.get("/healthz").status_code for _ in range(2)] == [200, 200]
    assert_error(client.get("/healthz"), 429, "rate_limited")
