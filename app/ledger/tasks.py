from app.core.scheduler import ScheduledJob
from app.ledger import settlement, verification

SCHEDULE = [
    ScheduledJob(
        id="ledger-settlement",
        func=settlement.enqueue_settlement,
        trigger="interval",
        trigger_args={"minutes": 10},
        misfire_grace_time=300,
    ),
    ScheduledJob(
        id="ledger-verify",
        func=verification.enqueue_check,
        trigger="interval",
        trigger_args={"minutes": 10},
        misfire_grace_time=300,
    ),
]
