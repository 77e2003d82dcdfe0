from app.core.jobs import batch_job
from app.core.scheduler import ScheduledJob
from app.groups import ladder

SCHEDULE = [
    ScheduledJob(
        id="recompute-fan-levels",
        func=batch_job(ladder.recompute_fan_levels),
        trigger="interval",
        trigger_args={"minutes": 15},
        misfire_grace_time=600,
    ),
]
