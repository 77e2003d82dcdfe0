"""Transaction-scoped serialisation for the few operations that must not interleave."""

import zlib

from sqlalchemy import text

from app.core.db import db, is_postgres


def serialize_transaction(name: str) -> None:
    """Hold a lock named `name` until the current transaction ends.

    PostgreSQL takes an advisory transaction lock; SQLite already serialises writers.
    """
    if is_postgres():
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(name.encode())})
