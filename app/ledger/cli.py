import click
from flask.cli import AppGroup

from app.ledger import service

cli = AppGroup("ledger", help="The commission ledger (`flask orders settle` settles what is due).")


@cli.command("verify")
def verify() -> None:
    """Check that every journal sums to zero and every cached balance equals its lines."""
    problems = service.verify()
    for journal_id in problems["unbalanced_journals"]:
        click.echo(f"journal {journal_id} does not sum to zero", err=True)
    for code, cached, derived in problems["balance_drift"]:
        click.echo(f"account {code}: cached {cached}, lines {derived}", err=True)
    if problems["unbalanced_journals"] or problems["balance_drift"]:
        raise SystemExit(1)
    click.echo("ledger ok")
