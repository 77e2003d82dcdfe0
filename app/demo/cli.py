import click
from flask.cli import AppGroup

from app import domain_modules
from app.core.db import transactional

cli = AppGroup("demo", help="Demo data.")


@transactional
def seed_all() -> list[str]:
    """Load the demo data of every domain in one use case (each part is skipped when already there); the logins."""
    logins: list[str] = []
    for module in sorted(domain_modules("demo"), key=lambda m: getattr(m, "SEED_ORDER", 100)):
        logins.extend(module.seed() or [])
    return logins


@cli.command("seed")
def seed() -> None:
    """Load the demo data of every domain (each part is skipped when already there)."""
    click.echo("demo data ready; sandbox logins: " + ", ".join(seed_all()))
