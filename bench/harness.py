"""The benchmark context: fresh stores, gunicorn on loopback, wrk, and the one-line JSON result."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from sqlalchemy import create_engine, text

from app.core.config import PROJECT_ROOT, database_uri
from app.core.redis import claim_numbered_db, release_numbered_db
from bench.cpu import CpuMeter

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRKJSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    non2xx: int
    cpu_us: dict = field(default_factory=dict)  # CPU µs per request, by role (bench/cpu.py)
    machine: dict = field(default_factory=dict)  # shares of the cores idle, in interrupts, stolen (bench/cpu.py)

    def as_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in self.__dict__.items()}

    def per_web_core(self) -> float | None:
        """Requests one core of web workers serves, from their CPU per request."""
        web = self.cpu_us.get("web")
        return round(1e6 / web) if web else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: installing wrk", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


@dataclass
class BenchContext:
    """What a scenario gets: the running stack and measuring tools."""

    base_url: str
    database_uri: str
    redis_url: str
    env: dict
    tmp: Path
    app: object
    healthz: WrkResult | None = None
    processes: list = field(default_factory=list)

    def wrk(
        self,
        path: str,
        *,
        duration: int = 10,
        connections: int = 16,
        threads: int = 2,
        lua: str = "",
        timeout_s: int = 10,
        stop_when: Callable[[], bool] | None = None,
    ) -> WrkResult:
        """Load `path` with wrk; `lua` may define request()/response() (a done() is appended).

        `stop_when` (polled every 50 ms) ends the run before `duration` once it returns True: wrk stops all
        its threads at once on SIGINT and reports what it measured until then.
        """
        script = self.tmp / f"wrk-{time.monotonic_ns()}.lua"
        script.write_text(lua + "\n" + WRK_DONE)
        args = [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            f"--timeout={timeout_s}s",
            "-s",
            str(script),
            self.base_url + path,
        ]
        meter = CpuMeter(
            sessions={p.pid for p in self.processes}, database=urlsplit(self.database_uri).path.lstrip("/") or None
        ).start()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if stop_when is not None:
            while proc.poll() is None and not stop_when():
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
        spent = meter.stop()
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, args, out, err)
        line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
        data = json.loads(line[len("WRKJSON ") :])
        seconds = data["duration_us"] / 1e6
        return WrkResult(
            requests=data["requests"],
            seconds=seconds,
            rps=data["requests"] / seconds,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            socket_errors=data["socket_errors"],
            non2xx=data["non2xx"],
            cpu_us={role: round(seconds / max(data["requests"], 1) * 1e6) for role, seconds in sorted(spent.items())},
            machine=meter.machine,
        )

    def spawn(self, args: list[str], *, name: str, env: dict | None = None) -> subprocess.Popen:
        """Start a project process (flask command, gunicorn) with the bench stores."""
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child process writes it until it ends
        proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def start_worker(self, *queues: str, burst: bool = False) -> subprocess.Popen:
        args = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "run"]
        for q in queues:
            args += ["--queue", q]
        return self.spawn(args + (["--burst"] if burst else []), name="worker")

    def start_scheduler(self) -> subprocess.Popen:
        return self.spawn([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"], name="scheduler")

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def line(
        self,
        scenario: str,
        value: float,
        unit: str,
        baseline: float,
        target: float,
        ok: bool | None = None,
        higher_is_better: bool = True,
        **extra,
    ) -> dict:
        """The result line: ratio = value / baseline, ok when the ratio meets the target."""
        ratio = value / baseline if baseline else 0.0
        if ok is None:
            ok = ratio >= target if higher_is_better else ratio <= target
        return {
            "scenario": scenario,
            "value": round(value, 3),
            "unit": unit,
            "baseline": round(baseline, 3),
            "ratio": round(ratio, 3),
            "target": target,
            "ok": bool(ok),
            **extra,
        }


def _stores() -> tuple[str, str, callable]:
    base = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    admin_uri = database_uri(base, Path("."))
    name = f"mmq_bench_{int(time.time())}_{os.getpid()}"
    admin = create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    uri = urlunsplit(urlsplit(admin_uri)._replace(path="/" + name))
    redis_url = claim_numbered_db(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        release_numbered_db(redis_url)

    return uri, redis_url, drop


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def open_context() -> tuple[BenchContext, callable]:
    """Fresh bench database and Redis db, migrated; gunicorn started; /healthz measured."""
    uri, redis_url, drop = _stores()
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="mmq-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": uri,
        "REDIS_URL": redis_url,
        "INSTANCE_PATH": str(tmp / "instance"),
        "SECRET_KEY": "bench-secret",
        "LOGIN_RATE_LIMIT": "10000000/minute",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(
        {k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "INSTANCE_PATH", "SECRET_KEY", "LOGIN_RATE_LIMIT")}
    )
    from app import create_app

    app = create_app()
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    ctx = BenchContext(
        base_url=f"http://127.0.0.1:{port}", database_uri=uri, redis_url=redis_url, env=env, tmp=tmp, app=app
    )
    ctx.web = ctx.spawn(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], name="gunicorn"
    )
    wait_ready(ctx.base_url)
    ctx.wrk("/healthz", duration=3)  # warm-up
    ctx.healthz = ctx.wrk("/healthz", duration=10)

    def close():
        for proc in reversed(ctx.processes):
            ctx.stop(proc)
        with app.app_context():
            from app.core.db import db

            db.engine.dispose()
        drop()
        shutil.rmtree(tmp, ignore_errors=True)

    return ctx, close
