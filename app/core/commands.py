"""The process commands: `flask scheduler run` and `flask worker run`."""

import logging

import click
from flask import current_app
from flask.cli import AppGroup

from app.core.scheduler import run_scheduler
from app.core.worker import run_worker

scheduler_cli = AppGroup("scheduler", help="The clock process.")
worker_cli = AppGroup("worker", help="RQ workers.")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the APScheduler clock (any number of replicas; one leads)."""
    _logging()
    run_scheduler(current_app._get_current_object())


@worker_cli.command("run")
@click.option("--queue", "queues", multiple=True, help="Queue to work (repeatable); default: all of them.")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker_run(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker on the project's queues."""
    _logging()
    run_worker(current_app._get_current_object(), queues=list(queues) or None, burst=burst)
