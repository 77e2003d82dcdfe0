"""The claim route checks the caller's session inside the gate's one Lua call (a fenced session): one this
process knows against the generation it was cached under, one it has not seen (another web worker
verified it) from its cache entry itself.

It must refuse exactly what a full check refuses: logged-out, expired and forgotten sessions; and it
must take role or profile changes and a lost cache entry in its stride by checking in full once.
"""

from datetime import timedelta

import pytest

from app.accounts import service as accounts
from app.core.clock import now_utc
from app.core.redis import get_redis
from app.coupons.flash import gate
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


def _unseen(api, operator, name: str = "mom"):
    """A user whose session another process has verified (its cache entry is in Redis) and this one has not."""
    mom = api.as_user(name)
    assert mom.get("/api/v1/me").status_code == 200
    accounts._parsed_sessions.clear()
    return mom, create_template(operator)


def test_an_unseen_session_is_checked_by_the_gate_itself(api, operator, redis_commands):
    mom, drop = _unseen(api, operator)
    del redis_commands[:]
    response = claim(mom, drop["id"])
    assert response.status_code == 201 and redis_commands == ["EVALSHA"]
    # The gate handed the entry over: the next tap is a known session's.
    second = create_template(operator)
    del redis_commands[:]
    assert claim(mom, second["id"]).status_code == 201
    assert redis_commands == ["EVALSHA"]
    assert_error(claim(mom, second["id"]), 409, "coupon_limit_reached")
    held = {c["id"] for c in mom.get("/api/v1/me/coupons").get_json()["items"]}
    assert response.get_json()["id"] in held


@pytest.mark.parametrize("spoil", ["logout", "expiry", "forged_user", "lost_entry"])
def test_an_unseen_session_is_refused_exactly_when_a_full_check_refuses_it(api, operator, frozen_clock, spoil):
    mom, drop = _unseen(api, operator)
    token = mom.token
    if spoil == "logout":
        assert mom.post("/api/v1/auth/logout").status_code == 204
        accounts._parsed_sessions.clear()
    elif spoil == "expiry":
        frozen_clock(now_utc() + timedelta(days=31))
    elif spoil == "forged_user":
        other = api.as_user("other")
        token = f"{other.user['id']}.{mom.token.partition('.')[2]}"
    else:
        get_redis().delete(*get_redis().keys("mmq:auth:session:*"))
        mom.post("/api/v1/auth/logout")
        accounts._parsed_sessions.clear()
    mom.token = token
    assert_error(claim(mom, drop["id"]), 401, "invalid_token")
    assert gate.in_flight(template_id=drop["id"]) == [] and gate.snapshot(template_id=drop["id"]) == {"remaining": 10}


def test_an_unseen_session_whose_entry_predates_expiry_stamps_is_checked_in_full(api, operator, redis_commands):
    import json

    mom, drop = _unseen(api, operator)
    entry_key = accounts._session_cache_key(accounts._token_hash(mom.token))
    entry = json.loads(get_redis().get(entry_key))
    del entry["session"]["expires_ms"]  # as written before entries carried it
    get_redis().set(entry_key, json.dumps(entry))
    del redis_commands[:]
    assert claim(mom, drop["id"]).status_code == 201
    assert redis_commands[0] == "EVALSHA" and "MGET" in redis_commands


def test_an_unseen_session_claims_a_database_gated_coupon(api, operator):
    mom, _ = _unseen(api, operator)
    plain = create_template(operator, claim_gate="sql")
    response = claim(mom, plain["id"])
    assert response.status_code == 201
    assert response.get_json()["id"] in {c["id"] for c in mom.get("/api/v1/me/coupons").get_json()["items"]}


def test_a_session_fresh_from_login_is_checked_by_the_gate_itself(api, operator, redis_commands):
    """Login caches the new session: a first tap on another web worker needs no query and no second call."""
    mom = api.as_user("mom")
    accounts._parsed_sessions.clear()  # another worker answered the login
    drop = create_template(operator)
    del redis_commands[:]
    assert claim(mom, drop["id"]).status_code == 201
    assert redis_commands == ["EVALSHA"]


def test_login_caches_nothing_when_the_user_changed_meanwhile(api, operator, redis_commands, monkeypatch):
    import redis

    real_incr = redis.Redis.incr

    def racing(self, name, amount=1):
        if ":auth:generation:" in name:
            real_incr(self, name)  # another change to the user, committed meanwhile, bumps it too
        return real_incr(self, name, amount)

    with monkeypatch.context() as patched:
        patched.setattr(redis.Redis, "incr", racing)
        mom = api.as_user("mom")
    assert get_redis().get(accounts._session_cache_key(accounts._token_hash(mom.token))) is None
    accounts._parsed_sessions.clear()
    drop = create_template(operator)
    del redis_commands[:]
    assert claim(mom, drop["id"]).status_code == 201
    assert "MGET" in redis_commands  # checked in full once, as before login cached sessions
