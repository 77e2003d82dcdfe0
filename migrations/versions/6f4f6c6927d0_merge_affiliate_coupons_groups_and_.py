"""merge affiliate, coupons, groups and content

Revision ID: 6f4f6c6927d0
Revises: 1b7725378db8, 2e3306b8a19c, 6d300f4f5870, 6da5ab0ae3f1
Create Date: 2026-11-22 22:48:08.053159

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6f4f6c6927d0'
down_revision = ('1b7725378db8', '2e3306b8a19c', '6d300f4f5870', '6da5ab0ae3f1')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
