"""ledger: refuse TRUNCATE and every DELETE of journals and lines (no session-settable escape)

Revision ID: c7e967cdd47e
Revises: e3e5e372d156
Create Date: 2026-11-23 06:55:00.000000

The first ledger trigger let DELETE through for any session that set `mmq.ledger_purge`, which every
session may set, and row triggers never see TRUNCATE. From here on UPDATE, DELETE and TRUNCATE of
`ledger_journals` and `ledger_lines` raise, whatever the session's settings.
Only a schema change by the tables' owner (dropping or disabling the triggers) can get past them, so the
application's production role should not own the tables; the test suite empties them that way, as owner,
inside one transaction (tests/conftest.py).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'c7e967cdd47e'
down_revision = 'e3e5e372d156'
branch_labels = None
depends_on = None

TABLES = ("ledger_lines", "ledger_journals")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    # One function serves the row triggers (UPDATE, DELETE) and the statement triggers (TRUNCATE).
    op.execute("""
        CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'P0001';
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute("""
        CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' AND current_setting('mmq.ledger_purge', true) = 'on' THEN
            RETURN OLD;
          END IF;
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'P0001';
        END $$""")
