"""Alembic's environment, run by Flask-Migrate (`flask db ...`) inside the app: its engine and its models' metadata.

The autogenerate options (batch mode for SQLite, type comparison, how project types render) are set where
Flask-Migrate is created, in `app/core/extensions.py`.
"""

import logging
from logging.config import fileConfig

from alembic import context
from alembic.operations import MigrationScript
from alembic.runtime.migration import MigrationContext
from flask import current_app

config = context.config
# Migrations run inside live processes too (the test suite, `./scripts/run`), whose own loggers must keep working.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

migrate = current_app.extensions["migrate"]
target_metadata = migrate.db.metadata


def skip_empty_revisions(context: MigrationContext, revision: object, directives: list[MigrationScript]) -> None:
    """`flask db migrate` writes no file when the models match the database."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops_list[-1].is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`flask db upgrade --sql`)."""
    url = migrate.db.engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, **migrate.configure_args)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    options = {"process_revision_directives": skip_empty_revisions, **migrate.configure_args}
    with migrate.db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
