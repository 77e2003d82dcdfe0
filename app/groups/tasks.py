"""The groups domain's clock jobs: each is the edge of its use cases (one transaction per batch)."""

from app.core.db import use_case
from app.core.jobs import batch_job
from app.core.scheduler import ScheduledJob
from app.groups import ladder


@batch_job
def recompute_fan_levels() -> int:
    """Recompute every current member's fan level, a batch of groups per transaction; returns how many changed."""
    changed, after_group_id = 0, 0
    while True:
        with use_case():
            batch = ladder.recompute_batch(after_group_id=after_group_id)
        if batch is None:
            return changed
        moved, after_group_id = batch
        changed += moved


SCHEDULE = [
    ScheduledJob(
        id="recompute-fan-levels",
        func=recompute_fan_levels,
        trigger="interval",
        trigger_args={"minutes": 15},
        misfire_grace_time=600,
    ),
]
