"""A newcomer's `./scripts/run`: embedded stores, all three processes, a sandbox login, a clean stop."""

import os
import signal
import subprocess
from pathlib import Path

import requests

from tests.processes import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def test_scripts_run_serves_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"PORT": str(port), "INSTANCE_PATH": str(tmp_path / "instance")})
    log = open(tmp_path / "run.log", "w+b")  # noqa: SIM115 - the child process writes it until it ends
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, tmp_path / "run.log", 240)
        login = requests.post(base + "/api/v1/auth/login", json={"code": "sandbox:mom03"}, timeout=10).json()
        assert login["created"] is False, "demo users are seeded"
        me = requests.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {login['token']}"}, timeout=10).json()
        assert me["nickname"] == "朵朵妈妈"
        assert requests.get(base + "/api/docs", timeout=10).status_code == 200
        output = (tmp_path / "run.log").read_text()
        assert "sandbox:mom01" in output and f"{base}/api/docs" in output
        assert "is the leader" in output and "Listening on" in output, "scheduler and worker are running"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(60)
    assert code == 0
    assert "stopped." in (tmp_path / "run.log").read_text()
    assert not _processes_with_env(f"INSTANCE_PATH={tmp_path / 'instance'}"), "every child process stopped"


def _processes_with_env(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
