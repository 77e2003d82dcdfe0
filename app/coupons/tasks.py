from app.core.scheduler import ScheduledJob
from app.coupons import templates, wallet
from app.coupons.flash import drain, loading

SCHEDULE = [
    # Granted flash claims land in the database within about a second (reads that need them sooner drain first).
    ScheduledJob(
        id="coupons-drain", func=drain.drain, trigger="interval", trigger_args={"seconds": 1}, misfire_grace_time=1
    ),
    ScheduledJob(
        id="coupons-reconcile",
        func=loading.reconcile_all,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
    ScheduledJob(
        id="coupons-expire",
        func=wallet.expire_coupons,
        trigger="interval",
        trigger_args={"minutes": 5},
        misfire_grace_time=300,
    ),
    ScheduledJob(
        id="coupons-end-templates",
        func=templates.end_finished_templates,
        trigger="interval",
        trigger_args={"minutes": 1},
        misfire_grace_time=60,
    ),
]
