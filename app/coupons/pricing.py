"""Coupon pricing: pure arithmetic on integer fen, shared by checkout, "best coupon" and the tests.

Rules (documented for product and support):
- Only lines inside the coupon's scope are *eligible*; the minimum spend (`threshold_fen`) is measured on
  the eligible amount, never on the whole order.
- fixed: `amount_off_fen` off; threshold (满减): `amount_off_fen` off once the eligible amount reaches
  `threshold_fen`; percent: `floor(eligible × percent_off_bp / 10000)`, never more than `cap_fen`.
- A discount never exceeds the eligible amount, and the payable amount never drops below 1 fen
  (WeChat Pay cannot charge 0, so a coupon can make an order cost 0.01 yuan at the least).
- The discount is split over the eligible lines in proportion to their amounts (floor), the remainder
  going one fen at a time to the largest lines, so every line's paid amount is known for commission.
"""

from dataclasses import dataclass, field

from app.core.money import BP_DENOMINATOR

KINDS = ("fixed", "threshold", "percent")
SCOPES = ("all", "categories", "products")
MIN_PAYABLE_FEN = 1


@dataclass(frozen=True)
class CouponRule:
    """What a coupon does, independent of storage."""

    kind: str
    amount_off_fen: int = 0
    threshold_fen: int = 0
    percent_off_bp: int = 0
    cap_fen: int = 0
    scope: str = "all"
    category_ids: frozenset[int] = field(default_factory=frozenset)
    product_ids: frozenset[int] = field(default_factory=frozenset)
    excluded_category_ids: frozenset[int] = field(default_factory=frozenset)
    excluded_product_ids: frozenset[int] = field(default_factory=frozenset)

    def covers(self, *, product_id: int, category_id: int | None) -> bool:
        """True if a product falls inside the scope and outside every exclusion."""
        if product_id in self.excluded_product_ids or (
            category_id is not None and category_id in self.excluded_category_ids
        ):
            return False
        if self.scope == "all":
            return True
        if self.scope == "categories":
            return category_id is not None and category_id in self.category_ids
        return product_id in self.product_ids


@dataclass(frozen=True)
class Line:
    product_id: int
    category_id: int | None
    unit_price_fen: int
    quantity: int

    @property
    def amount_fen(self) -> int:
        return self.unit_price_fen * self.quantity


@dataclass(frozen=True)
class Quote:
    subtotal_fen: int
    eligible_fen: int
    discount_fen: int
    payable_fen: int
    line_discounts_fen: tuple[int, ...]
    applies: bool
    reason: str | None  # why the coupon does not apply: "out_of_scope" or "below_threshold"


def discount_for(rule: CouponRule, eligible_fen: int) -> int:
    """The raw discount a rule gives on an eligible amount (before the order-level floor)."""
    if eligible_fen <= 0 or eligible_fen < rule.threshold_fen:
        return 0
    if rule.kind == "percent":
        raw = eligible_fen * rule.percent_off_bp // BP_DENOMINATOR
        return min(raw, rule.cap_fen) if rule.cap_fen > 0 else raw
    return min(rule.amount_off_fen, eligible_fen)


def allocate(total_fen: int, amounts: list[int]) -> list[int]:
    """Split `total_fen` over `amounts` in proportion (floor), remainder to the largest; never above an amount."""
    base = sum(amounts)
    if total_fen <= 0 or base <= 0:
        return [0] * len(amounts)
    shares = [total_fen * a // base for a in amounts]
    remainder = total_fen - sum(shares)
    # Each floor loses less than one fen, so the remainder is smaller than the number of lines that lost
    # something, and each of those has room for one more fen.
    for i in sorted(range(len(amounts)), key=lambda i: (-amounts[i], i))[:remainder]:
        shares[i] += 1
    return shares


def quote(lines: list[Line], rule: CouponRule | None) -> Quote:
    """Price lines with an optional coupon."""
    subtotal = sum(line.amount_fen for line in lines)
    if rule is None:
        return Quote(subtotal, 0, 0, subtotal, tuple(0 for _ in lines), False, None)
    eligible_mask = [rule.covers(product_id=line.product_id, category_id=line.category_id) for line in lines]
    eligible_amounts = [line.amount_fen if ok else 0 for line, ok in zip(lines, eligible_mask)]
    eligible = sum(eligible_amounts)
    if eligible == 0:
        return Quote(subtotal, 0, 0, subtotal, tuple(0 for _ in lines), False, "out_of_scope")
    if eligible < rule.threshold_fen:
        return Quote(subtotal, eligible, 0, subtotal, tuple(0 for _ in lines), False, "below_threshold")
    discount = min(discount_for(rule, eligible), max(0, subtotal - MIN_PAYABLE_FEN))
    shares = allocate(discount, eligible_amounts)
    return Quote(subtotal, eligible, discount, subtotal - discount, tuple(shares), discount > 0, None)
