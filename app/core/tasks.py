from app.core import idempotency
from app.core.scheduler import ScheduledJob

SCHEDULE = [
    ScheduledJob(
        id="purge-idempotency-records",
        func=idempotency.purge_expired,
        trigger="interval",
        trigger_args={"minutes": 30},
        misfire_grace_time=600,
    ),
]
