"""The edges own the transactions: a view's use case commits only when it answers below 400, and jobs declare
theirs (the clock, the queue and the worker refuse a function that does not)."""

import pytest
from rq import Queue
from sqlalchemy import func, select

from app import domain_modules
from app.catalog.models import Category
from app.core.clock import now_utc
from app.core.db import db, use_case
from app.core.jobs import EdgeJob, UnmarkedJob, batch_job, job
from app.core.models import IdempotencyRecord
from app.core.queue import enqueue
from app.core.redis import get_redis
from app.core.scheduler import ScheduledJob
from app.core.worker import run_worker
from app.ledger.models import LedgerJournal


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_refused_request_leaves_nothing_written_and_its_key_free(api):
    operator = api.as_user("op", roles=("operator",))
    mom = api.as_user("mom")
    debit = {"user_id": mom.user["id"], "amount_fen": -500, "account": "available", "reason": "too much"}
    headers = {"Idempotency-Key": "adjust-1"}
    # The journal's lines are written before the guarded balance refuses the debit: the edge rolls all of it back.
    refused = operator.post("/api/v1/admin/adjustments", json=debit, headers=headers)
    assert refused.status_code == 409 and refused.get_json()["code"] == "insufficient_balance"
    assert (_count(LedgerJournal), _count(IdempotencyRecord)) == (0, 0)
    credit = dict(debit, amount_fen=500, reason="the key was not spent by the refusal")
    assert operator.post("/api/v1/admin/adjustments", json=credit, headers=headers).status_code == 201
    assert (_count(LedgerJournal), _count(IdempotencyRecord)) == (1, 1)


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
        enqueue("default", "tests.test_edges.add_category", "奶粉")


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
