"""One post to 10,000 groups, each with its own robot key, through the real scheduler and workers.

A local HTTP sink imitates the WeCom robot endpoint (20 messages a minute per key, else errcode 45009;
~20 ms per request) in its own process. Figures:
- fanout_enqueue: seconds from the scheduled moment until all 10,000 deliveries are written and handed to RQ
  (rows all present and marked queued; polled every 20 ms). Target ≤ 1 s.
- fanout_delivered: seconds from the scheduled moment until the sink has every message (reported).
- fanout_throughput: deliveries/s ÷ the sink's raw accept rate measured in this run with the same client
  concurrency the workers use. Target ≥ 0.5.
- fanout_exactly_once: messages the sink received (must be exactly 10,000, one per key).
- fanout_kill9: a second post to the same groups; the worker and the scheduler are killed with SIGKILL in
  the middle and restarted. Every group's message must arrive exactly once, or its delivery be `unknown`;
  none may arrive twice.
"""

import json
import multiprocessing
import signal
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import requests

GROUPS = 10_000
SINK_LATENCY_S = 0.02
SINK_PER_MINUTE = 20
WORKERS = 2
CONCURRENCY = 32  # per worker (DELIVERY_SEND_CONCURRENCY)
TZ = "Asia/Shanghai"


def _sink(port: int, ready) -> None:
    lock = threading.Lock()
    windows: dict[str, deque] = defaultdict(deque)
    received: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rejected = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with lock:
                stats = {
                    text: {
                        "messages": sum(keys.values()),
                        "keys": len(keys),
                        "max_per_key": max(keys.values()),
                        "per_key": keys if self.path.endswith("?detail=" + text) else None,
                    }
                    for text, keys in received.items()
                }
            self._answer({"rejected": rejected[0], "texts": stats})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            robot = parse_qs(urlsplit(self.path).query).get("key", [""])[0]
            time.sleep(SINK_LATENCY_S)
            now = time.monotonic()
            with lock:
                window = windows[robot]
                while window and window[0] <= now - 60:
                    window.popleft()
                if len(window) >= SINK_PER_MINUTE:
                    rejected[0] += 1
                    limited = True
                else:
                    window.append(now)
                    limited = False
                    text = (payload.get("text") or {}).get("content", "")
                    received[text][robot] += 1
            self._answer(
                {"errcode": 45009, "errmsg": "api freq out of limit"} if limited else {"errcode": 0, "errmsg": "ok"}
            )

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

        def handle_error(self, request, client_address):
            pass  # clients killed with SIGKILL mid-request (the failure run) drop their sockets

    server = Server(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def _raw_accept_rate(url: str, n: int = 3000) -> float:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=WORKERS * CONCURRENCY)
    session.mount("http://", adapter)
    body = {"msgtype": "text", "text": {"content": "raw"}}
    start = time.monotonic()
    with ThreadPoolExecutor(WORKERS * CONCURRENCY) as pool:
        list(pool.map(lambda i: session.post(url, params={"key": f"raw-{i}"}, json=body, timeout=10), range(n)))
    return n / (time.monotonic() - start)


def _setup_groups(ctx) -> int:
    from sqlalchemy import insert

    from app.accounts import service as accounts
    from app.core.clock import now_utc
    from app.core.db import db
    from app.groups import credentials
    from app.groups.models import ChatGroup

    with ctx.app.app_context():
        host = accounts.ensure_user(openid="bench-host", nickname="bench host", roles=("host",))
        now = now_utc()
        rows = [
            {
                "name": f"bench group {i}",
                "host_id": host.id,
                "channel": "wecom_webhook",
                "credentials_encrypted": credentials.encrypt({"webhook_key": f"bench-robot-{i:05d}"}),
                "age_band": "3-6y",
                "tags": ["bench"],
                "timezone": TZ,
                "member_count": 0,
                "invite_scene": f"gbench{i:05d}",
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(GROUPS)
        ]
        db.session.execute(insert(ChatGroup), rows)
        db.session.commit()
        return host.id


def _schedule_post(ctx, host_id: int, text: str, *, lead_seconds: float = 8) -> datetime:
    """A once-post to every robot group at the next whole minute at least `lead_seconds` away; returns its UTC time."""
    from app.core.db import use_case
    from app.delivery import service
    from app.groups.service import Actor

    now = datetime.now(UTC)
    due = (now + timedelta(seconds=lead_seconds + 60)).replace(second=0, microsecond=0)
    local = due.astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%dT%H:%M")
    with ctx.app.app_context(), use_case():
        service.create_post(
            actor=Actor(id=host_id, operator=False),
            kind="text",
            content={"text": text},
            targets={"filter": {"channels": ["wecom_webhook"]}},
            schedule_spec={"kind": "once", "at": local},
        )
    return due


def _counts(ctx, text: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.core.db import db
    from app.delivery.models import Delivery, Post

    with ctx.app.app_context():
        post_id = db.session.scalar(select(Post.id).where(Post.content["text"].as_string() == text))
        rows = db.session.execute(
            select(Delivery.state, (Delivery.queued_at.is_(None)).label("unqueued"), func.count())
            .where(Delivery.post_id == post_id)
            .group_by(Delivery.state, "unqueued")
        ).all()
        db.session.remove()
    out: dict[str, int] = defaultdict(int)
    for state, unqueued, n in rows:
        out[state] += n
        out["total"] += n
        if unqueued and state == "pending":
            out["unqueued"] += n
    return out


def _sink_stats(sink_url: str, text: str) -> dict:
    stats = requests.get(sink_url.replace("/cgi-bin/webhook/send", "/stats"), timeout=10).json()
    return stats["texts"].get(text, {"messages": 0, "keys": 0, "max_per_key": 0}) | {"rejected": stats["rejected"]}


def _wait_until(predicate, *, timeout: float, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    return None


def run(ctx) -> list[dict]:
    port = __import__("bench.harness", fromlist=["free_port"]).free_port()
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    sink_url = f"http://127.0.0.1:{port}/cgi-bin/webhook/send"
    try:
        return _run(ctx, sink_url)
    finally:
        sink.kill()


def _run(ctx, sink_url: str) -> list[dict]:
    raw_rate = _raw_accept_rate(sink_url)
    ctx.env.update(
        {
            "WECOM_WEBHOOK_URL": sink_url,
            "DELIVERY_SEND_CONCURRENCY": str(CONCURRENCY),
            "DELIVERY_SENDING_TIMEOUT_SECONDS": "10",
            "DELIVERY_REQUEUE_AFTER_SECONDS": "10",
            "SCHEDULER_LEADER_TTL_SECONDS": "5",
        }
    )
    host_id = _setup_groups(ctx)
    workers = [ctx.start_worker("deliveries") for _ in range(WORKERS)]
    scheduler = ctx.start_scheduler()

    due = _schedule_post(ctx, host_id, "run-1")
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 0.5))
    enqueued_at = _wait_until(
        lambda: (lambda c: c["total"] == GROUPS and c["unqueued"] == 0 and time.time())(_counts(ctx, "run-1")),
        timeout=120,
    )
    enqueue_s = (enqueued_at - due.timestamp()) if enqueued_at else float("inf")
    delivered_at = _wait_until(
        lambda: _sink_stats(sink_url, "run-1")["messages"] >= GROUPS and time.time(), timeout=600, poll=0.05
    )
    time.sleep(2)
    first = _sink_stats(sink_url, "run-1")
    delivered_s = (delivered_at - due.timestamp()) if delivered_at else float("inf")
    states = dict(_counts(ctx, "run-1"))
    rate = GROUPS / delivered_s if delivered_at else 0.0

    # Failure run: SIGKILL the worker and the scheduler mid fan-out, restart them, check exactly once or unknown.
    due2 = _schedule_post(ctx, host_id, "run-2")
    time.sleep(max(0.0, (due2 - datetime.now(UTC)).total_seconds()))
    _wait_until(lambda: _sink_stats(sink_url, "run-2")["messages"] >= GROUPS // 3, timeout=120, poll=0.02)
    for proc in workers + [scheduler]:
        ctx.stop(proc, sig=signal.SIGKILL)
    killed_at = _sink_stats(sink_url, "run-2")["messages"]
    workers = [ctx.start_worker("deliveries") for _ in range(WORKERS)]
    scheduler = ctx.start_scheduler()
    settled = _wait_until(
        lambda: (lambda c: c["total"] == GROUPS and c["pending"] + c["sending"] == 0 and c)(_counts(ctx, "run-2")),
        timeout=300,
        poll=0.5,
    )
    time.sleep(2)
    second = _sink_stats(sink_url, "run-2")
    states2 = dict(_counts(ctx, "run-2"))
    for proc in workers + [scheduler]:
        ctx.stop(proc)
    exactly_once_or_unknown = (
        bool(settled)
        and second["max_per_key"] <= 1
        and second["messages"] + states2.get("unknown", 0) >= GROUPS
        and states2.get("sent", 0) <= second["messages"]
    )
    return [
        ctx.line(
            "fanout_enqueue",
            enqueue_s,
            "s",
            1.0,
            1.0,
            ok=enqueue_s <= 1.0,
            higher_is_better=False,
            deliveries=states.get("total", 0),
        ),
        ctx.line(
            "fanout_delivered",
            delivered_s,
            "s",
            delivered_s,
            1.0,
            ok=delivered_at is not None,
            deliveries_per_s=round(rate, 1),
        ),
        ctx.line(
            "fanout_throughput",
            rate,
            "deliveries/s",
            raw_rate,
            0.5,
            states=states,
            workers=WORKERS,
            concurrency_per_worker=CONCURRENCY,
        ),
        ctx.line(
            "fanout_exactly_once",
            first["messages"],
            "messages",
            GROUPS,
            1.0,
            ok=first["messages"] == GROUPS and first["keys"] == GROUPS and first["max_per_key"] == 1,
            sink_rejected_45009=first["rejected"],
        ),
        ctx.line(
            "fanout_kill9",
            second["messages"],
            "messages",
            GROUPS,
            1.0,
            ok=exactly_once_or_unknown,
            received_before_kill=killed_at,
            max_per_key=second["max_per_key"],
            states=states2,
        ),
    ]
