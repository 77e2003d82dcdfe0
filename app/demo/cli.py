import click
from flask.cli import AppGroup

from app import domain_modules

cli = AppGroup("demo", help="Demo data.")


@cli.command("seed")
def seed() -> None:
    """Load the demo data of every domain (each part is skipped when already there)."""
    logins: list[str] = []
    for module in sorted(domain_modules("demo"), key=lambda m: getattr(m, "SEED_ORDER", 100)):
        logins.extend(module.seed() or [])
    click.echo("demo data ready; sandbox logins: " + ", ".join(logins))
