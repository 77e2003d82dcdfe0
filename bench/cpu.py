"""CPU seconds spent by each role of the bench's stack while a load runs, read from /proc (Linux).

Ratios say how a path compares with a trivial one; the CPU each process spends per request says what a
core buys, which is how the city's core count is worked out (docs/CAPACITY.md). Roles are told apart by
command line: the gunicorn web workers, Redis, PostgreSQL, the scheduler, RQ workers and the load generator
(wrk), which shares the cores with them. Only the bench's own processes count: project processes in the
sessions the bench started, wrk processes it spawned, PostgreSQL's backends of its database and the
server's own background processes. Redis is one shared server, counted whole. Processes are sampled every
0.2 s, so one that starts and ends between two samples is missed (the stack's processes all live long).
Beside the roles, the whole machine's time (/proc/stat) says what share of the cores stayed idle, went to
interrupts (the loopback network's softirqs, charged to no process) or was stolen by the hypervisor.
"""

import os
import threading
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
ROLES = (
    ("gunicorn", "web"),
    ("redis-server", "redis"),
    ("postgres", "postgres"),
    (" scheduler ", "scheduler"),
    (" worker ", "worker"),
    ("wrk", "wrk"),
)


def _role(cmdline: str) -> str | None:
    for marker, role in ROLES:
        if marker in cmdline or (role == "wrk" and cmdline.split(" ", 1)[0].endswith("/wrk")):
            return role
    return None


def _ours(role: str, cmdline: str, fields: list[str], sessions: set[int], database: str | None) -> bool:
    if role == "wrk":
        return int(fields[1]) == os.getpid()
    if role == "postgres":
        # A client backend reads "postgres: user database host(port) state"; background processes name no client.
        return "(" not in cmdline or (database is not None and f" {database} " in cmdline)
    if role == "redis":
        return True
    return int(fields[3]) in sessions


def _machine() -> list[int]:
    """The machine's CPU ticks: user, nice, system, idle, iowait, irq, softirq, steal."""
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]


def _shares(before: list[int], after: list[int]) -> dict[str, float]:
    spent = [b - a for a, b in zip(before, after)]
    total = sum(spent) or 1
    return {
        "idle": round((spent[3] + spent[4]) / total, 3),
        "interrupts": round((spent[5] + spent[6]) / total, 3),
        "steal": round(spent[7] / total, 3),
    }


def _sample(sessions: set[int], database: str | None) -> dict[int, tuple[str, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        role = _role(" " + cmdline)
        if role is None:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if not _ours(role, cmdline, fields, sessions, database):
            continue
        found[int(entry.name)] = (role, (int(fields[11]) + int(fields[12])) / TICKS)
    return found


class CpuMeter:
    """Per-role CPU seconds between start() and stop(), processes born meanwhile included."""

    def __init__(self, *, sessions: set[int], database: str | None) -> None:
        self._sessions, self._database = sessions, database
        self._before: dict[int, tuple[str, float]] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stopping = threading.Event()
        self._machine_before: list[int] = []
        self.machine: dict[str, float] = {}
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            self._last.update(_sample(self._sessions, self._database))

    def start(self) -> "CpuMeter":
        self._machine_before = _machine()
        self._before = _sample(self._sessions, self._database)
        self._last = dict(self._before)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stopping.set()
        self._thread.join()
        self.machine = _shares(self._machine_before, _machine())
        self._last.update(_sample(self._sessions, self._database))
        spent: dict[str, float] = {}
        for pid, (role, seconds) in self._last.items():
            spent[role] = spent.get(role, 0.0) + seconds - self._before.get(pid, (role, 0.0))[1]
        return {role: seconds for role, seconds in spent.items() if seconds > 0}
