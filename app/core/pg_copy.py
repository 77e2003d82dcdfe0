"""Set-based writes on PostgreSQL for batch paths: ids taken ahead from the table's sequence, rows by COPY.

Both run inside the session's current transaction (the session's own connection), so what they write
commits or rolls back with everything else. A COPY that breaks a constraint raises SQLAlchemy's
`IntegrityError`, like an INSERT would, so callers retry or roll back the same way.
"""

import re
from collections.abc import Iterable, Sequence
from functools import cache

import psycopg
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from app.core.db import db

_sequences: dict[str, str] = {}


def _driver_connection():
    return db.session.connection().connection.driver_connection


def _sequence(table: Table) -> str:
    name = _sequences.get(table.name)
    if name is None:
        name = db.session.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar_one()
        _sequences[table.name] = name
    return name


def allocate_ids(table: Table, count: int) -> list[int]:
    """Take `count` ids from the table's id sequence, ascending (concurrent writers get other ids)."""
    if count <= 0:
        return []
    rows = (
        _driver_connection()
        .execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (_sequence(table), count))
        .fetchall()
    )
    return sorted(row[0] for row in rows)


@cache
def _type_names(table: Table, columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL type names psycopg knows the columns by (bigint, varchar, timestamp with time zone ...)."""
    dialect = postgresql.dialect()
    return [re.sub(r"\(.*\)", "", table.c[name].type.compile(dialect=dialect)).strip().lower() for name in columns]


def copy_rows(table: Table, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """COPY rows (tuples of Python values in `columns` order; JSON columns take dicts) into `table`, binary."""
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    try:
        with _driver_connection().cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(_type_names(table, tuple(columns)))
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
