"""Coupon ids for gate grants: reserved from the database's own id sequence before any row exists.

A mom told "claimed" gets her coupon's id at once (to show it, and to pay with it), while the row lands a
moment later through the drain. So the gate hands out ids from a pool in Redis, refilled in blocks taken
from the same sequence that numbers rows inserted the ordinary way (the pure-SQL claim path), so the two
never meet: on PostgreSQL `nextval` of the column's sequence, on SQLite the AUTOINCREMENT high-water mark
in `sqlite_sequence` (which never hands out an id at or below it). Ids of a pool lost with Redis are gaps.
"""

from sqlalchemy import text

from app.core.db import db, is_postgres
from app.coupons.flash import gate

BLOCK = 500
LOW_WATER = 1000


def reserve(count: int) -> list[int]:
    """Take `count` ids from the user_coupons sequence, for good (never handed out again, whatever the caller's
    transaction does)."""
    if is_postgres():
        # nextval is not transactional: the ids are taken even if the caller's transaction rolls back.
        return list(
            db.session.scalars(
                text("SELECT nextval(pg_get_serial_sequence('user_coupons', 'id')) FROM generate_series(1, :n)"),
                {"n": count},
            )
        )
    # SQLite's sequence is a row: moved in a transaction of its own on its own connection, it stays moved even
    # when the caller's transaction rolls back (or it would hand the same ids out again).
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sqlite_sequence (name, seq) "
                "SELECT 'user_coupons', (SELECT coalesce(max(id), 0) FROM user_coupons) "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'user_coupons')"
            )
        )
        top = connection.scalar(
            text("UPDATE sqlite_sequence SET seq = seq + :n WHERE name = 'user_coupons' RETURNING seq"), {"n": count}
        )
    return list(range(top - count + 1, top + 1))


def top_up(*, low_water: int = LOW_WATER, block: int = BLOCK) -> int:
    """Refill the gate's id pool when it runs low; returns how many ids were added."""
    if gate.ids_left() >= low_water:
        return 0
    ids = reserve(block)
    gate.add_ids(ids)
    return len(ids)
