"""Coupon ids for gate grants: reserved from the database's own id sequence before any row exists.

A mom told "claimed" gets her coupon's id at once (to show it, and to pay with it), while the row lands a
moment later through the drain. So the gate hands out ids from a pool in Redis, refilled in blocks taken
from the same sequence that numbers rows inserted the ordinary way (the pure-SQL claim path), so the two
never meet: on PostgreSQL `nextval` of the column's sequence, on SQLite the AUTOINCREMENT high-water mark
in `sqlite_sequence` (which never hands out an id at or below it). Ids of a pool lost with Redis are gaps.
"""

from sqlalchemy import text

from app.core.db import db
from app.coupons import gate

BLOCK = 500
LOW_WATER = 1000


def reserve(count: int) -> list[int]:
    """Take `count` ids from the user_coupons sequence (committed at once; never handed out again)."""
    if db.session.get_bind().dialect.name == "postgresql":
        ids = list(
            db.session.scalars(
                text("SELECT nextval(pg_get_serial_sequence('user_coupons', 'id')) FROM generate_series(1, :n)"),
                {"n": count},
            )
        )
    else:
        db.session.execute(
            text(
                "INSERT INTO sqlite_sequence (name, seq) "
                "SELECT 'user_coupons', (SELECT coalesce(max(id), 0) FROM user_coupons) "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'user_coupons')"
            )
        )
        top = db.session.scalar(
            text("UPDATE sqlite_sequence SET seq = seq + :n WHERE name = 'user_coupons' RETURNING seq"), {"n": count}
        )
        ids = list(range(top - count + 1, top + 1))
    db.session.commit()
    return ids


def top_up(*, low_water: int = LOW_WATER, block: int = BLOCK) -> int:
    """Refill the gate's id pool when it runs low; returns how many ids were added."""
    if gate.ids_left() >= low_water:
        return 0
    ids = reserve(block)
    gate.add_ids(ids)
    return len(ids)
