"""delivery skipped state

Revision ID: 5b8e2d1c9a47
Revises: fbde953f99c5
Create Date: 2026-11-23 01:40:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5b8e2d1c9a47'
down_revision = 'fbde953f99c5'
branch_labels = None
depends_on = None

BEFORE = ("pending", "sending", "submitted", "sent", "failed", "dead", "unknown", "missed")
AFTER = BEFORE + ("skipped",)


def _known(states):
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deliveries_known_state'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deliveries_known_state'), _known(AFTER))


def downgrade():
    # A skip was nothing sent and no failure; before this state existed it was recorded as dead.
    op.execute("UPDATE deliveries SET state = 'dead' WHERE state = 'skipped'")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deliveries_known_state'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deliveries_known_state'), _known(BEFORE))
