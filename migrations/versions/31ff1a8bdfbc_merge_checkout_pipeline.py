"""merge checkout pipeline

Revision ID: 31ff1a8bdfbc
Revises: 6aba8ea7a8bd, e69a740a0b19
Create Date: 2026-11-22 23:29:34.998396

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '31ff1a8bdfbc'
down_revision = ('6aba8ea7a8bd', 'e69a740a0b19')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
