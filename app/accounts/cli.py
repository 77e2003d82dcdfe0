import click
from flask.cli import AppGroup

from app.accounts import service
from app.core.cli import reports_api_errors
from app.core.db import transactional

cli = AppGroup("users", help="Manage users and roles.")


def _resolve(ref: str):
    user = service.find_user(ref=ref)
    if user is None:
        raise click.ClickException(f"no user matches {ref!r} (id, openid or invite code)")
    return user


@cli.command("grant-role")
@click.argument("user_ref")
@click.argument("role")
@reports_api_errors
@transactional
def grant_role(user_ref: str, role: str) -> None:
    """Grant ROLE (host, partner, operator) to the user given by id, openid or invite code."""
    user = service.grant_role(user_id=_resolve(user_ref).id, role=role, granted_by_id=None)
    click.echo(f"user {user.id} ({user.openid}) now has roles: {', '.join(sorted(service.roles_of(user)))}")


@cli.command("revoke-role")
@click.argument("user_ref")
@click.argument("role")
@reports_api_errors
@transactional
def revoke_role(user_ref: str, role: str) -> None:
    """Revoke ROLE from the user given by id, openid or invite code."""
    user = service.revoke_role(user_id=_resolve(user_ref).id, role=role, revoked_by_id=None)
    click.echo(f"user {user.id} ({user.openid}) now has roles: {', '.join(sorted(service.roles_of(user)))}")
