"""The scheduled ledger check: every cached balance against the sum of its lines, every journal against zero.

A problem is an operations alarm, not a user's error: each run logs what it found at ERROR (the signal the
other consistency checks raise too) and records its outcome in Redis, which operators read through
`GET /api/v1/admin/ledger/verification` (when it last ran, what it found, how many runs found problems).
"""

import logging
from datetime import datetime

from app.core.clock import now_utc
from app.core.jobs import job
from app.core.queue import enqueue
from app.core.redis import get_redis, key
from app.ledger import service

log = logging.getLogger(__name__)

RECORD = key("ledger", "verification")


@job
def check() -> int:
    """Verify the whole ledger (a worker job; read-only), log and record the outcome; returns the problems found."""
    problems = service.verify()
    unbalanced, drift = problems["unbalanced_journals"], problems["balance_drift"]
    if unbalanced:
        log.error("ledger: %d journal(s) do not sum to zero: %s", len(unbalanced), ", ".join(map(str, unbalanced)))
    if drift:
        log.error(
            "ledger: %d cached balance(s) differ from their lines: %s",
            len(drift),
            "; ".join(f"{code} cached {cached} fen, lines {derived} fen" for code, cached, derived in drift),
        )
    pipe = get_redis().pipeline()
    pipe.hset(
        RECORD,
        mapping={
            "checked_at": now_utc().isoformat(),
            "unbalanced_journals": len(unbalanced),
            "drifted_accounts": len(drift),
        },
    )
    pipe.hincrby(RECORD, "runs", 1)
    pipe.hincrby(RECORD, "runs_with_problems", 1 if unbalanced or drift else 0)
    pipe.execute()
    return len(unbalanced) + len(drift)


@job
def enqueue_check() -> None:
    """The clock's part: put one verification on the queue."""
    enqueue("default", check)


def last_check() -> dict:
    """The latest run's outcome and the run counts (`checked_at` None before the first run)."""
    raw = {k.decode(): v.decode() for k, v in get_redis().hgetall(RECORD).items()}
    counts = {
        name: int(raw.get(name, 0))
        for name in ("unbalanced_journals", "drifted_accounts", "runs", "runs_with_problems")
    }
    checked_at = datetime.fromisoformat(raw["checked_at"]) if "checked_at" in raw else None
    return {"checked_at": checked_at, **counts}
