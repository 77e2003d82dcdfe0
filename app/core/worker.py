"""The RQ worker process: runs jobs inside the app context, one database session per job."""

import logging

from flask import Flask
from rq import SimpleWorker

from app.core.db import db
from app.core.jobs import EdgeJob
from app.core.redis import get_redis

log = logging.getLogger(__name__)


class AppWorker(SimpleWorker):
    """Runs jobs in-process (no fork per job) with a fresh session for each; a job not marked as one fails."""

    flask_app: Flask

    def execute_job(self, job, queue):
        with self.flask_app.app_context():
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()


def run_worker(app: Flask, *, queues: list[str] | None = None, burst: bool = False) -> bool:
    """Work the project's queues until stopped (or until empty with burst)."""
    with app.app_context():
        names = queues or app.config["RQ_QUEUES"]
        worker = AppWorker(names, connection=get_redis(), job_class=EdgeJob)
        worker.flask_app = app
        log.info("worker %s on queues %s", worker.name, ", ".join(names))
        return worker.work(burst=burst, with_scheduler=False)
