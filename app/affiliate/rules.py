"""Commission rules: the defaults, operator overrides per category, product and campaign, and the switch.

Which rule applies to a product at a moment: among the rules whose window holds that moment, a campaign
beats a product rule, which beats a category rule; a campaign aimed at a product beats one aimed at a
category, which beats a platform-wide one; among equals the latest start (then the newest rule) wins.
Without any, the defaults below apply. The rates used are copied onto each attribution.
"""
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import or_, select

from app.affiliate.models import CommissionRule, PlatformSetting
from app.core.clock import now_utc
from app.core.db import db

DEFAULT_RATES = {"level1_bp": 500, "level2_bp": 100, "host_bp": 100, "content_bp": 100}
LEVEL2_SETTING = "level2_enabled"
KIND_RANK = {"category": 0, "product": 1, "campaign": 2}


@dataclass(frozen=True)
class Rates:
    rule_id: int | None
    level1_bp: int
    level2_bp: int
    host_bp: int
    content_bp: int


def _rank(rule: CommissionRule) -> tuple:
    target = 2 if rule.product_id is not None else 1 if rule.category_id is not None else 0
    return KIND_RANK[rule.kind], target, rule.starts_at, rule.id


def _matches(rule: CommissionRule, product_id: int, category_id: int | None) -> bool:
    if rule.kind == "product":
        return rule.product_id == product_id
    if rule.kind == "category":
        return category_id is not None and rule.category_id == category_id
    return (rule.product_id is None or rule.product_id == product_id) and \
        (rule.category_id is None or rule.category_id == category_id)


class RuleBook:
    """The rules in force during [start, end], loaded once and applied to many products (batch ingestion)."""

    def __init__(self, start: datetime, end: datetime | None = None):
        end = end or start
        self.rules = list(db.session.scalars(select(CommissionRule).where(
            CommissionRule.starts_at <= end, or_(CommissionRule.ends_at.is_(None), CommissionRule.ends_at > start))))
        self.default_at = start

    def in_force(self, at: datetime) -> list[CommissionRule]:
        return [r for r in self.rules if r.starts_at <= at and (r.ends_at is None or r.ends_at > at)]

    def rates(self, *, product_id: int, category_id: int | None, at: datetime | None = None) -> Rates:
        at = at or self.default_at
        matching = [r for r in self.rules if r.starts_at <= at and (r.ends_at is None or r.ends_at > at)
                    and _matches(r, product_id, category_id)]
        if not matching:
            return Rates(rule_id=None, **DEFAULT_RATES)
        best = max(matching, key=_rank)
        return Rates(rule_id=best.id, level1_bp=best.level1_bp, level2_bp=best.level2_bp, host_bp=best.host_bp,
                     content_bp=best.content_bp)


def rates_for(*, product_id: int, category_id: int | None, at: datetime | None = None) -> Rates:
    """The rates that apply to one product at `at` (now by default)."""
    return RuleBook(at or now_utc()).rates(product_id=product_id, category_id=category_id)


def setting(name: str, default):
    """A platform setting's value, or `default` when never set."""
    row = db.session.get(PlatformSetting, name)
    return default if row is None else row.value.get("value", default)


def level2_enabled() -> bool:
    """Whether level-2 commission is paid (operators can switch it off platform-wide)."""
    return bool(setting(LEVEL2_SETTING, current_app.config.get("LEVEL2_ENABLED_DEFAULT", True)))
