from pathlib import Path

import click
from flask.cli import AppGroup

from app.core.cli import reports_api_errors
from app.core.db import transactional
from app.orders import importing, tasks, webhooks

cli = AppGroup("orders", help="Order sources, statement imports and settlement.")


@cli.command("add-source")
@click.argument("name")
@reports_api_errors
@transactional
def add_source(name: str) -> None:
    """Allow NAME (a union or merchant) to send signed order webhooks; prints its secret once."""
    source = webhooks.add_source(name=name)
    click.echo(f"source {source.name} secret {source.secret}")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", required=True, help="The union or merchant the statement comes from.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    help="File format; auto decides by the extension (.csv, else JSON lines).",
)
@reports_api_errors
def import_command(file: Path, source: str, fmt: str) -> None:
    """Ingest a statement FILE (JSON lines or CSV of orders); idempotent, bad lines listed with their numbers."""
    if fmt == "auto":
        fmt = "csv" if file.suffix.lower() == ".csv" else "jsonl"
    with file.open("rb") as handle:
        total = sum(1 for line in handle if line.strip()) - (1 if fmt == "csv" else 0)
    with (
        file.open(encoding="utf-8-sig", errors="surrogateescape", newline="" if fmt == "csv" else None) as stream,
        click.progressbar(length=max(total, 0), label="Importing", file=click.get_text_stream("stderr")) as bar,
    ):
        report = importing.import_file(stream=stream, source=source, fmt=fmt, on_row=lambda: bar.update(1))
    for number, problem in report.errors:
        click.echo(f"line {number}: {problem}", err=True)
    click.echo(
        f"created {report.created}, applied {report.applied}, stale {report.stale}, rejected {len(report.errors)}"
    )
    if report.errors:
        raise SystemExit(1)


@cli.command("settle")
def settle() -> None:
    """Settle the orders that are due now (their commission moves from pending to available)."""
    click.echo(f"settled {tasks.settle()} orders")
