"""The benchmarks' CPU meter: a busy process of the bench's counts under its role, another tenant's does not."""

import subprocess
import sys

import pytest

from bench import cpu


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_meter_counts_a_busy_process_under_its_role():
    # A process whose command line names a role, busy for about 0.6 s of CPU.
    # One started in a session of the bench's (counted), one started outside (another tenant's: not counted).
    program = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"
    ours = subprocess.Popen([sys.executable, "-c", program, "scheduler", "run"], start_new_session=True)
    meter = cpu.CpuMeter(sessions={ours.pid}, database=None).start()
    theirs = subprocess.Popen([sys.executable, "-c", program, "worker", "run"], start_new_session=True)
    ours.wait(30), theirs.wait(30)
    spent = meter.stop()
    assert 0.3 <= spent.get("scheduler", 0) <= 1.5 and "worker" not in spent, spent
    assert set(meter.machine) == {"idle", "interrupts", "steal"} and all(0 <= v <= 1 for v in meter.machine.values())


def test_machine_shares_split_the_ticks_between_two_readings():
    # user, nice, system, idle, iowait, irq, softirq, steal
    before, after = [100, 0, 50, 400, 10, 0, 5, 0], [160, 0, 60, 480, 30, 2, 13, 20]
    assert cpu._shares(before, after) == {"idle": 0.5, "interrupts": 0.05, "steal": 0.1}


def test_roles_come_from_the_command_line():
    assert cpu._role(" /srv/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app") == "web"
    assert cpu._role(" /usr/bin/wrk -t2 -c64 http://127.0.0.1") == "wrk"
    assert cpu._role(" python -m flask --app wsgi worker run --queue deliveries") == "worker"
    assert cpu._role(" postgres: postgres mmq_bench 127.0.0.1(5432) idle") == "postgres"
    assert cpu._role(" /usr/bin/redis-server 127.0.0.1:6379") == "redis"
    assert cpu._role(" vim notes.txt") is None
