from app.checkout import flows, refunds
from app.core.scheduler import ScheduledJob

SCHEDULE = [
    ScheduledJob(
        id="checkout-expire-unpaid",
        func=flows.expire_unpaid_orders,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
    ScheduledJob(
        id="checkout-complete-paid",
        func=flows.complete_paid_orders,
        trigger="interval",
        trigger_args={"minutes": 10},
        misfire_grace_time=600,
    ),
    ScheduledJob(
        id="checkout-sync-refunds",
        func=refunds.sync_processing_refunds,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
    ScheduledJob(
        id="checkout-resend-to-affiliate",
        func=flows.resend_to_affiliate,
        trigger="interval",
        trigger_args={"minutes": 5},
        misfire_grace_time=300,
    ),
]
