"""The SQLAlchemy base (a constraint naming convention, a UTC datetime type, portable id columns) and
the use case's commit, which an idempotent request defers so its stored response commits with the effect."""
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Callable

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (BigInteger, ColumnElement, DateTime, Integer, MetaData, any_, bindparam, case, event, func,
                        literal_column)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, mapped_column, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always hands back aware UTC datetimes (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: use app.core.clock.now_utc()")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def isoformat_sql(column) -> ColumnElement[str]:
    """PostgreSQL spelling a UTC timestamp as `datetime.isoformat()` does: no fraction at 0 µs, else six digits."""
    utc = column.op("AT TIME ZONE")(literal_column("'UTC'"))
    whole = func.to_char(utc, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS'"))
    fraction = case((func.to_char(utc, literal_column("'US'")) == literal_column("'000000'"), literal_column("''")),
                    else_=func.to_char(utc, literal_column("'.US'")))
    return whole.concat(fraction).concat(literal_column("'+00:00'"))


# SQLite only auto-increments an INTEGER PRIMARY KEY, so big ids fall back to INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Fen = BigInteger()

IdPk = Annotated[int, mapped_column(BigId, primary_key=True)]


class Base(DeclarativeBase):
    registry = registry(metadata=MetaData(naming_convention=NAMING_CONVENTION),
                        type_annotation_map={datetime: UTCDateTime()})


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Foreign keys on, WAL for concurrent readers, and a busy timeout instead of instant lock errors."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


@event.listens_for(Engine, "savepoint")
def _sqlite_savepoint_inside_a_transaction(conn, name) -> None:
    """Open SQLite's transaction before a savepoint, so releasing the savepoint never commits on its own.

    pysqlite begins a transaction only before a data-changing statement, and a SAVEPOINT outside one acts
    as BEGIN, whose RELEASE commits: a use case whose first write sat in a savepoint would commit that write
    even when the use case then failed. IMMEDIATE takes the write lock up front (a savepoint is there for a
    write), waiting under the busy timeout rather than failing later on a snapshot another writer moved.
    """
    dbapi_connection = conn.connection.dbapi_connection
    if type(dbapi_connection).__module__.startswith("sqlite3") and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def is_postgres() -> bool:
    """True when the default engine is PostgreSQL (some invariants use its features)."""
    return db.engine.dialect.name == "postgresql"


def among(column, values) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, so thousands of values bind as one parameter."""
    values = list(values)
    if db.session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type), unique=True))


def render_migration_item(type_: str, obj, autogen_context):
    """Render project column types as plain SQLAlchemy types, so migrations never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


_DEFER = "defer_commit"
_AFTER_COMMIT = "after_commit"


def commit() -> None:
    """Commit the use case's transaction; inside an idempotent request only flush, the request commits it."""
    if db.session.info.get(_DEFER):
        db.session.flush()
    else:
        db.session.commit()


def after_commit(callback: Callable[[], object]) -> None:
    """Run `callback` once the use case's work has committed (call it after `commit()`)."""
    pending = db.session.info.get(_AFTER_COMMIT)
    if db.session.info.get(_DEFER) and pending is not None:
        pending.append(callback)
    else:
        callback()


@contextmanager
def deferred_commit():
    """Let services' `commit()` only flush, so the caller commits their work with its own rows, once.

    Yields the list of after-commit callbacks; the caller runs them after its commit (they are dropped
    when the work rolls back).
    """
    info = db.session.info
    if info.get(_DEFER):
        raise RuntimeError("deferred_commit does not nest")
    callbacks: list[Callable[[], object]] = []
    info[_DEFER], info[_AFTER_COMMIT] = True, callbacks
    try:
        yield callbacks
    finally:
        info.pop(_DEFER, None)
        info.pop(_AFTER_COMMIT, None)


@contextmanager
def reads_outside_transaction():
    """Run a read-only use case's statements each on its own (autocommit) on PostgreSQL, then close the session.

    A page that only reads needs no common snapshot across its few statements, and a transaction would cost it
    a BEGIN and a ROLLBACK round trip. Applies only while the session holds no transaction yet and is bound to
    an engine (a test's outer transaction binds it to a connection); otherwise the statements run as usual.
    """
    session = db.session()
    bind = session.get_bind()
    if session.in_transaction() or not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        yield
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    finally:
        session.close()  # gives the connection back, its isolation level restored, before anything could write
