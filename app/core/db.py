"""The SQLAlchemy base (a constraint naming convention, a UTC datetime type, portable id columns) and the
use case: one transaction per use case, opened and committed by the edge (view, job, CLI command)."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    MetaData,
    any_,
    bindparam,
    case,
    event,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql, sqlite
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
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def isoformat_sql(column) -> ColumnElement[str]:
    """PostgreSQL spelling a UTC timestamp as `datetime.isoformat()` does: no fraction at 0 µs, else six digits."""
    utc = column.op("AT TIME ZONE")(literal_column("'UTC'"))
    whole = func.to_char(utc, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS'"))
    fraction = case(
        (func.to_char(utc, literal_column("'US'")) == literal_column("'000000'"), literal_column("''")),
        else_=func.to_char(utc, literal_column("'.US'")),
    )
    return whole.concat(fraction).concat(literal_column("'+00:00'"))


# SQLite only auto-increments an INTEGER PRIMARY KEY, so big ids fall back to INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Fen = BigInteger()

IdPk = Annotated[int, mapped_column(BigId, primary_key=True)]


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION), type_annotation_map={datetime: UTCDateTime()}
    )


db = SQLAlchemy(model_class=Base)
log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


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
    """True when the session's connection is PostgreSQL (set-based paths and some invariants use its features)."""
    return db.session.get_bind().dialect.name == "postgresql"


def upsert_insert(model: Any) -> Any:
    """An INSERT for `model` that takes `.on_conflict_do_nothing(...)` / `.on_conflict_do_update(...)` on both stores."""
    return (postgresql.insert if is_postgres() else sqlite.insert)(model)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL for a check constraint that `column` holds one of `values` (fixed names, never user input)."""
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def among(column, values) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, so thousands of values bind as one parameter."""
    values = list(values)
    if not is_postgres():
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type), unique=True))


def render_migration_item(type_: str, obj, autogen_context):
    """Render project column types as plain SQLAlchemy types, so migrations never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


_USE_CASE = "use_case"


class UseCase:
    """The transaction of one use case: committed by the edge that opened it, with callbacks for after it ends."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], object]] = []
        self.rollback_callbacks: list[Callable[[], object]] = []
        self.abandoned = False

    def abandon(self) -> None:
        """Roll the work back instead of committing it (the edge answered with a refusal)."""
        self.abandoned = True


@contextmanager
def use_case() -> Iterator[UseCase]:
    """Run one use case in one transaction: commit when the block ends, roll back when it raises or is abandoned.

    The edge opens it (a view, a job, a CLI command); services only flush. A block opened inside another joins
    it, so a job that calls a use case another job also runs still commits once. After-commit callbacks run once
    the commit is done, after-rollback callbacks once a rollback is; each kind is dropped by the other outcome.
    """
    info = db.session.info
    current = info.get(_USE_CASE)
    if current is not None:
        yield current
        return
    unit = info[_USE_CASE] = UseCase()
    committed = False
    try:
        yield unit
        if not unit.abandoned:
            db.session.commit()
            committed = True
    finally:
        info.pop(_USE_CASE, None)
        if not committed:
            db.session.rollback()
            for callback in unit.rollback_callbacks:
                try:
                    callback()
                except Exception:  # the rollback's own cause is the error to report
                    log.exception("an after-rollback callback failed")
    for callback in unit.callbacks:
        callback()


def run_use_case(work: Callable[[], R], *, retry_on: tuple[type[BaseException], ...] = (), attempts: int = 1) -> R:
    """Run `work()` as one use case; when it fails with one of `retry_on`, run it again from the start.

    For writes that lose a race to a concurrent writer (a unique key taken meanwhile): the retry reads what the
    other writer committed. Inside an open use case it joins that one and is not retried here: the edge that
    opened it decides.
    """
    for attempt in range(1, attempts + 1):
        joined = in_use_case()
        try:
            with use_case():
                return work()
        except retry_on:
            if joined or attempt == attempts:
                raise
    raise ValueError("attempts must be at least 1")


def transactional(
    func: Callable[P, R] | None = None, *, retry_on: tuple[type[BaseException], ...] = (), attempts: int = 1
) -> Any:
    """Run the decorated edge (a job, a CLI command) as one use case, retried from the start on `retry_on`."""

    def decorate(edge: Callable[P, R]) -> Callable[P, R]:
        @wraps(edge)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return run_use_case(lambda: edge(*args, **kwargs), retry_on=retry_on, attempts=attempts)

        return wrapper

    return decorate if func is None else decorate(func)


def abandon_use_case() -> None:
    """Make the open use case roll back instead of committing (an answer that refuses rather than raises)."""
    unit = db.session.info.get(_USE_CASE)
    if unit is not None:
        unit.abandon()


def in_use_case() -> bool:
    """True while a use case's transaction is open."""
    return _USE_CASE in db.session.info


def after_commit(callback: Callable[[], object]) -> None:
    """Run `callback` once the use case's work has committed (jobs that read what it wrote, caches, Redis)."""
    unit = db.session.info.get(_USE_CASE)
    if unit is None:
        callback()  # a service called directly (a test, a shell): no use case will commit, so nothing to wait for
        return
    unit.callbacks.append(callback)


def after_rollback(callback: Callable[[], object]) -> None:
    """Run `callback` once the use case's work has rolled back (undo what was done outside the database).

    Outside a use case nothing will roll the work back, so it is not called.
    """
    unit = db.session.info.get(_USE_CASE)
    if unit is not None:
        unit.rollback_callbacks.append(callback)


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
