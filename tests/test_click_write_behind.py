"""Redirect clicks through the process's write-behind buffer: counted once a minute, batched, kept through a restart."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, select

from app.affiliate import clickbuffer, clicks, service
from app.affiliate.models import Click
from app.core.db import db
from app.core.redis import get_redis, key
from tests.affiliate_helpers import make_product
from tests.processes import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def _stream_length() -> int:
    return get_redis().xlen(key(clicks.STREAM))  # what reached Redis, without flushing this process's buffer


def _code(api, **product) -> str:
    item = make_product(**product)
    return api.as_user("sharer").post("/api/v1/share-links", json={"product_id": item.id}).get_json()["code"]


def _click(client, code: str, visitor: str | None = None):
    if visitor:
        client.set_cookie("mmq_vid", visitor)
    response = client.get(f"/s/{code}")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def test_known_links_redirect_from_the_process_and_count_once_a_minute_per_visitor(api, app, client):
    code = _code(api, link_url="https://union.example/item/7")
    first = _click(client, code, "visitor-aaaa")  # the process learns the link on this synchronous click
    assert first.headers["Location"] == "https://union.example/item/7" and _stream_length() == 1
    get_redis().delete(clicks.link_cache_key(code))  # later redirects no longer read Redis for the link
    for visitor in ["visitor-aaaa", "visitor-bbbb", "visitor-bbbb", "visitor-cccc"]:
        assert _click(client, code, visitor).headers["Location"] == "https://union.example/item/7"
    assert clicks.backlog() == 3  # aaaa once, bbbb once within the minute, cccc
    assert service.persist_clicks() == 3
    visitors = db.session.scalars(select(Click.visitor).order_by(Click.id)).all()
    assert visitors == ["visitor-aaaa", "visitor-bbbb", "visitor-cccc"]
    assert db.session.scalar(select(func.count()).select_from(Click).where(Click.via != "redirect")) == 0


def test_a_signed_in_buyers_redirects_are_deduplicated_with_their_app_clicks(api, client):
    code = _code(api)
    buyer = api.as_user("buyer")
    assert buyer.post("/api/v1/clicks", json={"code": code}).get_json() == {"counted": True}
    buyer.get(f"/s/{code}")  # same buyer within the minute, through the buffer: not counted again
    assert clicks.backlog() == 1


def test_a_known_link_is_trusted_only_for_a_minute(api, client, monkeypatch):
    code = _code(api, link_url="https://union.example/old")
    _click(client, code, "visitor-aaaa")
    real_monotonic = time.monotonic
    monkeypatch.setattr(clicks.time, "monotonic", lambda: real_monotonic() + clicks.LOCAL_LINK_SECONDS + 1)
    clicks.cache_link(code, {"id": 1, "landing": "https://union.example/new"})  # e.g. the link was re-shared
    assert _click(client, code, "visitor-bbbb").headers["Location"] == "https://union.example/new"


def test_switched_off_every_redirect_counts_synchronously(api, app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CLICK_WRITE_BEHIND", False)
    code = _code(api)
    for visitor in ["visitor-aaaa", "visitor-bbbb", "visitor-aaaa"]:
        _click(client, code, visitor)
    assert _stream_length() == 2


def test_unknown_codes_are_still_404s_with_the_buffer_on(client):
    assert client.get("/s/nosuch").status_code == 404


def _buffer(**options) -> clickbuffer.ClickBuffer:
    return clickbuffer.ClickBuffer(get_redis(), stream_key=key(clicks.STREAM), dedupe_seconds=60, **options)


def _pending(n: int, who: str = "v") -> clickbuffer.PendingClick:
    return clickbuffer.PendingClick(
        dedupe_key=key("click-seen", "c", f"{who}{n}"),
        link_id=1,
        at_ms=1000 + n,
        buyer="",
        visitor=f"{who}{n}",
        via="redirect",
    )


def test_a_failed_send_keeps_the_clicks_in_order_for_the_retry(app, monkeypatch):
    buffer = _buffer(linger_seconds=3600)  # the thread waits; this test sends by hand
    try:
        real_send = buffer._send
        calls = []

        def failing_once(batch):
            calls.append(len(batch))
            if len(calls) == 1:
                raise RedisConnectionError("redis went away")
            return real_send(batch)

        monkeypatch.setattr(buffer, "_send", failing_once)
        for n in range(5):
            buffer.add(_pending(n))
        buffer.add(_pending(0))  # a repeat within the minute
        with pytest.raises(RedisConnectionError):
            buffer.flush()
        assert buffer.pending() == 6 and _stream_length() == 0
        assert buffer.flush() == 5 and buffer.pending() == 0
        entries = get_redis().xrange(key(clicks.STREAM))
        assert [e[1][b"v"] for e in entries] == [f"v{n}".encode() for n in range(5)]
        assert buffer.flush() == 0  # a batch resent after a lost reply adds nothing within the minute
        for n in range(5):
            buffer.add(_pending(n))
        assert buffer.flush() == 0 and _stream_length() == 5
    finally:
        buffer.close()


def test_the_buffer_is_bounded_and_drops_the_oldest_when_redis_stays_away(app):
    buffer = _buffer(linger_seconds=3600, max_pending=3)
    try:
        for n in range(5):
            buffer.add(_pending(n))
        assert buffer.pending() == 3
        buffer.flush()
        assert [e[1][b"v"] for e in get_redis().xrange(key(clicks.STREAM))] == [b"v2", b"v3", b"v4"]
    finally:
        buffer.close()


def test_the_thread_sends_on_its_own_and_close_sends_the_rest(app):
    buffer = _buffer()
    for n in range(20):
        buffer.add(_pending(n))
    deadline = time.monotonic() + 10
    while _stream_length() < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _stream_length() == 20
    lingering = _buffer(linger_seconds=3600)
    for n in range(7):
        lingering.add(_pending(n, "w"))
    time.sleep(0.05)
    assert _stream_length() == 20
    lingering.close()
    buffer.close()
    assert _stream_length() == 27


@pytest.mark.commits
def test_clicks_queued_in_a_web_worker_survive_its_graceful_restart(api, app, stores, tmp_path):
    code = _code(api, link_url="https://union.example/item/3")
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        INSTANCE_PATH=stores["instance_path"],
        SECRET_KEY="test-secret",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        CLICK_WRITE_BEHIND_LINGER_SECONDS="600",
    )  # the worker would hold its clicks for ten minutes
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - the child process writes it until it ends
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, web, tmp_path / "gunicorn.log", 60)
        for _ in range(25):  # a new visitor each time (no cookie jar)
            answer = requests.get(f"{base}/s/{code}", allow_redirects=False, timeout=10)
            assert answer.status_code == 302 and answer.headers["Location"] == "https://union.example/item/3"
        assert _stream_length() == 1, "only the first click, which taught the worker the link, reached Redis"
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
    assert _stream_length() == 25
    assert service.persist_clicks() == 25
    assert db.session.scalar(select(func.count()).select_from(Click)) == 25
