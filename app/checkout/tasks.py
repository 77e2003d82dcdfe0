from app.checkout import refunds, service
from app.core.scheduler import ScheduledJob

SCHEDULE = [
    ScheduledJob(
        id="checkout-expire-unpaid",
        func=service.expire_unpaid_orders,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
    ScheduledJob(
        id="checkout-complete-paid",
        func=service.complete_paid_orders,
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
        func=service.resend_to_affiliate,
        trigger="interval",
        trigger_args={"minutes": 5},
        misfire_grace_time=300,
    ),
]


def push_order_to_affiliate(order_id: int) -> str:
    """RQ job: one checkout order's current state into the affiliate pipeline."""
    return service.push_to_affiliate(order_id=order_id)
