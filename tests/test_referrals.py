import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.accounts import service
from app.accounts.models import User
from app.core.db import db
from tests.helpers import assert_error, login


def _login(client, name, invite_code=None):
    body = {"code": f"sandbox:{name}"} | ({"invite_code": invite_code} if invite_code else {})
    response = client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_first_login_with_a_valid_code_binds_forever(client):
    host = _login(client, "host")
    other = _login(client, "other")
    bound = _login(client, "alice", host["user"]["invite_code"])
    assert bound["referral"] == {"status": "bound", "inviter_id": host["user"]["id"]}
    later = _login(client, "alice", other["user"]["invite_code"])
    assert later["referral"] == {"status": "already_bound", "inviter_id": host["user"]["id"]}
    assert db.session.get(User, bound["user"]["id"]).inviter_id == host["user"]["id"]


def test_invite_codes_are_case_insensitive(client):
    host = _login(client, "host")
    assert _login(client, "alice", host["user"]["invite_code"].lower())["referral"]["status"] == "bound"


def test_an_unknown_code_is_reported_and_login_still_works(client):
    body = _login(client, "alice", "ZZZZZZZZ")
    assert body["referral"] == {"status": "unknown_code", "inviter_id": None}


def test_an_unbound_user_may_bind_on_a_later_login(client):
    _login(client, "alice")
    host = _login(client, "host")
    assert _login(client, "alice", host["user"]["invite_code"])["referral"]["status"] == "bound"


def test_self_invite_is_refused(client):
    alice = _login(client, "alice")
    body = _login(client, "alice", alice["user"]["invite_code"])
    assert body["referral"] == {"status": "self_invite", "inviter_id": None}


def test_cycles_are_impossible(client):
    a = _login(client, "a")
    b = _login(client, "b", a["user"]["invite_code"])
    c = _login(client, "c", b["user"]["invite_code"])
    # a is still unbound; binding a under its own descendant c would close a loop a → b → c → a.
    assert _login(client, "a", c["user"]["invite_code"])["referral"] == {"status": "cycle", "inviter_id": None}
    assert _login(client, "a", b["user"]["invite_code"])["referral"]["status"] == "cycle"


def test_the_database_refuses_a_self_binding(app):
    user = service.ensure_user(openid="alice", nickname="alice")
    with pytest.raises(IntegrityError):
        db.session.execute(update(User).where(User.id == user.id).values(inviter_id=user.id))
        db.session.flush()
    db.session.rollback()


def test_team_levels_counts_and_pagination(client):
    root = _login(client, "root")
    level_1 = [_login(client, f"l1_{i}", root["user"]["invite_code"]) for i in range(5)]
    for i in range(3):
        _login(client, f"l2_{i}", level_1[0]["user"]["invite_code"])
    _login(client, "l2_x", level_1[1]["user"]["invite_code"])
    _login(client, "l3", level_1[0]["user"]["invite_code"])  # level 2 as well
    deep = _login(client, "deep", _login(client, "mid", level_1[2]["user"]["invite_code"])["user"]["invite_code"])
    assert deep["referral"]["status"] == "bound"  # level 3 of root: in nobody's view of root's team

    me = login(client, "root")
    first = me.get("/api/v1/me/team?level=1&limit=2").get_json()
    assert first["counts"] == {"level_1": 5, "level_2": 6}
    assert len(first["items"]) == 2 and first["next_cursor"]
    seen = [m["id"] for m in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = me.get(f"/api/v1/me/team?level=1&limit=2&cursor={cursor}").get_json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(u["user"]["id"] for u in level_1)
    assert len(set(seen)) == 5

    level_2 = me.get("/api/v1/me/team?level=2&limit=100").get_json()
    assert len(level_2["items"]) == 6 and {m["level"] for m in level_2["items"]} == {2}
    assert {m["inviter_id"] for m in level_2["items"]} == {
        level_1[0]["user"]["id"],
        level_1[1]["user"]["id"],
        level_1[2]["user"]["id"],
    }


def test_team_rejects_bad_arguments(api):
    alice = api.as_user("alice")
    assert_error(alice.get("/api/v1/me/team?level=3"), 422, "validation_error")
    assert_error(alice.get("/api/v1/me/team?limit=0"), 422, "validation_error")
    assert_error(alice.get("/api/v1/me/team?cursor=garbage"), 422, "invalid_cursor")
