"""merge heads: operator payouts and refusals, ledger append-only

Revision ID: d4403fd45f24
Revises: 39d4982acfea, c7e967cdd47e
Create Date: 2026-11-23 07:50:11.990418

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4403fd45f24'
down_revision = ('39d4982acfea', 'c7e967cdd47e')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
