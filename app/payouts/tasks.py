from app.core.scheduler import ScheduledJob
from app.payouts import service

SCHEDULE = [
    ScheduledJob(
        id="payouts-resolve",
        func=service.resolve_stuck,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
]
