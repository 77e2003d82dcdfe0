"""catalog search tokens and sort indexes

Revision ID: fbde953f99c5
Revises: d862a5c1d9e1
Create Date: 2026-11-23 01:06:42.720283

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'fbde953f99c5'
down_revision = 'd862a5c1d9e1'
branch_labels = None
depends_on = None

TOKENS = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), 'postgresql')
BATCH = 5000


def _tokens(*texts):
    """app.catalog.search.search_tokens as of this revision (migrations never import app code)."""
    tokens = set()
    for text in texts:
        for run in (text or "").lower().split():
            tokens |= set(run) | {run[i:i + 2] for i in range(len(run) - 1)}
    return sorted(tokens)


def _backfill():
    products = sa.table('products', sa.column('id', sa.BigInteger()), sa.column('title', sa.String()),
                        sa.column('merchant', sa.String()), sa.column('search_tokens', TOKENS))
    fill = (products.update().where(products.c.id == sa.bindparam('product_id'))
            .values(search_tokens=sa.bindparam('tokens', type_=TOKENS)))
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.select(products.c.id, products.c.title, products.c.merchant)
                            .where(products.c.id > last).order_by(products.c.id).limit(BATCH)).all()
        if not rows:
            return
        bind.execute(fill, [{'product_id': row.id, 'tokens': _tokens(row.title, row.merchant)} for row in rows])
        last = rows[-1].id


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_tokens', TOKENS, nullable=True))
    _backfill()
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.alter_column('search_tokens', existing_type=TOKENS, nullable=False)
        batch_op.drop_index(batch_op.f('ix_products_created_at'))
        batch_op.create_index('ix_products_commission', ['commission_rate_bp', 'id'], unique=False)
        batch_op.create_index('ix_products_newest', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_products_price', ['price_fen', 'id'], unique=False)
        batch_op.create_index('ix_products_search_tokens', ['search_tokens'], unique=False, postgresql_using='gin',
                              sqlite_where=sa.text('0'))


def downgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index('ix_products_search_tokens', postgresql_using='gin', sqlite_where=sa.text('0'))
        batch_op.drop_index('ix_products_price')
        batch_op.drop_index('ix_products_newest')
        batch_op.drop_index('ix_products_commission')
        batch_op.create_index(batch_op.f('ix_products_created_at'), ['created_at'], unique=False)
        batch_op.drop_column('search_tokens')
