import click
from flask.cli import AppGroup

from app.core.cli import reports_api_errors
from app.coupons import wallet
from app.coupons.flash import drain, loading

cli = AppGroup("coupons", help="Coupons: land and reconcile flash claims, expire coupons.")


@cli.command("reconcile")
@click.option("--template", "template_id", type=int, default=None, help="Only this template (default: every live one).")
@reports_api_errors
def reconcile(template_id: int | None) -> None:
    """Land the claim stream and make the Redis claim gates agree with the database (after a crash; also scheduled)."""
    reports = loading.reconcile(template_id=template_id)
    for r in reports:
        click.echo(
            f"template {r.template_id}: claimed {r.claimed}/{r.stock}, gate remaining {r.gate_remaining}, "
            f"in flight {r.in_flight}"
            + (", claimed counter repaired" if r.db_repaired else "")
            + (f", {r.refused} granted claim(s) REFUSED by the database" if r.refused else "")
        )
    click.echo(f"{len(reports)} template(s) reconciled")


@cli.command("drain")
def drain_stream() -> None:
    """Land granted flash claims from the claim stream now (the scheduler does it every second)."""
    click.echo(f"{drain.drain(wait_seconds=30)} granted claim(s) landed")


@cli.command("expire")
def expire() -> None:
    """Mark coupons past their validity expired."""
    click.echo(f"{wallet.expire_coupons()} coupon(s) expired")
