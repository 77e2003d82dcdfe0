"""merge content and main

Revision ID: ba14fae385cb
Revises: 0f7f5b61eec4, 6f4f6c6927d0
Create Date: 2026-11-22 23:03:12.938749

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ba14fae385cb'
down_revision = ('0f7f5b61eec4', '6f4f6c6927d0')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
