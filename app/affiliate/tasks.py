from app.affiliate import service
from app.core.scheduler import ScheduledJob

SCHEDULE = [
    ScheduledJob(
        id="persist-clicks",
        func=service.persist_clicks,
        trigger="interval",
        trigger_args={"seconds": 5},
        misfire_grace_time=30,
    ),
]
