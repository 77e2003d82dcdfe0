"""Tests that start real server processes: a free loopback port, and waiting for a process to serve."""

import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base_url: str, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    """Wait until `base_url`/readyz answers 200; fail with the process's log if it dies or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(base_url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{base_url} did not become ready"
        time.sleep(0.2)
