"""merge groups and content

Revision ID: e69a740a0b19
Revises: 7a7406570ed5, ba14fae385cb
Create Date: 2026-11-22 23:11:24.496147

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e69a740a0b19'
down_revision = ('7a7406570ed5', 'ba14fae385cb')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
