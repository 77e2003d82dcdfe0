"""Jobs are edges: each declares its transactions, and the clock, the queue and the worker refuse one that does not."""

import pytest
from rq import Queue
from sqlalchemy import func, select

from app import domain_modules
from app.catalog.models import Category
from app.core.clock import now_utc
from app.core.db import db, use_case
from app.core.jobs import EdgeJob, UnmarkedJob, batch_job, job
from app.core.queue import enqueue
from app.core.redis import get_redis
from app.core.scheduler import ScheduledJob
from app.core.worker import run_worker


def _categories() -> int:
    return db.session.scalar(select(func.count()).select_from(Category))


def add_category(name: str) -> None:
    db.session.add(Category(name=name, created_at=now_utc()))
    db.session.flush()


def test_the_clock_refuses_a_function_that_is_not_a_job():
    with pytest.raises(UnmarkedJob):
        ScheduledJob(id="unmarked", func=lambda: None, trigger="interval", trigger_args={"seconds": 60})


def test_the_queue_refuses_a_function_that_is_not_a_job(app):
    with pytest.raises(UnmarkedJob):
        enqueue("default", add_category, "奶粉")
    with pytest.raises(UnmarkedJob):
        enqueue("default", "tests.test_job_edges.add_category", "奶粉")


def test_the_worker_fails_a_job_that_is_not_one_and_runs_nothing(app):
    queued = Queue("default", connection=get_redis(), job_class=EdgeJob).enqueue(add_category, "奶粉")
    run_worker(app, queues=["default"], burst=True)
    assert queued.get_status(refresh=True) == "failed"
    assert "UnmarkedJob" in queued.latest_result().exc_string
    assert _categories() == 0


def test_a_job_commits_its_work_when_it_returns(app):
    job(add_category)("奶粉")
    db.session.rollback()  # nothing of it was left for anyone else to commit
    assert _categories() == 1


def test_a_failing_job_leaves_nothing_written(app):
    @job
    def half_then_fails():
        add_category("奶粉")
        raise RuntimeError("the job fails after its first write")

    with pytest.raises(RuntimeError):
        half_then_fails()
    assert _categories() == 0


def test_a_job_is_retried_from_the_start_on_the_errors_it_names(app):
    attempts = []

    @job(retry_on=(LookupError,), attempts=3)
    def loses_two_races():
        attempts.append(1)
        add_category(f"第{len(attempts)}次")
        if len(attempts) < 3:
            raise LookupError("a concurrent writer got there first")

    loses_two_races()
    assert len(attempts) == 3
    assert list(db.session.scalars(select(Category.name))) == ["第3次"]


def test_a_batch_job_keeps_the_batches_that_committed(app):
    @batch_job
    def two_batches_then_fails():
        with use_case():
            add_category("第一批")
        with use_case():
            add_category("第二批")
            raise RuntimeError("the second batch fails")

    with pytest.raises(RuntimeError):
        two_batches_then_fails()
    assert list(db.session.scalars(select(Category.name))) == ["第一批"]


def test_every_domain_job_declares_its_transactions(app):
    scheduled = [entry for module in domain_modules("tasks") for entry in getattr(module, "SCHEDULE", [])]
    assert scheduled and all(getattr(entry.func, "_job_edge", None) in ("use_case", "batches") for entry in scheduled)
