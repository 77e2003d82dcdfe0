"""coupons: user_coupons ids from a sequence on SQLite too (AUTOINCREMENT)

Gate grants take coupon ids reserved from the id sequence before their rows exist. PostgreSQL's
BIGSERIAL already is such a sequence; SQLite reuses max(id) + 1 unless the table is AUTOINCREMENT,
whose high-water mark in sqlite_sequence can be moved to reserve a block.

Revision ID: 5c2f8e1d7a90
Revises: d862a5c1d9e1
Create Date: 2026-11-23 01:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c2f8e1d7a90'
down_revision = 'd862a5c1d9e1'
branch_labels = None
depends_on = None


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    # Rebuilding a table that orders reference needs foreign keys off, which SQLite only allows outside a
    # transaction; the check afterwards proves every reference still holds.
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=OFF')
        with op.batch_alter_table('user_coupons', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
        op.execute('PRAGMA foreign_keys=ON')
        broken = op.get_bind().exec_driver_sql('PRAGMA foreign_key_check').fetchall()
        if broken:
            raise RuntimeError(f'foreign keys broken by the rebuild: {broken}')
    if autoincrement:
        op.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'user_coupons', "
                   "(SELECT coalesce(max(id), 0) FROM user_coupons) "
                   "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'user_coupons')")


def upgrade():
    _recreate(True)


def downgrade():
    _recreate(False)
