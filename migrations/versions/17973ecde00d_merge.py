"""merge

Revision ID: 17973ecde00d
Revises: 6f4f6c6927d0, 7a7406570ed5
Create Date: 2026-11-22 23:09:40.957017

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '17973ecde00d'
down_revision = ('6f4f6c6927d0', '7a7406570ed5')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
