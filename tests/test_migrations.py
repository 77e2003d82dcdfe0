"""Migrations build an empty database on both dialects, `flask db check` finds nothing to add, and they go down
to nothing and up again."""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from app import create_app
from app.core.config import database_uri
from app.core.db import db

LEDGER_TRIGGERS = {
    ("ledger_journals", "ledger_journals_append_only"),
    ("ledger_journals", "ledger_journals_no_truncate"),
    ("ledger_lines", "ledger_lines_append_only"),
    ("ledger_lines", "ledger_lines_no_truncate"),
}


def _tables() -> set[str]:
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def _ledger_triggers() -> set[tuple[str, str]]:
    if db.engine.dialect.name != "postgresql":
        return set()
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O'")
        )
        return {tuple(row) for row in rows}


def _migrate_up_down_up(uri: str, stores) -> None:
    fresh = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": uri,
            "REDIS_URL": stores["redis_url"],
            "INSTANCE_PATH": stores["instance_path"],
            "SECRET_KEY": "t",
        }
    )
    models = {t.name for t in db.metadata.sorted_tables}
    postgres = uri.startswith("postgresql")
    with fresh.app_context():
        try:
            upgrade()
            assert models <= _tables()
            assert _ledger_triggers() == (LEDGER_TRIGGERS if postgres else set())
            check = fresh.test_cli_runner().invoke(args=["db", "check"])
            assert check.exit_code == 0, check.output

            downgrade(revision="base")
            assert _tables() == {"alembic_version"}
            assert not _ledger_triggers()

            upgrade()
            assert models <= _tables()
            assert _ledger_triggers() == (LEDGER_TRIGGERS if postgres else set())
        finally:
            db.engine.dispose()


def test_migrations_build_an_empty_sqlite_database(tmp_path, stores):
    _migrate_up_down_up(f"sqlite:///{tmp_path / 'empty.db'}", stores)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="runs in the PostgreSQL pass (DATABASE_URL set)")
def test_migrations_build_an_empty_postgresql_database(stores):
    admin_uri = database_uri(os.environ["DATABASE_URL"], Path("."))
    name = f"mmq_migrate_{secrets.token_hex(4)}"
    admin = create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _migrate_up_down_up(urlunsplit(urlsplit(admin_uri)._replace(path="/" + name)), stores)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
