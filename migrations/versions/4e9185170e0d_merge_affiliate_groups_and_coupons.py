"""merge affiliate, groups and coupons

Revision ID: 4e9185170e0d
Revises: 7836962c24d7, 8970bbf9d392, f4378c78e44a
Create Date: 2026-11-22 22:32:21.338838

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4e9185170e0d'
down_revision = ('7836962c24d7', '8970bbf9d392', 'f4378c78e44a')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
