from pathlib import Path

import click
from flask.cli import AppGroup

from app.catalog import importing

cli = AppGroup("catalog", help="Products and categories.")


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    help="File format; auto decides by the extension (.csv, else JSON lines).",
)
@click.option("--source", type=click.Choice(["union", "own"]), default="union", show_default=True)
def import_command(file: Path, fmt: str, source: str) -> None:
    """Upsert products from a feed FILE by (source, external_id); bad rows are listed, good rows kept."""
    if fmt == "auto":
        fmt = "csv" if file.suffix.lower() == ".csv" else "jsonl"
    total = _count_rows(file) - (1 if fmt == "csv" else 0)
    with (
        file.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream,
        click.progressbar(length=max(total, 0), label="Importing", file=click.get_text_stream("stderr")) as bar,
    ):
        report = importing.import_feed(
            rows=importing.read_rows(stream, fmt), source=source, on_row=lambda: bar.update(1)
        )
    for number, problem in report.errors:
        click.echo(f"line {number}: {problem}", err=True)
    click.echo(f"created {report.created}, updated {report.updated}, rejected {len(report.errors)}")
    if report.errors:
        raise SystemExit(1)
