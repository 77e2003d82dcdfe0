from app.checkout import service
from app.core.scheduler import ScheduledJob

SCHEDULE = [
    ScheduledJob(id="checkout-expire-unpaid", func=service.expire_unpaid_orders, trigger="interval",
                 trigger_args={"minutes": 1}, misfire_grace_time=60),
]
