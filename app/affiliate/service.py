"""Affiliate use cases: what a sharer earns, commission rules, the level-2 switch, share links and clicks."""
from datetime import datetime

from sqlalchemy import select

from app.affiliate import rules
from app.affiliate.commission import split
from app.affiliate.models import CommissionRule, PlatformSetting
from app.catalog import service as catalog
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Invalid, NotFound


def sharer_earning(*, product) -> dict:
    """What the level-1 sharer earns on one unit at list price under the rules in force now."""
    rates = rules.rates_for(product_id=product.id, category_id=product.category_id)
    shares = split(paid_fen=product.price_fen, seller_bp=product.commission_rate_bp, level1_bp=rates.level1_bp,
                   level2_bp=rates.level2_bp if rules.level2_enabled() else 0, host_bp=rates.host_bp,
                   content_bp=rates.content_bp)
    return {"level1_fen": shares.level1_fen, "level1_bp": rates.level1_bp, "rule_id": rates.rule_id}


def list_rules(*, at: datetime | None) -> list[CommissionRule]:
    """Every rule, or only those in force at `at`, newest first."""
    if at is not None:
        return sorted(rules.RuleBook(at).rules, key=lambda r: r.id, reverse=True)
    return list(db.session.scalars(select(CommissionRule).order_by(CommissionRule.id.desc())))


def create_rule(*, kind: str, name: str, category_id: int | None, product_id: int | None, level1_bp: int,
                level2_bp: int, host_bp: int, content_bp: int, starts_at: datetime | None, ends_at: datetime | None,
                created_by_id: int | None) -> CommissionRule:
    """Add an override; rules are never edited in place (end one and add another), so history stays readable."""
    if kind == "category" and (category_id is None or product_id is not None):
        raise Invalid("A category rule names a category and no product.", code="rule_target_invalid")
    if kind == "product" and (product_id is None or category_id is not None):
        raise Invalid("A product rule names a product and no category.", code="rule_target_invalid")
    if category_id is not None:
        catalog.require_categories(category_ids=[category_id])
    if product_id is not None:
        catalog.require_products(product_ids=[product_id])
    starts_at = starts_at or now_utc()
    if ends_at is not None and ends_at <= starts_at:
        raise Invalid("The window must end after it starts.", code="rule_window_invalid",
                      errors={"ends_at": ["Must be after starts_at."]})
    rule = CommissionRule(kind=kind, name=name, category_id=category_id, product_id=product_id, level1_bp=level1_bp,
                          level2_bp=level2_bp, host_bp=host_bp, content_bp=content_bp, starts_at=starts_at,
                          ends_at=ends_at, created_at=now_utc(), created_by_id=created_by_id)
    db.session.add(rule)
    db.session.commit()
    return rule


def end_rule(*, rule_id: int, ends_at: datetime | None) -> CommissionRule:
    """Close a rule's window (now by default); past attributions keep the rates they copied."""
    rule = db.session.get(CommissionRule, rule_id)
    if rule is None:
        raise NotFound("No such rule.", code="rule_not_found")
    ends_at = ends_at or now_utc()
    if ends_at <= rule.starts_at:
        raise Invalid("The window must end after it starts.", code="rule_window_invalid",
                      errors={"ends_at": ["Must be after starts_at."]})
    if rule.ends_at is None or ends_at < rule.ends_at:
        rule.ends_at = ends_at
    db.session.commit()
    return rule


def get_settings() -> dict:
    """The platform switches an operator controls."""
    return {"level2_enabled": rules.level2_enabled()}


def set_level2(*, enabled: bool, operator_id: int | None) -> dict:
    """Switch level-2 commission on or off platform-wide (affects orders attributed from now on)."""
    row = db.session.get(PlatformSetting, rules.LEVEL2_SETTING)
    if row is None:
        db.session.add(PlatformSetting(key=rules.LEVEL2_SETTING, value={"value": enabled}, updated_at=now_utc(),
                                       updated_by_id=operator_id))
    else:
        row.value = {"value": enabled}
        row.updated_at = now_utc()
        row.updated_by_id = operator_id
    db.session.commit()
    return get_settings()
