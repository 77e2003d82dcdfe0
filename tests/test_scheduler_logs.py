"""The clock's log says what its jobs did, not that it ticked."""

import gc
import logging

import pytest
from apscheduler.schedulers.blocking import BlockingScheduler

from app.core.jobs import job as marked_job
from app.core.redis import get_redis
from app.core.scheduler import LeaderLock, ScheduledJob, run_leader_job, run_scheduler


def _run(app, func, job_id="t"):
    job = ScheduledJob(id=job_id, func=marked_job(func), trigger="interval", trigger_args={"seconds": 60})
    return run_leader_job(app, LeaderLock(get_redis(), ttl_seconds=5), job)


def _lines(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.core.scheduler"]


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        (12, "checkout-complete-paid: 12"),
        ({"expired": 3, "paid": 0, "skipped": 1}, "checkout-complete-paid: expired 3, skipped 1"),
    ],
)
def test_a_job_that_did_something_says_what_in_one_line(app, caplog, outcome, said):
    caplog.set_level(logging.INFO, logger="app.core.scheduler")
    _run(app, lambda: outcome, job_id="checkout-complete-paid")
    [(level, message)] = _lines(caplog)
    assert level == logging.INFO and message.startswith(said + " (") and message.endswith(" s)")


@pytest.mark.parametrize("outcome", [None, 0, {}, {"expired": 0, "paid": 0}, False])
def test_a_run_that_did_nothing_says_nothing(app, caplog, outcome):
    caplog.set_level(logging.DEBUG)
    assert _run(app, lambda: outcome) is True
    assert _lines(caplog) == []


def test_a_failed_run_is_an_error_with_its_job(app, caplog):
    def broken():
        raise RuntimeError("boom")

    _run(app, broken, job_id="coupons-expire")
    [(level, message)] = _lines(caplog)
    assert level == logging.ERROR and message == "scheduled job coupons-expire failed"


def test_apscheduler_speaks_only_from_warning_up(app, monkeypatch):
    monkeypatch.setattr(BlockingScheduler, "start", lambda self: None)
    apscheduler = logging.getLogger("apscheduler")
    try:
        run_scheduler(app)
        assert not apscheduler.isEnabledFor(logging.INFO)
        assert apscheduler.isEnabledFor(logging.WARNING)  # missed runs and skipped overlaps still show
    finally:
        apscheduler.setLevel(logging.NOTSET)
        gc.unfreeze()
