"""The SQLAlchemy base: a constraint naming convention, a UTC datetime type and portable id columns."""
from datetime import datetime, timezone
from typing import Annotated

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, ColumnElement, DateTime, Integer, MetaData, any_, bindparam, event
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
