from app.core.scheduler import ScheduledJob
from app.ledger import verification

SCHEDULE = [
    ScheduledJob(
        id="ledger-verify",
        func=verification.enqueue_check,
        trigger="interval",
        trigger_args={"minutes": 10},
        misfire_grace_time=300,
    ),
]
