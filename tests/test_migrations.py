"""Migrations build an empty database on both dialects, and `flask db check` finds nothing to add."""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, inspect, text

from app import create_app
from app.core.config import database_uri
from app.core.db import db


def _upgrade_and_compare(uri: str, stores) -> list:
    fresh = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": uri,
            "REDIS_URL": stores["redis_url"],
            "INSTANCE_PATH": stores["instance_path"],
            "SECRET_KEY": "t",
        }
    )
    with fresh.app_context():
        from flask_migrate import upgrade

        upgrade()
        with db.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        check = fresh.test_cli_runner().invoke(args=["db", "check"])
        db.engine.dispose()
    assert {t.name for t in db.metadata.sorted_tables} <= tables
    assert check.exit_code == 0, check.output
    return check


def test_migrations_build_an_empty_sqlite_database(tmp_path, stores):
    _upgrade_and_compare(f"sqlite:///{tmp_path / 'empty.db'}", stores)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="runs in the PostgreSQL pass (DATABASE_URL set)")
def test_migrations_build_an_empty_postgresql_database(stores):
    admin_uri = database_uri(os.environ["DATABASE_URL"], Path("."))
    name = f"mmq_migrate_{secrets.token_hex(4)}"
    admin = create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _upgrade_and_compare(urlunsplit(urlsplit(admin_uri)._replace(path="/" + name)), stores)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
