from app.core.jobs import batch_job, job
from app.core.queue import enqueue
from app.core.scheduler import ScheduledJob
from app.orders import flows


@batch_job
def settle() -> int:
    """Settle every order that is due, a use case per batch (a worker job; idempotent, safe to run twice)."""
    return flows.settle_due()


@job
def enqueue_settlement() -> None:
    """The clock's part: put one settlement run on the queue."""
    enqueue("default", settle)


SCHEDULE = [
    ScheduledJob(
        id="orders-settlement",
        func=enqueue_settlement,
        trigger="interval",
        trigger_args={"minutes": 10},
        misfire_grace_time=300,
    ),
]
