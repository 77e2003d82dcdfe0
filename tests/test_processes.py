"""The clock's leader lock and the RQ worker, in-process."""

import gc
import time

from apscheduler.schedulers.blocking import BlockingScheduler
from rq import Queue
from sqlalchemy import func, select

from app.core import idempotency
from app.core.clock import now_utc
from app.core.db import db
from app.core.jobs import job as as_job
from app.core.models import IdempotencyRecord
from app.core.redis import get_redis
from app.core.scheduler import LeaderLock, ScheduledJob, build_scheduler, run_leader_job, run_scheduler
from app.core.worker import run_worker


def test_only_one_replica_leads(app):
    first = LeaderLock(get_redis(), ttl_seconds=5)
    second = LeaderLock(get_redis(), ttl_seconds=5)
    assert first.acquire() is True
    assert second.acquire() is False
    assert first.acquire() is True  # renewing its own lease
    assert first.holder() == first.identity
    first.release()
    assert second.acquire() is True and first.acquire() is False


def test_a_stalled_leader_loses_the_lease(app):
    stalled = LeaderLock(get_redis(), ttl_seconds=1)
    standby = LeaderLock(get_redis(), ttl_seconds=1)
    assert stalled.acquire()
    time.sleep(1.2)
    assert standby.acquire() is True
    assert stalled.acquire() is False


def test_jobs_run_only_on_the_leader(app):
    runs = []
    job = ScheduledJob(id="t", func=as_job(lambda: runs.append(1)), trigger="interval", trigger_args={"seconds": 60})
    leader = LeaderLock(get_redis(), ttl_seconds=5)
    follower = LeaderLock(get_redis(), ttl_seconds=5)
    assert run_leader_job(app, leader, job) is True
    assert run_leader_job(app, follower, job) is False
    assert runs == [1]


def test_a_failing_job_does_not_stop_the_clock(app):
    @as_job
    def broken():
        raise RuntimeError("boom")

    job = ScheduledJob(id="broken", func=broken, trigger="interval", trigger_args={"seconds": 60})
    assert run_leader_job(app, LeaderLock(get_redis(), ttl_seconds=5), job) is True


def test_the_scheduler_has_every_domain_job_with_explicit_misfire_rules(app):
    scheduler = build_scheduler(app, LeaderLock(get_redis(), ttl_seconds=6))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert {"leader-heartbeat", "purge-idempotency-records", "purge-expired-sessions"} <= set(jobs)
    assert all(job.misfire_grace_time is not None for job in jobs.values())


def test_the_worker_runs_queued_jobs_in_the_app_context(app):
    db.session.add(
        IdempotencyRecord(owner="1", scope="s", key="k", request_hash="h", created_at=now_utc().replace(year=2000))
    )
    db.session.commit()
    Queue("default", connection=get_redis()).enqueue(idempotency.purge_expired)
    run_worker(app, queues=["default"], burst=True)
    assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def test_the_scheduler_starts_with_its_long_lived_heap_frozen(app, monkeypatch):
    frozen = []
    monkeypatch.setattr(BlockingScheduler, "start", lambda self: frozen.append(gc.get_freeze_count()) or None)
    try:
        run_scheduler(app)
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 0  # full collections during big batches skip the app's own objects
