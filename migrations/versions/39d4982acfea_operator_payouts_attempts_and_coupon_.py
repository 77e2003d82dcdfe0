"""operator payouts attempts and coupon refusal resolutions

Revision ID: 39d4982acfea
Revises: e3e5e372d156
Create Date: 2026-11-23 06:48:59.996153

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '39d4982acfea'
down_revision = 'e3e5e372d156'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('withdrawal_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('withdrawal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('message', sa.String(length=255), nullable=True),
    sa.Column('payment_no', sa.String(length=64), nullable=True),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('transfer', 'query')", name=op.f('ck_withdrawal_attempts_known_action')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_withdrawal_attempts_created_by_id_users')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['withdrawals.id'], name=op.f('fk_withdrawal_attempts_withdrawal_id_withdrawals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawal_attempts'))
    )
    with op.batch_alter_table('withdrawal_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_withdrawal_attempts_withdrawal_id_id', ['withdrawal_id', 'id'], unique=False)

    op.create_table('coupon_refusal_resolutions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('refusal_entry', sa.String(length=32), nullable=False),
    sa.Column('gate_grant', sa.String(length=32), nullable=False),
    sa.Column('template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('granted_coupon_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refusal_reason', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('user_coupon_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('resolved_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action = 'reissued' OR user_coupon_id IS NULL", name=op.f('ck_coupon_refusal_resolutions_dismissal_has_no_coupon')),
    sa.CheckConstraint("action IN ('reissued', 'dismissed')", name=op.f('ck_coupon_refusal_resolutions_known_action')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_coupon_refusal_resolutions_resolved_by_id_users')),
    sa.ForeignKeyConstraint(['user_coupon_id'], ['user_coupons.id'], name=op.f('fk_coupon_refusal_resolutions_user_coupon_id_user_coupons')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_coupon_refusal_resolutions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_refusal_resolutions')),
    sa.UniqueConstraint('gate_grant', name=op.f('uq_coupon_refusal_resolutions_gate_grant')),
    sa.UniqueConstraint('refusal_entry', name=op.f('uq_coupon_refusal_resolutions_refusal_entry'))
    )


def downgrade():
    op.drop_table('coupon_refusal_resolutions')
    with op.batch_alter_table('withdrawal_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_withdrawal_attempts_withdrawal_id_id')

    op.drop_table('withdrawal_attempts')
