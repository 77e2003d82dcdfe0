"""Baseline: every table as the models declare it, and the ledger's append-only triggers on PostgreSQL.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-05

Generated from the models (`flask db migrate`) once nothing had been released, replacing the migrations that
built the schema during development. Beyond what the models say, PostgreSQL gets the raw SQL below: triggers
that refuse UPDATE, DELETE and TRUNCATE of `ledger_journals` and `ledger_lines` whatever the session's
settings. Only a schema change by the tables' owner (dropping or disabling the triggers) gets past them, so
the application's production role should not own the tables; the test suite empties them that way, as owner,
inside one transaction (tests/conftest.py).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


APPEND_ONLY = ("ledger_lines", "ledger_journals")
# One function serves the row triggers (UPDATE, DELETE) and the statement triggers (TRUNCATE).
REFUSE_CHANGE = """
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'P0001';
END $$"""


def upgrade():
    op.create_table(
        "categories",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["categories.id"], name=op.f("fk_categories_parent_id_categories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_categories_name")),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint("owner", "scope", "key", name=op.f("uq_idempotency_records_owner_scope_key")),
    )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_records_created_at"), ["created_at"], unique=False)

    op.create_table(
        "order_webhook_sources",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_webhook_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_order_webhook_sources_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("unionid", sa.String(length=64), nullable=True),
        sa.Column("nickname", sa.String(length=64), nullable=False),
        sa.Column("invite_code", sa.String(length=16), nullable=False),
        sa.Column("inviter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("inviter_id IS NULL OR inviter_id <> id", name=op.f("ck_users_not_self_invited")),
        sa.ForeignKeyConstraint(["inviter_id"], ["users.id"], name=op.f("fk_users_inviter_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("invite_code", name=op.f("uq_users_invite_code")),
        sa.UniqueConstraint("openid", name=op.f("uq_users_openid")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_inviter_id"), ["inviter_id"], unique=False)

    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_sessions_token_hash")),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "content_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('knowledge_point', 'member_post')", name=op.f("ck_content_items_known_kind")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_content_items_author_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_items")),
        sa.UniqueConstraint("kind", "ref_id", name=op.f("uq_content_items_kind_ref_id")),
    )
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_items_author_id"), ["author_id"], unique=False)

    op.create_table(
        "content_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("actor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('submitted', 'approved', 'rejected', 'resubmitted_by_edit')",
            name=op.f("ck_content_reviews_known_action"),
        ),
        sa.CheckConstraint(
            "item_kind IN ('course', 'lesson', 'knowledge_point')", name=op.f("ck_content_reviews_known_item_kind")
        ),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_content_reviews_actor_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_reviews")),
    )
    with op.batch_alter_table("content_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_content_reviews_item", ["item_kind", "item_id", "id"], unique=False)

    op.create_table(
        "copyright_acceptances",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("license_version", sa.String(length=16), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_copyright_acceptances_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_copyright_acceptances")),
        sa.UniqueConstraint(
            "user_id", "license_version", name=op.f("uq_copyright_acceptances_user_id_license_version")
        ),
    )
    op.create_table(
        "coupon_budgets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("budget_fen", sa.BigInteger(), nullable=False),
        sa.Column("committed_fen", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("budget_fen >= 0", name=op.f("ck_coupon_budgets_budget_not_negative")),
        sa.CheckConstraint(
            "committed_fen >= 0 AND committed_fen <= budget_fen", name=op.f("ck_coupon_budgets_committed_within_budget")
        ),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_coupon_budgets_created_by_id_users")),
        sa.ForeignKeyConstraint(["host_id"], ["users.id"], name=op.f("fk_coupon_budgets_host_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_budgets")),
    )
    with op.batch_alter_table("coupon_budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_budgets_host_id"), ["host_id"], unique=False)

    op.create_table(
        "courses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("cover_url", sa.String(length=1024), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_review', 'approved', 'rejected')", name=op.f("ck_courses_known_status")
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["users.id"], name=op.f("fk_courses_partner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
    )
    with op.batch_alter_table("courses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_courses_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_courses_topic"), ["topic"], unique=False)

    op.create_table(
        "institutions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("city", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('kindergarten', 'organisation')", name=op.f("ck_institutions_known_kind")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_institutions_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institutions")),
    )
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_institutions_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(owner_id IS NULL) = (kind IN ('platform_revenue', 'commission_receivable', 'adjustments'))",
            name=op.f("ck_ledger_accounts_owner_matches_kind"),
        ),
        sa.CheckConstraint(
            "kind IN ('pending', 'available', 'withdrawing', 'withdrawn', 'platform_revenue', 'commission_receivable', 'adjustments')",
            name=op.f("ck_ledger_accounts_known_kind"),
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_ledger_accounts_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_accounts_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("buyer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("buyer_openid", sa.String(length=64), nullable=True),
        sa.Column("tracking_code", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('paid', 'completed', 'refunded', 'cancelled')", name=op.f("ck_orders_known_status")
        ),
        sa.CheckConstraint(
            "paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen",
            name=op.f("ck_orders_refund_within_paid"),
        ),
        sa.ForeignKeyConstraint(["buyer_id"], ["users.id"], name=op.f("fk_orders_buyer_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_orders_source_external_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_buyer_id"), ["buyer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_paid_at"), ["paid_at"], unique=False)
        batch_op.create_index("ix_orders_settle_due", ["settled_at", "completed_at"], unique=False)

    op.create_table(
        "platform_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"], name=op.f("fk_platform_settings_updated_by_id_users")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_platform_settings")),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("images", sa.JSON(), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_rate_bp", sa.Integer(), nullable=False),
        sa.Column("merchant", sa.String(length=128), nullable=False),
        sa.Column("category_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("link_url", sa.String(length=1024), nullable=True),
        sa.Column("miniprogram_path", sa.String(length=512), nullable=True),
        sa.Column("union_coupon_url", sa.String(length=1024), nullable=True),
        sa.Column("is_breastmilk_substitute", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("search_tokens", sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql"), nullable=False),
        sa.CheckConstraint("source IN ('union', 'own')", name=op.f("ck_products_known_source")),
        sa.CheckConstraint("commission_rate_bp BETWEEN 0 AND 10000", name=op.f("ck_products_commission_rate_in_range")),
        sa.CheckConstraint("price_fen >= 0", name=op.f("ck_products_price_not_negative")),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"], name=op.f("fk_products_category_id_categories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_products_source_external_id")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_category_id"), ["category_id"], unique=False)
        batch_op.create_index("ix_products_commission", ["commission_rate_bp", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_products_is_active"), ["is_active"], unique=False)
        batch_op.create_index("ix_products_newest", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_products_price", ["price_fen", "id"], unique=False)
        batch_op.create_index(
            "ix_products_search_tokens",
            ["search_tokens"],
            unique=False,
            postgresql_using="gin",
            sqlite_where=sa.text("0"),
        )

    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.CheckConstraint("role IN ('host', 'partner', 'operator')", name=op.f("ck_user_roles_grantable_role")),
        sa.ForeignKeyConstraint(["granted_by_id"], ["users.id"], name=op.f("fk_user_roles_granted_by_id_users")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role", name=op.f("pk_user_roles")),
    )
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("partner_trade_no", sa.String(length=32), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payment_no", sa.String(length=64), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_message", sa.String(length=255), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'unknown', 'succeeded', 'failed')", name=op.f("ck_withdrawals_known_status")
        ),
        sa.CheckConstraint("amount_fen >= 100", name=op.f("ck_withdrawals_at_least_one_yuan")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_withdrawals_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
        sa.UniqueConstraint("partner_trade_no", name=op.f("uq_withdrawals_partner_trade_no")),
    )
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.create_index("ix_withdrawals_status_updated_at", ["status", "updated_at"], unique=False)
        batch_op.create_index("ix_withdrawals_user_id_requested_at", ["user_id", "requested_at"], unique=False)
        batch_op.create_index(
            "uq_withdrawals_one_in_flight",
            ["user_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('pending', 'unknown')"),
            sqlite_where=sa.text("status IN ('pending', 'unknown')"),
        )

    op.create_table(
        "commission_rules",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("category_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("level1_bp", sa.Integer(), nullable=False),
        sa.Column("level2_bp", sa.Integer(), nullable=False),
        sa.Column("host_bp", sa.Integer(), nullable=False),
        sa.Column("content_bp", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.CheckConstraint(
            "kind <> 'category' OR category_id IS NOT NULL", name=op.f("ck_commission_rules_category_rule_has_category")
        ),
        sa.CheckConstraint(
            "kind <> 'product' OR product_id IS NOT NULL", name=op.f("ck_commission_rules_product_rule_has_product")
        ),
        sa.CheckConstraint("kind IN ('category', 'product', 'campaign')", name=op.f("ck_commission_rules_known_kind")),
        sa.CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_commission_rules_window_ordered")),
        sa.CheckConstraint(
            "level1_bp BETWEEN 0 AND 10000 AND level2_bp BETWEEN 0 AND 10000 AND host_bp BETWEEN 0 AND 10000 AND content_bp BETWEEN 0 AND 10000",
            name=op.f("ck_commission_rules_rates_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name=op.f("fk_commission_rules_category_id_categories")
        ),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_commission_rules_created_by_id_users")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_commission_rules_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_rules")),
    )
    with op.batch_alter_table("commission_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commission_rules_category_id"), ["category_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_commission_rules_product_id"), ["product_id"], unique=False)

    op.create_table(
        "coupon_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_off_fen", sa.BigInteger(), nullable=False),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
        sa.Column("percent_off_bp", sa.Integer(), nullable=False),
        sa.Column("cap_fen", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("validity_kind", sa.String(length=8), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_days", sa.Integer(), nullable=True),
        sa.Column("claim_starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=False),
        sa.Column("per_day_limit", sa.Integer(), nullable=True),
        sa.Column("claim_gate", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("budget_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("budget_committed_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'fixed' AND amount_off_fen > 0) OR (kind = 'threshold' AND amount_off_fen > 0 AND threshold_fen >= amount_off_fen) OR (kind = 'percent' AND percent_off_bp BETWEEN 1 AND 9999 AND cap_fen > 0)",
            name=op.f("ck_coupon_templates_kind_fields"),
        ),
        sa.CheckConstraint(
            "(validity_kind = 'window' AND valid_from IS NOT NULL AND valid_until > valid_from) OR (validity_kind = 'days' AND valid_days >= 1)",
            name=op.f("ck_coupon_templates_validity"),
        ),
        sa.CheckConstraint("claim_gate IN ('redis', 'sql')", name=op.f("ck_coupon_templates_known_gate")),
        sa.CheckConstraint("kind IN ('fixed', 'threshold', 'percent')", name=op.f("ck_coupon_templates_known_kind")),
        sa.CheckConstraint("scope IN ('all', 'categories', 'products')", name=op.f("ck_coupon_templates_known_scope")),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'paused', 'ended')", name=op.f("ck_coupon_templates_known_status")
        ),
        sa.CheckConstraint(
            "amount_off_fen >= 0 AND threshold_fen >= 0 AND cap_fen >= 0",
            name=op.f("ck_coupon_templates_amounts_not_negative"),
        ),
        sa.CheckConstraint("budget_committed_fen >= 0", name=op.f("ck_coupon_templates_budget_committed_not_negative")),
        sa.CheckConstraint("claim_ends_at > claim_starts_at", name=op.f("ck_coupon_templates_claim_window")),
        sa.CheckConstraint("claimed >= 0 AND claimed <= stock", name=op.f("ck_coupon_templates_claimed_within_stock")),
        sa.CheckConstraint(
            "per_day_limit IS NULL OR per_day_limit >= 1", name=op.f("ck_coupon_templates_per_day_limit_positive")
        ),
        sa.CheckConstraint("per_user_limit >= 1", name=op.f("ck_coupon_templates_per_user_limit_positive")),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["coupon_budgets.id"], name=op.f("fk_coupon_templates_budget_id_coupon_budgets")
        ),
        sa.ForeignKeyConstraint(["issuer_id"], ["users.id"], name=op.f("fk_coupon_templates_issuer_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_templates")),
    )
    with op.batch_alter_table("coupon_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_templates_budget_id"), ["budget_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupon_templates_issuer_id"), ["issuer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupon_templates_status"), ["status"], unique=False)

    op.create_table(
        "institution_classes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("age_band", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "age_band IN ('pregnancy', '0-6m', '6-12m', '1-3y', '3-6y', '6y+')",
            name=op.f("ck_institution_classes_known_age_band"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institutions.id"],
            name=op.f("fk_institution_classes_institution_id_institutions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institution_classes")),
        sa.UniqueConstraint("institution_id", "name", name=op.f("uq_institution_classes_institution_id_name")),
    )
    with op.batch_alter_table("institution_classes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_institution_classes_institution_id"), ["institution_id"], unique=False)

    op.create_table(
        "ledger_journals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("withdrawal_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('order_paid', 'refund', 'clawback', 'settlement', 'withdrawal', 'payout_success', 'payout_failure', 'adjustment')",
            name=op.f("ck_ledger_journals_known_kind"),
        ),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_ledger_journals_created_by_id_users")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_ledger_journals_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_journals")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_journals_key")),
    )
    with op.batch_alter_table("ledger_journals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_journals_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_journals_withdrawal_id"), ["withdrawal_id"], unique=False)

    op.create_table(
        "lessons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("course_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_review', 'approved', 'rejected')", name=op.f("ck_lessons_known_status")
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_lessons_course_id_courses"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["users.id"], name=op.f("fk_lessons_partner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lessons")),
    )
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.create_index("ix_lessons_course_position", ["course_id", "position"], unique=False)
        batch_op.create_index(batch_op.f("ix_lessons_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_events_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.UniqueConstraint("order_id", "version", name=op.f("uq_order_events_order_id_version")),
    )
    op.create_table(
        "order_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_key", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("seller_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen",
            name=op.f("ck_order_lines_refund_within_paid"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_lines_quantity_positive")),
        sa.CheckConstraint("seller_bp BETWEEN 0 AND 10000", name=op.f("ck_order_lines_seller_bp_in_range")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_lines_order_id_orders")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_order_lines_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
        sa.UniqueConstraint("order_id", "line_key", name=op.f("uq_order_lines_order_id_line_key")),
    )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_lines_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_lines_product_id"), ["product_id"], unique=False)

    op.create_table(
        "order_webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_webhook_events_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_webhook_events")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_order_webhook_events_source_event_id")),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("target_mode", sa.String(length=8), nullable=False),
        sa.Column("target_filter", sa.JSON(), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('text', 'markdown', 'miniprogram_card', 'product_card', 'coupon_drop', 'knowledge_point')",
            name=op.f("ck_posts_known_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'cancelled', 'finished')", name=op.f("ck_posts_known_status")
        ),
        sa.CheckConstraint("target_mode IN ('groups', 'filter')", name=op.f("ck_posts_known_target_mode")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_posts_author_id_users")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_posts_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
    )
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.create_index("ix_posts_author_id_id", ["author_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_posts_status"), ["status"], unique=False)

    op.create_table(
        "share_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("sharer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger(), nullable=True),
        sa.Column("post_id", sa.BigInteger(), nullable=True),
        sa.Column("content_id", sa.BigInteger(), nullable=True),
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("content_author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_author_id"], ["users.id"], name=op.f("fk_share_links_content_author_id_users")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["users.id"], name=op.f("fk_share_links_host_id_users")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_share_links_product_id_products")),
        sa.ForeignKeyConstraint(["sharer_id"], ["users.id"], name=op.f("fk_share_links_sharer_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_links")),
        sa.UniqueConstraint("code", name=op.f("uq_share_links_code")),
    )
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_links_product_id"), ["product_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_share_links_sharer_id"), ["sharer_id"], unique=False)

    op.create_table(
        "withdrawal_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("withdrawal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=255), nullable=True),
        sa.Column("payment_no", sa.String(length=64), nullable=True),
        sa.Column("created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('transfer', 'query')", name=op.f("ck_withdrawal_attempts_known_action")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_withdrawal_attempts_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["withdrawal_id"], ["withdrawals.id"], name=op.f("fk_withdrawal_attempts_withdrawal_id_withdrawals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawal_attempts")),
    )
    with op.batch_alter_table("withdrawal_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_withdrawal_attempts_withdrawal_id_id", ["withdrawal_id", "id"], unique=False)

    op.create_table(
        "chat_groups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("institution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("class_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("age_band", sa.String(length=16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("invite_scene", sa.String(length=32), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "age_band IN ('pregnancy', '0-6m', '6-12m', '1-3y', '3-6y', '6y+')",
            name=op.f("ck_chat_groups_known_age_band"),
        ),
        sa.CheckConstraint(
            "channel IN ('wecom_webhook', 'wecom_customer_group', 'sandbox')", name=op.f("ck_chat_groups_known_channel")
        ),
        sa.CheckConstraint("member_count >= 0", name=op.f("ck_chat_groups_member_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["class_id"], ["institution_classes.id"], name=op.f("fk_chat_groups_class_id_institution_classes")
        ),
        sa.ForeignKeyConstraint(["host_id"], ["users.id"], name=op.f("fk_chat_groups_host_id_users")),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institutions.id"], name=op.f("fk_chat_groups_institution_id_institutions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_groups")),
        sa.UniqueConstraint("invite_scene", name=op.f("uq_chat_groups_invite_scene")),
    )
    with op.batch_alter_table("chat_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_groups_class_id"), ["class_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chat_groups_host_id"), ["host_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chat_groups_institution_id"), ["institution_id"], unique=False)
        batch_op.create_index("ix_chat_groups_timezone_active", ["timezone", "is_active"], unique=False)

    op.create_table(
        "clicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stream_id", sa.String(length=32), nullable=False),
        sa.Column("share_link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("sharer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger(), nullable=True),
        sa.Column("post_id", sa.BigInteger(), nullable=True),
        sa.Column("content_id", sa.BigInteger(), nullable=True),
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("content_author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("buyer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("visitor", sa.String(length=64), nullable=True),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("via IN ('redirect', 'app')", name=op.f("ck_clicks_known_via")),
        sa.ForeignKeyConstraint(
            ["share_link_id"], ["share_links.id"], name=op.f("fk_clicks_share_link_id_share_links")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")),
        sa.UniqueConstraint("stream_id", name=op.f("uq_clicks_stream_id")),
    )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index("ix_clicks_buyer_id_clicked_at", ["buyer_id", "clicked_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_clicks_share_link_id"), ["share_link_id"], unique=False)

    op.create_table(
        "coupon_share_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sharer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["sharer_id"], ["users.id"], name=op.f("fk_coupon_share_codes_sharer_id_users")),
        sa.ForeignKeyConstraint(
            ["template_id"], ["coupon_templates.id"], name=op.f("fk_coupon_share_codes_template_id_coupon_templates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_share_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_coupon_share_codes_code")),
    )
    with op.batch_alter_table("coupon_share_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_share_codes_sharer_id"), ["sharer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupon_share_codes_template_id"), ["template_id"], unique=False)

    op.create_table(
        "coupon_template_scopes",
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.CheckConstraint("target IN ('category', 'product')", name=op.f("ck_coupon_template_scopes_known_target")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["coupon_templates.id"],
            name=op.f("fk_coupon_template_scopes_template_id_coupon_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "target", "target_id", name=op.f("pk_coupon_template_scopes")),
    )
    op.create_table(
        "knowledge_points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lesson_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("course_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("image_urls", sa.JSON(), nullable=False),
        sa.Column("video_url", sa.String(length=1024), nullable=True),
        sa.Column("min_age_months", sa.Integer(), nullable=False),
        sa.Column("max_age_months", sa.Integer(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("product_ids", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("view_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_review', 'approved', 'rejected')",
            name=op.f("ck_knowledge_points_known_status"),
        ),
        sa.CheckConstraint("min_age_months <= max_age_months", name=op.f("ck_knowledge_points_age_ordered")),
        sa.CheckConstraint(
            "min_age_months BETWEEN -10 AND 216 AND max_age_months BETWEEN -10 AND 216",
            name=op.f("ck_knowledge_points_age_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_knowledge_points_course_id_courses"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"], ["lessons.id"], name=op.f("fk_knowledge_points_lesson_id_lessons"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["partner_id"], ["users.id"], name=op.f("fk_knowledge_points_partner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_points")),
    )
    with op.batch_alter_table("knowledge_points", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_points_course_status", ["course_id", "status"], unique=False)
        batch_op.create_index("ix_knowledge_points_lesson_position", ["lesson_id", "position"], unique=False)
        batch_op.create_index(batch_op.f("ix_knowledge_points_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "post_occurrences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("post_version", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=True),
        sa.Column("deliveries_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('scheduled', 'dispatched', 'missed', 'cancelled', 'refused')",
            name=op.f("ck_post_occurrences_known_state"),
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_post_occurrences_post_id_posts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_occurrences")),
        sa.UniqueConstraint("post_id", "timezone", "slot", name=op.f("uq_post_occurrences_post_id_timezone_slot")),
    )
    with op.batch_alter_table("post_occurrences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_post_occurrences_post_id"), ["post_id"], unique=False)
        batch_op.create_index("ix_post_occurrences_state_due_at", ["state", "due_at"], unique=False)

    op.create_table(
        "user_coupons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("claim_day", sa.Date(), nullable=True),
        sa.Column("day_seq", sa.Integer(), nullable=True),
        sa.Column("gate_grant", sa.String(length=32), nullable=True),
        sa.Column("claim_key", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reserved_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("origin_share_code", sa.String(length=16), nullable=True),
        sa.Column("origin_sharer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("origin_group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("origin_post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.CheckConstraint(
            "status <> 'reserved' OR reserved_order_id IS NOT NULL", name=op.f("ck_user_coupons_reserved_for_an_order")
        ),
        sa.CheckConstraint(
            "status IN ('available', 'reserved', 'used', 'expired')", name=op.f("ck_user_coupons_known_status")
        ),
        sa.CheckConstraint("seq >= 1 AND (day_seq IS NULL OR day_seq >= 1)", name=op.f("ck_user_coupons_seq_positive")),
        sa.CheckConstraint("valid_until > valid_from", name=op.f("ck_user_coupons_validity")),
        sa.ForeignKeyConstraint(
            ["origin_sharer_id"], ["users.id"], name=op.f("fk_user_coupons_origin_sharer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"], ["coupon_templates.id"], name=op.f("fk_user_coupons_template_id_coupon_templates")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_coupons_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_coupons")),
        sa.UniqueConstraint("gate_grant", name=op.f("uq_user_coupons_gate_grant")),
        sa.UniqueConstraint(
            "template_id",
            "user_id",
            "claim_day",
            "day_seq",
            name=op.f("uq_user_coupons_template_id_user_id_claim_day_day_seq"),
        ),
        sa.UniqueConstraint("template_id", "user_id", "seq", name=op.f("uq_user_coupons_template_id_user_id_seq")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("user_coupons", schema=None) as batch_op:
        batch_op.create_index("ix_user_coupons_status_valid_until", ["status", "valid_until"], unique=False)
        batch_op.create_index("ix_user_coupons_template_claimed_at", ["template_id", "claimed_at"], unique=False)
        batch_op.create_index("ix_user_coupons_user_status", ["user_id", "status"], unique=False)

    op.create_table(
        "attributions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("buyer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("click_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("share_link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("group_id", sa.BigInteger(), nullable=True),
        sa.Column("post_id", sa.BigInteger(), nullable=True),
        sa.Column("content_id", sa.BigInteger(), nullable=True),
        sa.Column("level1_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("level2_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("content_author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("commission_rule_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("level2_enabled", sa.Boolean(), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("seller_bp", sa.Integer(), nullable=False),
        sa.Column("level1_bp", sa.Integer(), nullable=False),
        sa.Column("level2_bp", sa.Integer(), nullable=False),
        sa.Column("host_bp", sa.Integer(), nullable=False),
        sa.Column("content_bp", sa.Integer(), nullable=False),
        sa.Column("seller_fen", sa.BigInteger(), nullable=False),
        sa.Column("level1_fen", sa.BigInteger(), nullable=False),
        sa.Column("level2_fen", sa.BigInteger(), nullable=False),
        sa.Column("host_fen", sa.BigInteger(), nullable=False),
        sa.Column("content_fen", sa.BigInteger(), nullable=False),
        sa.Column("platform_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rule IN ('tracking_code', 'click', 'referrer', 'none')", name=op.f("ck_attributions_known_rule")
        ),
        sa.CheckConstraint("platform_fen >= 0", name=op.f("ck_attributions_platform_not_negative")),
        sa.CheckConstraint(
            "seller_fen = level1_fen + level2_fen + host_fen + content_fen + platform_fen",
            name=op.f("ck_attributions_shares_add_up"),
        ),
        sa.ForeignKeyConstraint(["click_id"], ["clicks.id"], name=op.f("fk_attributions_click_id_clicks")),
        sa.ForeignKeyConstraint(
            ["commission_rule_id"],
            ["commission_rules.id"],
            name=op.f("fk_attributions_commission_rule_id_commission_rules"),
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_attributions_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["order_line_id"], ["order_lines.id"], name=op.f("fk_attributions_order_line_id_order_lines")
        ),
        sa.ForeignKeyConstraint(
            ["share_link_id"], ["share_links.id"], name=op.f("fk_attributions_share_link_id_share_links")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attributions")),
        sa.UniqueConstraint("order_line_id", name=op.f("uq_attributions_order_line_id")),
    )
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attributions_order_id"), ["order_id"], unique=False)

    op.create_table(
        "checkout_orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("out_trade_no", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("subtotal_fen", sa.BigInteger(), nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunding_fen", sa.BigInteger(), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("share_code", sa.String(length=32), nullable=True),
        sa.Column("prepay_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("affiliate_version", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending_payment', 'paid', 'partially_refunded', 'refunded', 'expired', 'cancelled')",
            name=op.f("ck_checkout_orders_known_status"),
        ),
        sa.CheckConstraint(
            "discount_fen >= 0 AND payable_fen >= 1 AND subtotal_fen = discount_fen + payable_fen",
            name=op.f("ck_checkout_orders_amounts_add_up"),
        ),
        sa.CheckConstraint(
            "refunded_fen >= 0 AND refunding_fen >= 0 AND refunded_fen + refunding_fen <= payable_fen",
            name=op.f("ck_checkout_orders_refund_within_paid"),
        ),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["user_coupons.id"], name=op.f("fk_checkout_orders_coupon_id_user_coupons")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_checkout_orders_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_orders")),
        sa.UniqueConstraint("out_trade_no", name=op.f("uq_checkout_orders_out_trade_no")),
    )
    with op.batch_alter_table("checkout_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkout_orders_coupon_id"), ["coupon_id"], unique=False)
        batch_op.create_index("ix_checkout_orders_status_expires_at", ["status", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkout_orders_user_id"), ["user_id"], unique=False)
        batch_op.create_index("ix_checkout_orders_user_id_created_at", ["user_id", "created_at"], unique=False)

    op.create_table(
        "coupon_refusal_resolutions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("refusal_entry", sa.String(length=32), nullable=False),
        sa.Column("gate_grant", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("granted_coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refusal_reason", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("user_coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resolved_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action = 'reissued' OR user_coupon_id IS NULL",
            name=op.f("ck_coupon_refusal_resolutions_dismissal_has_no_coupon"),
        ),
        sa.CheckConstraint(
            "action IN ('reissued', 'dismissed')", name=op.f("ck_coupon_refusal_resolutions_known_action")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"], ["users.id"], name=op.f("fk_coupon_refusal_resolutions_resolved_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_coupon_id"],
            ["user_coupons.id"],
            name=op.f("fk_coupon_refusal_resolutions_user_coupon_id_user_coupons"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_coupon_refusal_resolutions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_refusal_resolutions")),
        sa.UniqueConstraint("gate_grant", name=op.f("uq_coupon_refusal_resolutions_gate_grant")),
        sa.UniqueConstraint("refusal_entry", name=op.f("uq_coupon_refusal_resolutions_refusal_entry")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurrence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("manual_retries", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sending_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("quota_day", sa.String(length=10), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'submitted', 'sent', 'failed', 'dead', 'unknown', 'missed', 'skipped')",
            name=op.f("ck_deliveries_known_state"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_deliveries_attempts_not_negative")),
        sa.ForeignKeyConstraint(["group_id"], ["chat_groups.id"], name=op.f("fk_deliveries_group_id_chat_groups")),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["post_occurrences.id"],
            name=op.f("fk_deliveries_occurrence_id_post_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_deliveries_post_id_posts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("group_id", "quota_day", name=op.f("uq_deliveries_group_id_quota_day")),
        sa.UniqueConstraint(
            "post_id", "group_id", "occurrence_id", name=op.f("uq_deliveries_post_id_group_id_occurrence_id")
        ),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_group_id_id", ["group_id", "id"], unique=False)
        batch_op.create_index("ix_deliveries_occurrence_id", ["occurrence_id"], unique=False)
        batch_op.create_index("ix_deliveries_post_id_id", ["post_id", "id"], unique=False)
        batch_op.create_index("ix_deliveries_state_available_at", ["state", "available_at"], unique=False)

    op.create_table(
        "drip_sent",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("knowledge_point_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurrence_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["chat_groups.id"], name=op.f("fk_drip_sent_group_id_chat_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["knowledge_point_id"],
            ["knowledge_points.id"],
            name=op.f("fk_drip_sent_knowledge_point_id_knowledge_points"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_drip_sent_post_id_posts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drip_sent")),
        sa.UniqueConstraint("group_id", "knowledge_point_id", name=op.f("uq_drip_sent_group_id_knowledge_point_id")),
        sa.UniqueConstraint(
            "post_id", "group_id", "occurrence_id", name=op.f("uq_drip_sent_post_id_group_id_occurrence_id")
        ),
    )
    with op.batch_alter_table("drip_sent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drip_sent_knowledge_point_id"), ["knowledge_point_id"], unique=False)

    op.create_table(
        "group_member_roles",
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.CheckConstraint(
            "role IN ('expert', 'welfare_officer', 'teacher', 'obstetrician')",
            name=op.f("ck_group_member_roles_known_role"),
        ),
        sa.ForeignKeyConstraint(
            ["granted_by_id"], ["users.id"], name=op.f("fk_group_member_roles_granted_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["chat_groups.id"],
            name=op.f("fk_group_member_roles_group_id_chat_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_group_member_roles_user_id_users")),
        sa.PrimaryKeyConstraint("group_id", "user_id", "role", name=op.f("pk_group_member_roles")),
    )
    op.create_table(
        "group_members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fan_level", sa.String(length=16), nullable=False),
        sa.Column("fan_level_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "fan_level IN ('casual', 'active', 'demand', 'trust')", name=op.f("ck_group_members_known_fan_level")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["chat_groups.id"], name=op.f("fk_group_members_group_id_chat_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_group_members_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_members")),
        sa.UniqueConstraint("group_id", "user_id", name=op.f("uq_group_members_group_id_user_id")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index("ix_group_members_group_level", ["group_id", "fan_level"], unique=False)
        batch_op.create_index(batch_op.f("ix_group_members_user_id"), ["user_id"], unique=False)

    op.create_table(
        "member_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('joined', 'clicked', 'viewed', 'demand', 'purchased')", name=op.f("ck_member_events_known_kind")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["chat_groups.id"], name=op.f("fk_member_events_group_id_chat_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_member_events_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_events")),
        sa.UniqueConstraint(
            "group_id", "user_id", "kind", "ref", name=op.f("uq_member_events_group_id_user_id_kind_ref")
        ),
    )
    with op.batch_alter_table("member_events", schema=None) as batch_op:
        batch_op.create_index("ix_member_events_group_user_at", ["group_id", "user_id", "occurred_at"], unique=False)

    op.create_table(
        "member_posts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("image_urls", sa.JSON(), nullable=False),
        sa.Column("product_ids", sa.JSON(), nullable=False),
        sa.Column("share_codes", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("min_age_months", sa.Integer(), nullable=True),
        sa.Column("max_age_months", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("cleared_report_count", sa.Integer(), nullable=False),
        sa.Column("view_count", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("license_version", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'rejected', 'taken_down')", name=op.f("ck_member_posts_known_status")
        ),
        sa.CheckConstraint(
            "min_age_months IS NULL OR max_age_months IS NULL OR min_age_months <= max_age_months",
            name=op.f("ck_member_posts_age_ordered"),
        ),
        sa.CheckConstraint("report_count >= 0", name=op.f("ck_member_posts_report_count_not_negative")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_member_posts_author_id_users")),
        sa.ForeignKeyConstraint(["group_id"], ["chat_groups.id"], name=op.f("fk_member_posts_group_id_chat_groups")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_posts")),
    )
    with op.batch_alter_table("member_posts", schema=None) as batch_op:
        batch_op.create_index("ix_member_posts_author", ["author_id", "id"], unique=False)
        batch_op.create_index("ix_member_posts_feed_newest", ["status", "hidden", "published_at", "id"], unique=False)
        batch_op.create_index("ix_member_posts_feed_popular", ["status", "hidden", "score", "id"], unique=False)
        batch_op.create_index("ix_member_posts_group", ["group_id", "status", "published_at"], unique=False)

    op.create_table(
        "post_targets",
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["chat_groups.id"], name=op.f("fk_post_targets_group_id_chat_groups")),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_post_targets_post_id_posts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", "group_id", name=op.f("pk_post_targets")),
    )
    with op.batch_alter_table("post_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_post_targets_group_id"), ["group_id"], unique=False)

    op.create_table(
        "checkout_order_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "discount_fen >= 0 AND paid_fen = amount_fen - discount_fen AND paid_fen >= 0",
            name=op.f("ck_checkout_order_lines_paid"),
        ),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_checkout_order_lines_quantity_positive")),
        sa.CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= paid_fen", name=op.f("ck_checkout_order_lines_refund_within_paid")
        ),
        sa.CheckConstraint(
            "unit_price_fen >= 0 AND amount_fen = unit_price_fen * quantity",
            name=op.f("ck_checkout_order_lines_amount"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["checkout_orders.id"],
            name=op.f("fk_checkout_order_lines_order_id_checkout_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_checkout_order_lines_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_order_lines")),
        sa.UniqueConstraint("order_id", "product_id", name=op.f("uq_checkout_order_lines_order_id_product_id")),
    )
    with op.batch_alter_table("checkout_order_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkout_order_lines_order_id"), ["order_id"], unique=False)

    op.create_table(
        "checkout_payments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen >= 1", name=op.f("ck_checkout_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["checkout_orders.id"], name=op.f("fk_checkout_payments_order_id_checkout_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_payments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_checkout_payments_order_id")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_checkout_payments_transaction_id")),
    )
    op.create_table(
        "checkout_refunds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("out_refund_no", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("wechat_refund_id", sa.String(length=64), nullable=False),
        sa.Column("coupon_restored", sa.Boolean(), nullable=False),
        sa.Column("requested_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("wechat_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'processing') = (settled_at IS NULL)", name=op.f("ck_checkout_refunds_settled_when_final")
        ),
        sa.CheckConstraint(
            "status IN ('processing', 'succeeded', 'failed')", name=op.f("ck_checkout_refunds_known_status")
        ),
        sa.CheckConstraint("amount_fen >= 1", name=op.f("ck_checkout_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["checkout_orders.id"], name=op.f("fk_checkout_refunds_order_id_checkout_orders")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_checkout_refunds_requested_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_refunds")),
        sa.UniqueConstraint("order_id", "seq", name=op.f("uq_checkout_refunds_order_id_seq")),
        sa.UniqueConstraint("out_refund_no", name=op.f("uq_checkout_refunds_out_refund_no")),
    )
    with op.batch_alter_table("checkout_refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkout_refunds_order_id"), ["order_id"], unique=False)
        batch_op.create_index("ix_checkout_refunds_status_created_at", ["status", "created_at"], unique=False)

    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("journal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("share", sa.String(length=16), nullable=True),
        sa.Column("order_line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("attribution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen <> 0", name=op.f("ck_ledger_lines_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.id"], name=op.f("fk_ledger_lines_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["attribution_id"], ["attributions.id"], name=op.f("fk_ledger_lines_attribution_id_attributions")
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"], ["ledger_journals.id"], name=op.f("fk_ledger_lines_journal_id_ledger_journals")
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"], ["order_lines.id"], name=op.f("fk_ledger_lines_order_line_id_order_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_lines")),
    )
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_lines_account_id_id", ["account_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_lines_journal_id"), ["journal_id"], unique=False)

    op.create_table(
        "member_post_products",
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["member_posts.id"],
            name=op.f("fk_member_post_products_post_id_member_posts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_member_post_products_product_id_products")
        ),
        sa.PrimaryKeyConstraint("post_id", "product_id", name=op.f("pk_member_post_products")),
    )
    with op.batch_alter_table("member_post_products", schema=None) as batch_op:
        batch_op.create_index("ix_member_post_products_product", ["product_id", "post_id"], unique=False)

    op.create_table(
        "member_post_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reporter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["member_posts.id"],
            name=op.f("fk_member_post_reports_post_id_member_posts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["reporter_id"], ["users.id"], name=op.f("fk_member_post_reports_reporter_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_post_reports")),
        sa.UniqueConstraint("post_id", "reporter_id", name=op.f("uq_member_post_reports_post_id_reporter_id")),
    )
    op.create_table(
        "sandbox_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_sandbox_messages_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["chat_groups.id"], name=op.f("fk_sandbox_messages_group_id_chat_groups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_messages")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_sandbox_messages_delivery_id")),
    )
    with op.batch_alter_table("sandbox_messages", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_messages_group_id_id", ["group_id", "id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(REFUSE_CHANGE)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION ledger_append_only()")
    with op.batch_alter_table("sandbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_messages_group_id_id")

    op.drop_table("sandbox_messages")
    op.drop_table("member_post_reports")
    with op.batch_alter_table("member_post_products", schema=None) as batch_op:
        batch_op.drop_index("ix_member_post_products_product")

    op.drop_table("member_post_products")
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_lines_journal_id"))
        batch_op.drop_index("ix_ledger_lines_account_id_id")

    op.drop_table("ledger_lines")
    with op.batch_alter_table("checkout_refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_refunds_status_created_at")
        batch_op.drop_index(batch_op.f("ix_checkout_refunds_order_id"))

    op.drop_table("checkout_refunds")
    op.drop_table("checkout_payments")
    with op.batch_alter_table("checkout_order_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkout_order_lines_order_id"))

    op.drop_table("checkout_order_lines")
    with op.batch_alter_table("post_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_post_targets_group_id"))

    op.drop_table("post_targets")
    with op.batch_alter_table("member_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_member_posts_group")
        batch_op.drop_index("ix_member_posts_feed_popular")
        batch_op.drop_index("ix_member_posts_feed_newest")
        batch_op.drop_index("ix_member_posts_author")

    op.drop_table("member_posts")
    with op.batch_alter_table("member_events", schema=None) as batch_op:
        batch_op.drop_index("ix_member_events_group_user_at")

    op.drop_table("member_events")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_members_user_id"))
        batch_op.drop_index("ix_group_members_group_level")

    op.drop_table("group_members")
    op.drop_table("group_member_roles")
    with op.batch_alter_table("drip_sent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drip_sent_knowledge_point_id"))

    op.drop_table("drip_sent")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_state_available_at")
        batch_op.drop_index("ix_deliveries_post_id_id")
        batch_op.drop_index("ix_deliveries_occurrence_id")
        batch_op.drop_index("ix_deliveries_group_id_id")

    op.drop_table("deliveries")
    op.drop_table("coupon_refusal_resolutions")
    with op.batch_alter_table("checkout_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_orders_user_id_created_at")
        batch_op.drop_index(batch_op.f("ix_checkout_orders_user_id"))
        batch_op.drop_index("ix_checkout_orders_status_expires_at")
        batch_op.drop_index(batch_op.f("ix_checkout_orders_coupon_id"))

    op.drop_table("checkout_orders")
    with op.batch_alter_table("attributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attributions_order_id"))

    op.drop_table("attributions")
    with op.batch_alter_table("user_coupons", schema=None) as batch_op:
        batch_op.drop_index("ix_user_coupons_user_status")
        batch_op.drop_index("ix_user_coupons_template_claimed_at")
        batch_op.drop_index("ix_user_coupons_status_valid_until")

    op.drop_table("user_coupons")
    with op.batch_alter_table("post_occurrences", schema=None) as batch_op:
        batch_op.drop_index("ix_post_occurrences_state_due_at")
        batch_op.drop_index(batch_op.f("ix_post_occurrences_post_id"))

    op.drop_table("post_occurrences")
    with op.batch_alter_table("knowledge_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_points_partner_id"))
        batch_op.drop_index("ix_knowledge_points_lesson_position")
        batch_op.drop_index("ix_knowledge_points_course_status")

    op.drop_table("knowledge_points")
    op.drop_table("coupon_template_scopes")
    with op.batch_alter_table("coupon_share_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_share_codes_template_id"))
        batch_op.drop_index(batch_op.f("ix_coupon_share_codes_sharer_id"))

    op.drop_table("coupon_share_codes")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clicks_share_link_id"))
        batch_op.drop_index("ix_clicks_buyer_id_clicked_at")

    op.drop_table("clicks")
    with op.batch_alter_table("chat_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_groups_timezone_active")
        batch_op.drop_index(batch_op.f("ix_chat_groups_institution_id"))
        batch_op.drop_index(batch_op.f("ix_chat_groups_host_id"))
        batch_op.drop_index(batch_op.f("ix_chat_groups_class_id"))

    op.drop_table("chat_groups")
    with op.batch_alter_table("withdrawal_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_withdrawal_attempts_withdrawal_id_id")

    op.drop_table("withdrawal_attempts")
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_links_sharer_id"))
        batch_op.drop_index(batch_op.f("ix_share_links_product_id"))

    op.drop_table("share_links")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_posts_status"))
        batch_op.drop_index("ix_posts_author_id_id")

    op.drop_table("posts")
    op.drop_table("order_webhook_events")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_lines_product_id"))
        batch_op.drop_index(batch_op.f("ix_order_lines_order_id"))

    op.drop_table("order_lines")
    op.drop_table("order_events")
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lessons_partner_id"))
        batch_op.drop_index("ix_lessons_course_position")

    op.drop_table("lessons")
    with op.batch_alter_table("ledger_journals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_journals_withdrawal_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_journals_order_id"))

    op.drop_table("ledger_journals")
    with op.batch_alter_table("institution_classes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_institution_classes_institution_id"))

    op.drop_table("institution_classes")
    with op.batch_alter_table("coupon_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_templates_status"))
        batch_op.drop_index(batch_op.f("ix_coupon_templates_issuer_id"))
        batch_op.drop_index(batch_op.f("ix_coupon_templates_budget_id"))

    op.drop_table("coupon_templates")
    with op.batch_alter_table("commission_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commission_rules_product_id"))
        batch_op.drop_index(batch_op.f("ix_commission_rules_category_id"))

    op.drop_table("commission_rules")
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_withdrawals_one_in_flight",
            postgresql_where=sa.text("status IN ('pending', 'unknown')"),
            sqlite_where=sa.text("status IN ('pending', 'unknown')"),
        )
        batch_op.drop_index("ix_withdrawals_user_id_requested_at")
        batch_op.drop_index("ix_withdrawals_status_updated_at")

    op.drop_table("withdrawals")
    op.drop_table("user_roles")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index("ix_products_search_tokens", postgresql_using="gin", sqlite_where=sa.text("0"))
        batch_op.drop_index("ix_products_price")
        batch_op.drop_index("ix_products_newest")
        batch_op.drop_index(batch_op.f("ix_products_is_active"))
        batch_op.drop_index("ix_products_commission")
        batch_op.drop_index(batch_op.f("ix_products_category_id"))

    op.drop_table("products")
    op.drop_table("platform_settings")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_settle_due")
        batch_op.drop_index(batch_op.f("ix_orders_paid_at"))
        batch_op.drop_index(batch_op.f("ix_orders_buyer_id"))

    op.drop_table("orders")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_accounts_owner_id"))

    op.drop_table("ledger_accounts")
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_institutions_owner_id"))

    op.drop_table("institutions")
    with op.batch_alter_table("courses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_courses_topic"))
        batch_op.drop_index(batch_op.f("ix_courses_partner_id"))

    op.drop_table("courses")
    with op.batch_alter_table("coupon_budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_budgets_host_id"))

    op.drop_table("coupon_budgets")
    op.drop_table("copyright_acceptances")
    with op.batch_alter_table("content_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_content_reviews_item")

    op.drop_table("content_reviews")
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_items_author_id"))

    op.drop_table("content_items")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_auth_sessions_expires_at"))

    op.drop_table("auth_sessions")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_inviter_id"))

    op.drop_table("users")
    op.drop_table("order_webhook_sources")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_created_at"))

    op.drop_table("idempotency_records")
    op.drop_table("categories")
