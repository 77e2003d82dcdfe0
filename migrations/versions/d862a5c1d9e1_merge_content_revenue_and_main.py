"""merge content revenue and main

Revision ID: d862a5c1d9e1
Revises: 3010c17bc6fa, 31ff1a8bdfbc
Create Date: 2026-11-22 23:37:47.987737

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd862a5c1d9e1'
down_revision = ('3010c17bc6fa', '31ff1a8bdfbc')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
