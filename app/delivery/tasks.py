"""The delivery engine's clock jobs and RQ job: the edges of its use cases, one transaction per step or batch."""

import time

from app.core.clock import now_utc
from app.core.db import use_case
from app.core.jobs import batch_job
from app.core.scheduler import ScheduledJob
from app.delivery import engine, planning, sending


def _wait_for_imminent() -> None:
    """Sleep until an occurrence due within the next tick, so it goes out on its second, not up to a tick late."""
    with use_case():
        next_due = engine.next_due_at()
    now = now_utc()
    if next_due is not None and now < next_due <= now + engine.TICK:
        time.sleep((next_due - now).total_seconds())


def dispatch_due() -> int:
    """Dispatch every due occurrence, each in its own transaction; returns how many deliveries were written."""
    written, passed = 0, set()
    now = now_utc()
    while True:
        with use_case():
            due = engine.due_occurrences(now=now, passed=passed)
        if not due:
            return written
        for occurrence_id in due:
            passed.add(occurrence_id)
            with use_case():
                written += engine.dispatch_occurrence(occurrence_id=occurrence_id)


@batch_job
def tick() -> None:
    """The scheduler's heartbeat for deliveries: dispatch what is due, release retries, hand work to RQ."""
    _wait_for_imminent()
    dispatch_due()
    with use_case():
        engine.release_retries()
    with use_case():
        engine.enqueue_ready()


@batch_job
def reconcile() -> dict[str, int]:
    """Stuck sends become unknown, lost jobs are handed over again, and every active post is planned afresh."""
    with use_case():
        counts = engine.settle_stalled()
    with use_case():
        counts["planned"] = planning.plan_all()
    return counts


@batch_job
def poll_customer_groups() -> dict[str, int]:
    """Settle the customer-group mass messages hosts have (or have not) confirmed in WeCom."""
    with use_case():
        return sending.poll_customer_groups()


@batch_job
def send_chunk(delivery_ids: list[int]) -> dict[str, int]:
    """RQ job: send a chunk of deliveries (safe to run twice: only pending ones are claimed); counts per outcome.

    The claim commits before anything is sent, so a worker lost mid-send leaves `sending` rows for the reconciler.
    """
    with use_case():
        chunk = sending.claim(delivery_ids)
    with use_case():
        sending.render(chunk)
    sending.send(chunk)
    with use_case():
        return sending.record(chunk)


SCHEDULE = [
    # Sub-second, so a due post is written and enqueued well within a second of its time.
    ScheduledJob(
        id="delivery-tick",
        func=tick,
        trigger="interval",
        trigger_args={"seconds": engine.TICK.total_seconds()},
        misfire_grace_time=5,
    ),
    ScheduledJob(
        id="delivery-reconcile", func=reconcile, trigger="interval", trigger_args={"seconds": 30}, misfire_grace_time=60
    ),
    ScheduledJob(
        id="delivery-poll-customer-groups",
        func=poll_customer_groups,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
]
