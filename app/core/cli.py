"""Helpers shared by the domains' command-line groups."""

from collections.abc import Callable
from functools import wraps

import click

from app.core.errors import ApiError


def reports_api_errors(command: Callable) -> Callable:
    """Show a domain error as a one-line CLI error instead of a traceback."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc

    return wrapper
