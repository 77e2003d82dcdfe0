"""The delivery engine's clock jobs and RQ jobs."""

from app.core.jobs import batch_job
from app.core.scheduler import ScheduledJob
from app.delivery import engine

SCHEDULE = [
    # Sub-second, so a due post is written and enqueued well within a second of its time.
    ScheduledJob(
        id="delivery-tick",
        func=batch_job(engine.tick),
        trigger="interval",
        trigger_args={"seconds": engine.TICK.total_seconds()},
        misfire_grace_time=5,
    ),
    ScheduledJob(
        id="delivery-reconcile",
        func=batch_job(engine.reconcile),
        trigger="interval",
        trigger_args={"seconds": 30},
        misfire_grace_time=60,
    ),
    ScheduledJob(
        id="delivery-poll-customer-groups",
        func=batch_job(engine.poll_customer_groups),
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
]


@batch_job
def send_chunk(delivery_ids: list[int]) -> dict[str, int]:
    """RQ job: send a chunk of deliveries (idempotent: only pending ones are claimed)."""
    return engine.send_chunk(delivery_ids)
