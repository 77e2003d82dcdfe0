"""docs/WALKTHROUGH.md, run for real: its shell blocks in one bash session, as a newcomer types them.

The app is built as `./scripts/run` builds it, with the settings the walkthrough exports before
`./scripts/run`, seeded with the demo data and served on a loopback port from a thread (the walkthrough's
`http://127.0.0.1:8000` points there). Bash runs every `sh` block after that first one with the
walkthrough's own curl, jq and openssl, and stops at the first command that fails; curl fails on any
4xx or 5xx answer. Three shell functions stand in for what would take real time or another process:

- `date` tells the time of the app's clock, which this test holds;
- `sleep N` moves that clock N seconds on and runs the scheduled jobs that fall due meanwhile, as the
  scheduler process would (the work they queue runs at once, as the worker would);
- `flask --app wsgi ...` runs the command in an app built from the command's own environment, as a
  second terminal would.

A `text` block right after an `sh` block is what that block prints, line for line.
"""

import os
import re
import shutil
import subprocess
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from app import create_app
from app.affiliate import clicks
from app.core import clock
from app.core.config import load_config
from app.core.db import db

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "docs" / "WALKTHROUGH.md"
DOC_BASE_URL = "http://127.0.0.1:8000"
CONTROL = "/__walkthrough__"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
EXPORT = re.compile(r"^export ((?:[A-Z][A-Z0-9_]*=\S+[ \t]*)+)(?:#.*)?$", re.M)
MARKER = "@@walkthrough block {}@@"
LONGEST_WAIT = timedelta(hours=2)  # a wait loop whose condition never holds fails instead of spinning
TOOLS = ("bash", "curl", "jq", "openssl")

PRELUDE = r"""
set -euo pipefail
trap 'echo "walkthrough: \"$BASH_COMMAND\" failed with status $?" >&2' ERR
date() { command date -d "@$(curl -s "$WALKTHROUGH_CONTROL/now")" "$@"; }
sleep() { curl -s -X POST "$WALKTHROUGH_CONTROL/sleep?seconds=$1" >/dev/null; }
flask() {
  if [ "$#" -lt 3 ] || [ "$1 $2" != "--app wsgi" ]; then
    echo "walkthrough: run commands as flask --app wsgi ..." >&2
    return 2
  fi
  shift 2
  curl -s -X POST "$WALKTHROUGH_CONTROL/flask" -H 'Content-Type: application/json' \
       -d "$(jq -n '{args: $ARGS.positional, env: env}' --args -- "$@")"
}
"""


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int


def fenced_blocks(markdown: str) -> list[Block]:
    return [Block(m.group(1), m.group(2), markdown.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(markdown)]


def stack_settings(first: Block) -> dict[str, str]:
    """The settings exported before `./scripts/run` in the walkthrough's first block."""
    assert "./scripts/run" in first.text, "the walkthrough starts with the block that runs ./scripts/run"
    settings = {}
    for match in EXPORT.finditer(first.text):
        settings.update(pair.split("=", 1) for pair in match.group(1).split())
    return settings


def app_settings(stores, exported: dict[str, str]) -> dict:
    """What a process of the stack gets: the test's stores, jobs run at once, and the walkthrough's settings
    (each a whole number of days or seconds)."""
    return {
        "SQLALCHEMY_DATABASE_URI": stores["database_uri"],
        "REDIS_URL": stores["redis_url"],
        "INSTANCE_PATH": stores["instance_path"],
        "RQ_ASYNC": False,
        **{name: int(value) for name, value in exported.items()},
    }


def _trigger(job, start: datetime):
    if job.trigger == "interval":
        return IntervalTrigger(**job.trigger_args, start_date=start + timedelta(**job.trigger_args), timezone=UTC)
    if job.trigger == "cron":
        return CronTrigger(**job.trigger_args, timezone=UTC)
    raise AssertionError(f"job {job.id}: the walkthrough's scheduler knows interval and cron triggers only")


class Scheduler:
    """The clock process on the test's clock: moving the clock on runs each job whose trigger fell due."""

    def __init__(self, app, start: datetime):
        self.app, self.start, self.now = app, start, start
        clock.freeze(start)
        self.jobs = [(job, _trigger(job, start)) for job in app.extensions["scheduled_jobs"]]
        self.due = {job.id: trigger.get_next_fire_time(None, start) for job, trigger in self.jobs}

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        if self.now - self.start > LONGEST_WAIT:
            raise AssertionError(f"the walkthrough waited more than {LONGEST_WAIT} for something that never came")
        clock.freeze(self.now)
        for job, trigger in sorted(self.jobs, key=lambda pair: self.due[pair[0].id] or self.now):
            due = self.due[job.id]
            if due is None or due > self.now:
                continue
            # Unlike the scheduler, which logs a failing job and carries on, a failure here fails the walkthrough.
            with self.app.app_context():
                try:
                    job.func()
                finally:
                    db.session.remove()
            self.due[job.id] = trigger.get_next_fire_time(None, self.now + timedelta(microseconds=1))


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        pass


class Stack:
    """The app as WSGI, plus the endpoints the shell functions call: the clock and the CLI."""

    def __init__(self, stores, exported: dict[str, str]):
        self.stores, self.exported = stores, exported
        self.app = create_app(app_settings(stores, exported))
        self.scheduler = Scheduler(self.app, datetime.now(UTC).replace(microsecond=0))

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(CONTROL + "/"):
            return self.app(environ, start_response)
        request = Request(environ)
        try:
            status, body = getattr(self, "_" + request.path.removeprefix(CONTROL + "/"))(request)
        except Exception:
            status, body = 500, traceback.format_exc()
        return Response(body, status)(environ, start_response)

    def _now(self, request: Request) -> tuple[int, str]:
        return 200, str(int(self.scheduler.now.timestamp()))

    def _sleep(self, request: Request) -> tuple[int, str]:
        self.scheduler.advance(float(request.args["seconds"]))
        return 200, ""

    def _flask(self, request: Request) -> tuple[int, str]:
        call = request.get_json()
        return self.cli(call["args"], {k: v for k, v in call["env"].items() if k in self.exported})

    def cli(self, args: list[str], exported: dict[str, str]) -> tuple[int, str]:
        """Run `flask --app wsgi ARGS` as a process with these of the stack's settings in its environment."""
        app = create_app(app_settings(self.stores, exported))
        try:
            result = app.test_cli_runner().invoke(args=args)
        finally:
            with app.app_context():
                db.engine.dispose()
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            return 500, result.output + "".join(traceback.format_exception(result.exception))
        return (200 if result.exit_code == 0 else 500), result.output

    def close(self) -> None:
        with self.app.app_context():
            clicks.flush_pending()
            db.engine.dispose()


def run_blocks(blocks: list[Block], url: str, tmp_path: Path) -> dict[int, str]:
    """Run the blocks in one bash session; returns what each printed, by index."""
    (tmp_path / ".curlrc").write_text("fail-with-body\nshow-error\n")
    script = PRELUDE + "".join(
        f"printf '\\n%s\\n' '{MARKER.format(i)}'\n{block.text.replace(DOC_BASE_URL, url)}\n"
        for i, block in enumerate(blocks)
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CURL_HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "WALKTHROUGH_CONTROL": url + CONTROL,
    }
    done = subprocess.run(["bash", "-c", script], check=False, env=env, capture_output=True, text=True, timeout=240)
    printed, current = {}, None
    for line in done.stdout.splitlines():
        found = re.fullmatch(MARKER.format(r"(\d+)"), line)
        if found:
            current = int(found.group(1))
            printed[current] = []
        elif current is not None:
            printed[current].append(line)
    if done.returncode != 0:
        block = blocks[current] if current is not None else None
        pytest.fail(
            f"the walkthrough stopped in the block at line {block.line if block else '?'} of {WALKTHROUGH.name}:\n"
            + (block.text if block else "")
            + f"\n--- it printed:\n{chr(10).join(printed.get(current, []))}\n--- stderr:\n{done.stderr[-4000:]}"
        )
    return {i: "\n".join(lines) for i, lines in printed.items()}


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


@pytest.mark.commits
def test_the_walkthrough_runs_as_written(stores, tmp_path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"the walkthrough needs {', '.join(missing)} on PATH"
    blocks = fenced_blocks(WALKTHROUGH.read_text(encoding="utf-8"))
    shell = [i for i, block in enumerate(blocks) if block.lang == "sh"]
    stack = Stack(stores, stack_settings(blocks[shell[0]]))
    server = make_server("127.0.0.1", 0, stack, request_handler=QuietHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    try:
        status, output = stack.cli(["demo", "seed"], stack.exported)
        assert status == 200, output
        serving.start()
        printed = run_blocks([blocks[i] for i in shell[1:]], f"http://127.0.0.1:{server.server_port}", tmp_path)
    finally:
        if serving.is_alive():
            server.shutdown()
        server.server_close()
        stack.close()
    for number, index in enumerate(shell[1:]):
        expected = blocks[index + 1] if index + 1 < len(blocks) else None
        if expected is not None and expected.lang == "text":
            assert _lines(printed[number]) == _lines(expected.text), (
                f"the block at line {blocks[index].line} printed something other than the text block after it"
            )


def test_the_walkthrough_settings_are_read_from_the_environment():
    blocks = fenced_blocks(WALKTHROUGH.read_text(encoding="utf-8"))
    exported = stack_settings(next(block for block in blocks if block.lang == "sh"))
    assert exported
    settings = load_config(environ=exported)
    assert {name: settings.get(name) for name in exported} == {name: int(value) for name, value in exported.items()}
