"""The clock process: APScheduler with a Redis leader lock, so replicas never both run the jobs.

Every replica runs the same scheduler; each job first renews (or tries to take) the lease, and runs
only while this replica holds it. A stalled leader loses the lease after its TTL and another takes over.
Jobs only write rows and enqueue work; they never send anything themselves.

Logs say what happened: a job that did something (its result counts more than nothing) is one INFO line, a failed
one an ERROR with its traceback; APScheduler's own lines (two per run, several runs a second) only from WARNING up.
"""

import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from redis import Redis

from app.core.db import db
from app.core.jobs import require_job
from app.core.redis import get_redis, key

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaderLock:
    """A lease in Redis held by one scheduler replica at a time."""

    def __init__(self, redis: Redis, *, ttl_seconds: int, name: str = "scheduler-leader"):
        self.redis = redis
        self.key = key(name)
        self.ttl_ms = ttl_seconds * 1000
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take or extend the lease; True while this replica leads."""
        return bool(self._renew(keys=[self.key], args=[self.identity, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.identity])

    def holder(self) -> str | None:
        value = self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class ScheduledJob:
    """A job a domain asks the clock to run (declared in its tasks.py as SCHEDULE); `func` is a marked job."""

    id: str
    func: Callable[[], Any]
    trigger: str
    trigger_args: dict[str, Any] = field(default_factory=dict)
    misfire_grace_time: int = 30

    def __post_init__(self) -> None:
        require_job(self.func)


def collect_jobs(app: Flask) -> list[ScheduledJob]:
    return list(app.extensions.get("scheduled_jobs", []))


def run_leader_job(app: Flask, lock: LeaderLock, job: ScheduledJob) -> bool:
    """Run one job if this replica leads, logging what it did; returns whether it ran."""
    if not lock.acquire():
        return False
    with app.app_context():
        started = time.monotonic()
        try:
            outcome = job.func()  # a marked job: it committed or rolled back its own use case(s)
        except Exception:
            log.exception("scheduled job %s failed", job.id)
        else:
            done = what_it_did(outcome)
            if done:
                log.info("%s: %s (%.2f s)", job.id, done, time.monotonic() - started)
        finally:
            db.session.remove()
    return True


def what_it_did(outcome: object) -> str | None:
    """A job's result in a log line's words (`expired 3, paid 1`), or None when it did nothing.

    Jobs return how many things they handled, as a number or as counts by name; a run that handled nothing
    (the usual run of a frequent job) is not worth a line.
    """
    if outcome is None or isinstance(outcome, bool):
        return None
    if isinstance(outcome, Mapping):
        return ", ".join(f"{name} {count}" for name, count in outcome.items() if count) or None
    return str(outcome) if outcome else None


def build_scheduler(app: Flask, lock: LeaderLock) -> BlockingScheduler:
    """A scheduler with every domain job plus the lease heartbeat, stable ids and explicit misfire rules."""
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    heartbeat_seconds = max(1, lock.ttl_ms // 3000)
    leading = threading.Event()

    def heartbeat() -> None:
        if lock.acquire():
            if not leading.is_set():
                log.info("scheduler %s is the leader", lock.identity)
            leading.set()
        else:
            if leading.is_set():
                log.warning("scheduler %s lost the lead to %s", lock.identity, lock.holder())
            leading.clear()

    scheduler.add_job(
        heartbeat,
        "interval",
        seconds=heartbeat_seconds,
        id="leader-heartbeat",
        replace_existing=True,
        misfire_grace_time=heartbeat_seconds,
    )
    for job in collect_jobs(app):
        scheduler.add_job(
            run_leader_job,
            job.trigger,
            args=[app, lock, job],
            id=job.id,
            name=job.id,
            replace_existing=True,
            misfire_grace_time=job.misfire_grace_time,
            **job.trigger_args,
        )
    heartbeat()
    return scheduler


def run_scheduler(app: Flask) -> None:
    """Run the clock until stopped, releasing the lease on the way out."""
    with app.app_context():
        lock = LeaderLock(get_redis(), ttl_seconds=app.config["SCHEDULER_LEADER_TTL_SECONDS"])
    # Its "Running job" and "executed successfully" would fill the log twice per run (the delivery tick runs
    # twice a second); what a run did is logged by run_leader_job, and misses and failures are warnings.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = build_scheduler(app, lock)
    # The app, its models and the scheduler live as long as the process: keep them out of the collector's
    # full passes, which a big batch of clicks or rows would otherwise set off over the whole heap.
    gc.freeze()
    log.info("scheduler %s starting with jobs: %s", lock.identity, ", ".join(j.id for j in scheduler.get_jobs()))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lock.release()
