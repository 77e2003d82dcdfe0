"""merge content drip and main

Revision ID: ac0e043eda16
Revises: 8f04648c5455, e69a740a0b19
Create Date: 2026-11-22 23:13:29.205808

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ac0e043eda16'
down_revision = ('8f04648c5455', 'e69a740a0b19')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
