"""The claim route checks a session this process knows inside the gate's one Lua call (a fenced session).

It must refuse exactly what a full check refuses: logged-out, expired and forgotten sessions; and it
must take role or profile changes and a lost cache entry in its stride by checking in full once.
"""
from datetime import timedelta

import pytest

from app.accounts import service as accounts
from app.core.clock import now_utc
from app.core.redis import get_redis
from app.coupons import gate
from tests.coupon_factories import claim, create_template
from tests.helpers import assert_error


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


@pytest.fixture
def redis_commands(monkeypatch):
    """The names of the Redis commands sent (through any client, on any connection) while the test runs."""
    from redis.connection import AbstractConnection

    sent = []
    real = AbstractConnection.send_command

    def recording(self, *args, **options):
        sent.append(str(args[0]).upper())
        return real(self, *args, **options)

    monkeypatch.setattr(AbstractConnection, "send_command", recording)
    return sent


def _known(api, operator, name: str = "mom"):
    """A user whose session this process has verified (one claim made), and a second live drop."""
    mom = api.as_user(name)
    assert claim(mom, create_template(operator)["id"]).status_code == 201
    return mom, create_template(operator)


def test_a_known_session_costs_the_claim_no_round_trip_of_its_own(api, operator, redis_commands):
    mom, drop = _known(api, operator)
    del redis_commands[:]
    assert claim(mom, drop["id"]).status_code == 201
    assert redis_commands == ["EVALSHA"]


def test_logout_reaches_a_fenced_claim_at_once(api, operator):
    mom, drop = _known(api, operator)
    assert mom.post("/api/v1/auth/logout").status_code == 204
    assert_error(claim(mom, drop["id"]), 401, "invalid_token")
    assert gate.in_flight(template_id=drop["id"]) == []


def test_an_expired_session_is_refused_before_the_gate(api, operator, frozen_clock):
    mom, drop = _known(api, operator)
    frozen_clock(now_utc() + timedelta(days=31))
    assert_error(claim(mom, drop["id"]), 401, "invalid_token")


def test_a_revoked_session_stays_refused_when_redis_forgets_everything(api, operator):
    mom, drop = _known(api, operator)
    assert mom.post("/api/v1/auth/logout").status_code == 204
    get_redis().delete(*get_redis().keys("mmq:auth:*"))  # the cache entry and the generation, as after a flush
    assert_error(claim(mom, drop["id"]), 401, "invalid_token")


def test_changes_and_a_lost_cache_entry_are_checked_in_full_then_claimed(api, operator, redis_commands):
    mom, drop = _known(api, operator)
    assert mom.patch("/api/v1/me", json={"nickname": "新名字"}).status_code == 200  # bumps the generation
    del redis_commands[:]
    assert claim(mom, drop["id"]).status_code == 201
    assert redis_commands[0] == "EVALSHA" and "MGET" in redis_commands  # refused by the fence, then checked
    assert mom.get("/api/v1/me").get_json()["nickname"] == "新名字"
    third = create_template(operator)
    get_redis().delete(*get_redis().keys("mmq:auth:session:*"))
    assert claim(mom, third["id"]).status_code == 201


def test_authentication_builds_plain_values_not_rows(api):
    from app.core.db import db

    host = api.as_user("hostess", roles=("host",))
    assert host.get("/api/v1/me").status_code == 200
    db.session.remove()
    found = accounts.authenticate(token=host.token)
    assert isinstance(found.user, accounts.CurrentUser) and found.user.id == host.user["id"]
    assert found.roles == found.user.roles == {"host", "mom"} and found.fence is None
    assert len(db.session.identity_map) == 0
    fenced = accounts.authenticate(token=host.token, fenced=True)
    assert fenced.user == found.user and fenced.fence is not None


def test_the_request_client_keeps_one_connection_per_process(app, monkeypatch):
    import os

    from app.core.redis import get_request_redis

    client = get_request_redis()
    assert client is get_request_redis() and client.connection is not None
    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)  # as in a forked child
    assert get_request_redis() is not client
