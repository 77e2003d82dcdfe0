"""Commission rules: the defaults, operator overrides per category, product and campaign, and the switch.

Which rule applies to a product at a moment: among the rules whose window holds that moment, a campaign
beats a product rule, which beats a category rule; a campaign aimed at a product beats one aimed at a
category, which beats a platform-wide one. A rule aimed at a category covers its sub-categories: the
rule on the nearest category (the product's own, then its parent, ...) wins; among equals the latest
start (then the newest rule) wins.
Without any, the defaults below apply. The rates used are copied onto each attribution.
"""

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import or_, select

from app.affiliate.models import CommissionRule, PlatformSetting
from app.catalog import service as catalog
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


def _rank(rule: CommissionRule, depth: int) -> tuple:
    target = 2 if rule.product_id is not None else 1 if rule.category_id is not None else 0
    return KIND_RANK[rule.kind], target, -depth, rule.starts_at, rule.id


def _depth(rule: CommissionRule, product_id: int, lineage: list[int]) -> int | None:
    """How far up the product's category lineage the rule's target is (0: the product or its own category),
    or None when the rule does not apply to the product."""
    if rule.kind == "product":
        return 0 if rule.product_id == product_id else None
    if rule.kind == "category":
        return lineage.index(rule.category_id) if rule.category_id in lineage else None
    if rule.product_id is not None and rule.product_id != product_id:
        return None
    if rule.category_id is None:
        return 0
    return lineage.index(rule.category_id) if rule.category_id in lineage else None


class RuleBook:
    """The rules in force during [start, end], loaded once and applied to many products (batch ingestion).

    A rule aimed at a category applies to its sub-categories too; the nearest category wins. The
    rates of a (product, category) are resolved once per stretch of time in which the same rules are
    in force, so a batch resolves each distinct product once.
    """

    def __init__(self, start: datetime, end: datetime | None = None):
        end = end or start
        self.rules = list(
            db.session.scalars(
                select(CommissionRule).where(
                    CommissionRule.starts_at <= end,
                    or_(CommissionRule.ends_at.is_(None), CommissionRule.ends_at > start),
                )
            )
        )
        self.default_at = start
        # Instants where the set of rules in force changes: between two of them the answer is constant.
        self._boundaries = sorted({r.starts_at for r in self.rules} | {r.ends_at for r in self.rules if r.ends_at})
        self._lineages: dict[int, list[int]] = {}
        self._resolved: dict[tuple, Rates] = {}

    def in_force(self, at: datetime) -> list[CommissionRule]:
        return [r for r in self.rules if r.starts_at <= at and (r.ends_at is None or r.ends_at > at)]

    def _lineage(self, category_id: int | None) -> list[int]:
        if category_id is None:
            return []
        if category_id not in self._lineages:
            if any(r.category_id is not None for r in self.rules):
                self._lineages.update(catalog.category_lineages(category_ids=[category_id]))
            else:
                self._lineages[category_id] = [category_id]
        return self._lineages[category_id]

    def rates(self, *, product_id: int, category_id: int | None, at: datetime | None = None) -> Rates:
        at = at or self.default_at
        memo = (product_id, category_id, bisect_right(self._boundaries, at))
        found = self._resolved.get(memo)
        if found is None:
            found = self._resolved[memo] = self._resolve(product_id, category_id, at)
        return found

    def _resolve(self, product_id: int, category_id: int | None, at: datetime) -> Rates:
        lineage = self._lineage(category_id)
        matching = []
        for rule in self.in_force(at):
            depth = _depth(rule, product_id, lineage)
            if depth is not None:
                matching.append((_rank(rule, depth), rule))
        if not matching:
            return Rates(rule_id=None, **DEFAULT_RATES)
        best = max(matching, key=lambda pair: pair[0])[1]
        return Rates(
            rule_id=best.id,
            level1_bp=best.level1_bp,
            level2_bp=best.level2_bp,
            host_bp=best.host_bp,
            content_bp=best.content_bp,
        )


def rates_for(*, product_id: int, category_id: int | None, at: datetime | None = None) -> Rates:
    """The rates that apply to one product at `at` (now by default)."""
    return RuleBook(at or now_utc()).rates(product_id=product_id, category_id=category_id)


def setting(name: str, default):
    """A platform setting's value, or `default` when never set."""
    row = db.session.get(PlatformSetting, name)
    return default if row is None else row.value.get("value", default)


def level2_enabled() -> bool:
    """Whether level-2 commission is paid (operators can switch it off platform-wide)."""
    return bool(setting(LEVEL2_SETTING, current_app.config["LEVEL2_ENABLED_DEFAULT"]))
