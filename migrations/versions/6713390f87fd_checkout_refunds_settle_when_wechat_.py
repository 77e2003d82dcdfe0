"""checkout refunds settle when WeChat reports them

Revision ID: 6713390f87fd
Revises: 29b2ac07a793
Create Date: 2026-11-23 12:18:35.510224

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6713390f87fd'
down_revision = '29b2ac07a793'
branch_labels = None
depends_on = None

REFUND_WITHIN_PAID = "refunded_fen >= 0 AND refunded_fen <= payable_fen"
REFUND_WITHIN_PAID_WITH_PENDING = ("refunded_fen >= 0 AND refunding_fen >= 0 AND refunded_fen + refunding_fen "
                                   "<= payable_fen")


def upgrade():
    with op.batch_alter_table('checkout_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refunding_fen', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.drop_constraint(op.f('ck_checkout_orders_refund_within_paid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_checkout_orders_refund_within_paid'), REFUND_WITHIN_PAID_WITH_PENDING)

    # Refunds recorded before this revision were taken as final when WeChat accepted them.
    with op.batch_alter_table('checkout_refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=12), nullable=False, server_default='succeeded'))
        batch_op.add_column(sa.Column('wechat_status', sa.String(length=16), nullable=False, server_default='SUCCESS'))
        batch_op.add_column(sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE checkout_refunds SET settled_at = created_at")
    with op.batch_alter_table('checkout_refunds', schema=None) as batch_op:
        batch_op.create_index('ix_checkout_refunds_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_check_constraint(op.f('ck_checkout_refunds_known_status'),
                                         "status IN ('processing', 'succeeded', 'failed')")
        batch_op.create_check_constraint(op.f('ck_checkout_refunds_settled_when_final'),
                                         "(status = 'processing') = (settled_at IS NULL)")


def downgrade():
    # Without a settled state a refund counts once WeChat accepted it: still-processing ones become refunded.
    op.execute("DELETE FROM checkout_refunds WHERE status = 'failed'")
    with op.batch_alter_table('checkout_refunds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_checkout_refunds_settled_when_final'), type_='check')
        batch_op.drop_constraint(op.f('ck_checkout_refunds_known_status'), type_='check')
        batch_op.drop_index('ix_checkout_refunds_status_created_at')
        batch_op.drop_column('settled_at')
        batch_op.drop_column('wechat_status')
        batch_op.drop_column('status')

    op.execute("UPDATE checkout_orders SET refunded_fen = refunded_fen + refunding_fen")
    with op.batch_alter_table('checkout_orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_checkout_orders_refund_within_paid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_checkout_orders_refund_within_paid'), REFUND_WITHIN_PAID)
        batch_op.drop_column('refunding_fen')
