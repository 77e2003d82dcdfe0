import click
from flask.cli import AppGroup

from app.core.cli import reports_api_errors
from app.coupons import claims, wallet

cli = AppGroup("coupons", help="Coupons: reconcile the claim gate, expire coupons.")


@cli.command("reconcile")
@click.option("--template", "template_id", type=int, default=None, help="Only this template (default: every live one).")
@click.option("--grace-seconds", type=float, default=None,
              help="In-flight grants younger than this are kept (default COUPON_GATE_GRACE_SECONDS, 120). "
                   "Use 0 only when no web process is running.")
@reports_api_errors
def reconcile(template_id: int | None, grace_seconds: float | None) -> None:
    """Make the Redis claim gate agree with the database (run after a crash; also scheduled)."""
    reports = claims.reconcile(template_id=template_id, grace_seconds=grace_seconds)
    for r in reports:
        click.echo(f"template {r.template_id}: claimed {r.claimed}/{r.stock}, gate remaining {r.gate_remaining}, "
                   f"in flight kept {r.in_flight_kept}, dead grants dropped {r.grants_dropped}"
                   + (", claimed counter repaired" if r.db_repaired else ""))
    click.echo(f"{len(reports)} template(s) reconciled")


@cli.command("expire")
def expire() -> None:
    """Mark coupons past their validity expired."""
    click.echo(f"{wallet.expire_coupons()} coupon(s) expired")
