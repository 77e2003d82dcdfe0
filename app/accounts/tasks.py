from app.accounts import service
from app.core.scheduler import ScheduledJob

SCHEDULE = [
    ScheduledJob(
        id="purge-expired-sessions",
        func=service.purge_expired_sessions,
        trigger="interval",
        trigger_args={"hours": 1},
        misfire_grace_time=600,
    ),
]
