"""checkout orders cancelled by the buyer, listed per buyer

Revision ID: 29b2ac07a793
Revises: cc42336c11cd
Create Date: 2026-11-23 09:45:54.577145

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '29b2ac07a793'
down_revision = 'cc42336c11cd'
branch_labels = None
depends_on = None

BEFORE = ("pending_payment", "paid", "partially_refunded", "refunded", "expired")
AFTER = BEFORE + ("cancelled",)


def _known(states):
    return "status IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def upgrade():
    with op.batch_alter_table('checkout_orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_checkout_orders_known_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_checkout_orders_known_status'), _known(AFTER))
        batch_op.create_index('ix_checkout_orders_user_id_created_at', ['user_id', 'created_at'], unique=False)


def downgrade():
    # Before the buyer could cancel, an unpaid order only ever closed by expiring.
    op.execute("UPDATE checkout_orders SET status = 'expired' WHERE status = 'cancelled'")
    with op.batch_alter_table('checkout_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_checkout_orders_user_id_created_at')
        batch_op.drop_constraint(op.f('ck_checkout_orders_known_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_checkout_orders_known_status'), _known(BEFORE))
