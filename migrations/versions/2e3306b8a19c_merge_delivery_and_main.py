"""merge delivery and main

Revision ID: 2e3306b8a19c
Revises: 450c63601ed3, 4e9185170e0d
Create Date: 2026-11-22 22:37:26.012636

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2e3306b8a19c'
down_revision = ('450c63601ed3', '4e9185170e0d')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
