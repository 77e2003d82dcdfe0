from datetime import timedelta

from sqlalchemy import select

from app.accounts.models import AuthSession, User
from app.core.clock import now_utc
from app.core.db import db
from tests.helpers import assert_error


def test_first_login_creates_the_user_and_returns_a_session(client):
    response = client.post("/api/v1/auth/login", json={"code": "sandbox:alice"})
    body = response.get_json()
    assert response.status_code == 200
    assert body["created"] is True and body["token_type"] == "Bearer"
    assert body["user"]["roles"] == ["mom"]
    assert len(body["user"]["invite_code"]) == 8
    assert body["referral"] == {"status": "none", "inviter_id": None}
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"}).get_json()
    assert me["id"] == body["user"]["id"]


def test_second_login_is_the_same_user_with_a_new_session(client):
    first = client.post("/api/v1/auth/login", json={"code": "sandbox:alice"}).get_json()
    second = client.post("/api/v1/auth/login", json={"code": "sandbox:alice"}).get_json()
    assert second["created"] is False
    assert second["user"]["id"] == first["user"]["id"]
    assert second["token"] != first["token"]


def test_the_token_is_stored_only_as_a_hash(api):
    alice = api.as_user("alice")
    stored = db.session.scalars(select(AuthSession.token_hash)).all()
    assert alice.token not in stored and len(stored) == 1 and len(stored[0]) == 64


def test_an_unknown_code_is_401_carrying_wechats_error(client):
    body = assert_error(client.post("/api/v1/auth/login", json={"code": "not-a-real-code"}), 401, "wechat_login_failed")
    assert body["errors"]["errcode"] == 40029
    assert db.session.scalar(select(User).limit(1)) is None


def test_wechat_rate_limiting_is_429_not_500(client):
    body = assert_error(
        client.post("/api/v1/auth/login", json={"code": "sandbox:!throttled"}), 429, "wechat_rate_limited"
    )
    assert body["errors"]["errcode"] == 45011


def test_an_openid_from_the_client_is_never_accepted(client):
    response = client.post("/api/v1/auth/login", json={"code": "sandbox:alice", "openid": "mallory"})
    assert_error(response, 422, "validation_error")


def test_logout_revokes_the_token(api):
    alice = api.as_user("alice")
    assert alice.post("/api/v1/auth/logout").status_code == 204
    assert_error(alice.get("/api/v1/me"), 401, "invalid_token")


def test_an_expired_session_is_refused(api, frozen_clock):
    alice = api.as_user("alice")
    frozen_clock(now_utc() + timedelta(days=31))
    assert_error(alice.get("/api/v1/me"), 401, "invalid_token")


def test_requests_without_or_with_a_malformed_token(client):
    assert_error(client.get("/api/v1/me"), 401, "unauthenticated")
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Token abc"}), 401, "invalid_authorization_header")
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401, "invalid_token")


def test_rename(api):
    alice = api.as_user("alice")
    assert alice.patch("/api/v1/me", json={"nickname": "  小雨妈妈 "}).get_json()["nickname"] == "小雨妈妈"
    assert_error(alice.patch("/api/v1/me", json={"nickname": "   "}), 422, "nickname_blank")


def test_invite_card_carries_the_code_as_scene_with_a_real_png(api):
    import base64
    import struct

    alice = api.as_user("alice")
    body = alice.get("/api/v1/me/invite").get_json()
    assert body["invite_code"] == alice.user["invite_code"] == body["scene"]
    prefix = "data:image/png;base64,"
    assert body["image"].startswith(prefix)
    png = base64.b64decode(body["image"][len(prefix) :])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width == height and width > 100


def test_tokens_are_checked_against_the_cache_and_the_database(api, app):
    alice = api.as_user("alice")
    assert alice.get("/api/v1/me").status_code == 200  # fills the cache
    assert alice.get("/api/v1/me").get_json()["invite_code"] == alice.user["invite_code"]  # served from it
    user_id, _, secret = alice.token.partition(".")
    for forged in (f"{int(user_id) + 1}.{secret}", f"x.{secret}", secret, f"{user_id}."):
        assert_error(alice.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token")


def test_a_role_change_reaches_cached_sessions_at_once(api):
    from app.core.redis import get_redis

    operator = api.as_user("op", roles=("operator",))
    alice = api.as_user("alice")
    assert alice.get("/api/v1/me").get_json()["roles"] == ["mom"]
    assert list(get_redis().scan_iter("mmq:auth:session:*")), "the session is cached"
    operator.post(f"/api/v1/admin/users/{alice.user['id']}/roles/operator")
    granted = alice.post(f"/api/v1/admin/users/{operator.user['id']}/roles/host")
    assert granted.status_code == 200
    operator.delete(f"/api/v1/admin/users/{alice.user['id']}/roles/operator")
    assert_error(alice.post(f"/api/v1/admin/users/{operator.user['id']}/roles/partner"), 403, "role_required")


def test_logout_reaches_a_cached_session_at_once(api):
    alice = api.as_user("alice")
    assert alice.get("/api/v1/me").status_code == 200
    assert alice.post("/api/v1/auth/logout").status_code == 204
    assert_error(alice.get("/api/v1/me"), 401, "invalid_token")


def test_a_cached_session_still_expires(api, frozen_clock):
    alice = api.as_user("alice")
    assert alice.get("/api/v1/me").status_code == 200
    frozen_clock(now_utc() + timedelta(days=31))
    assert_error(alice.get("/api/v1/me"), 401, "invalid_token")


def test_a_cached_session_is_served_without_a_query(api):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    host = api.as_user("hostess", roles=("host",))
    assert host.get("/api/v1/me").status_code == 200  # fills the cache
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        body = host.get("/api/v1/me").get_json()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert body["roles"] == ["host", "mom"] and body["id"] == host.user["id"]
    assert statements == []
    assert host.patch("/api/v1/me", json={"nickname": "新名字"}).get_json()["nickname"] == "新名字"
    assert host.get("/api/v1/me").get_json()["nickname"] == "新名字"  # the rename bumped the generation
