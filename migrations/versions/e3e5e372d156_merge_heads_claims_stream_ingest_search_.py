"""merge heads: claims stream, ingest, search tokens, delivery skipped

Revision ID: e3e5e372d156
Revises: 106b4a586618, 5b8e2d1c9a47, 5c2f8e1d7a90
Create Date: 2026-11-23 02:42:15.581162

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3e5e372d156'
down_revision = ('106b4a586618', '5b8e2d1c9a47', '5c2f8e1d7a90')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
