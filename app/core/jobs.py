"""Jobs as edges: every function the clock or the queue runs declares how it owns its transactions.

- `@job`: the whole run is one use case (committed when it returns, rolled back when it raises), optionally
  retried from the start on errors a concurrent writer causes.
- `@batch_job`: the function opens `use_case()` itself, once per batch, so a long run (settlement, drains,
  purges, statement imports) commits as it goes and a failure loses only its current batch.

The clock (`ScheduledJob`), the queue (`enqueue`) and the worker refuse a function marked neither way, so a
job cannot silently run without a transaction (or write without ever committing).
"""

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from rq.job import Job
from rq.utils import import_attribute

from app.core.db import transactional

P = ParamSpec("P")
R = TypeVar("R")

_EDGE = "_job_edge"


class UnmarkedJob(TypeError):
    """A function was given to the clock or the queue without declaring its transactions (@job or @batch_job)."""


def job(
    func: Callable[P, R] | None = None, *, retry_on: tuple[type[BaseException], ...] = (), attempts: int = 1
) -> Any:
    """Mark a job whose whole run is one use case (retried from the start, `attempts` times, on `retry_on`)."""

    def decorate(edge: Callable[P, R]) -> Callable[P, R]:
        wrapped = transactional(edge, retry_on=retry_on, attempts=attempts)
        setattr(wrapped, _EDGE, "use_case")
        return wrapped

    return decorate if func is None else decorate(func)


def batch_job(func: Callable[P, R]) -> Callable[P, R]:
    """Mark a job that opens a use case per batch itself (`with use_case():` around each batch)."""
    setattr(func, _EDGE, "batches")
    return func


def require_job(func: Callable | str) -> Callable:
    """The job function (imported when named by its dotted path), or UnmarkedJob when it is not a marked job."""
    found = import_attribute(func) if isinstance(func, str) else func
    if getattr(found, _EDGE, None) is None:
        name = getattr(found, "__qualname__", repr(found))
        raise UnmarkedJob(f"{name} is not a job: mark it @job (one use case) or @batch_job (a use case per batch)")
    return found


class EdgeJob(Job):
    """An RQ job that refuses to run a function not marked as a job (in a worker and when run inline alike)."""

    def _execute(self) -> Any:
        require_job(self.func)
        return super()._execute()
