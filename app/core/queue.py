"""RQ queues on the app's Redis. Jobs may run twice, so every job must be idempotent."""

from collections.abc import Callable
from typing import Any

from flask import current_app
from rq import Queue

from app.core.jobs import EdgeJob, require_job
from app.core.redis import get_redis


def queue(name: str) -> Queue:
    """The named queue; with RQ_ASYNC off (tests) jobs run inline."""
    if name not in current_app.config["RQ_QUEUES"]:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=get_redis(), is_async=current_app.config["RQ_ASYNC"], job_class=EdgeJob)


def enqueue(name: str, func: Callable | str, *args: Any, **kwargs: Any):
    """Put one job on a queue; `func` must be a marked job (see `app.core.jobs`)."""
    require_job(func)
    return queue(name).enqueue(func, *args, **kwargs)
