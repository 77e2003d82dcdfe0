"""Pricing: each kind, scope and cap at the edges, and hypothesis over the invariants."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.coupons.pricing import CouponRule, Line, allocate, quote


def line(price: int, quantity: int = 1, product: int = 1, category: int | None = 10) -> Line:
    return Line(product_id=product, category_id=category, unit_price_fen=price, quantity=quantity)


@pytest.mark.parametrize(
    "amount, expected_discount", [(1, 0), (2, 1), (499, 498), (500, 499), (501, 500), (10000, 500)]
)
def test_fixed_never_exceeds_the_eligible_amount_and_leaves_a_fen(amount, expected_discount):
    priced = quote([line(amount)], CouponRule(kind="fixed", amount_off_fen=500))
    assert priced.discount_fen == expected_discount and priced.payable_fen == amount - expected_discount


def test_fixed_on_a_mixed_order_can_take_all_of_the_eligible_part():
    rule = CouponRule(kind="fixed", amount_off_fen=500, scope="products", product_ids=frozenset({1}))
    priced = quote([line(300, product=1), line(1000, product=2)], rule)
    assert (priced.eligible_fen, priced.discount_fen, priced.payable_fen, priced.line_discounts_fen) == (
        300,
        300,
        1000,
        (300, 0),
    )


@pytest.mark.parametrize("amount, applies, discount", [(9999, False, 0), (10000, True, 2000), (10001, True, 2000)])
def test_threshold_edges(amount, applies, discount):
    priced = quote([line(amount)], CouponRule(kind="threshold", threshold_fen=10000, amount_off_fen=2000))
    assert (priced.applies, priced.discount_fen) == (applies, discount)
    if not applies:
        assert priced.reason == "below_threshold" and priced.payable_fen == amount


def test_threshold_counts_only_eligible_lines():
    rule = CouponRule(
        kind="threshold", threshold_fen=10000, amount_off_fen=2000, scope="categories", category_ids=frozenset({10})
    )
    below = quote([line(6000, category=10), line(6000, category=20, product=2)], rule)
    assert below.reason == "below_threshold" and below.eligible_fen == 6000
    reached = quote([line(5000, 2, category=10), line(6000, category=20, product=2)], rule)
    assert reached.discount_fen == 2000 and reached.line_discounts_fen == (2000, 0)


@pytest.mark.parametrize(
    "amount, discount",
    [(1, 0), (4, 0), (5, 1), (9, 1), (10, 2), (14999, 2999), (15000, 3000), (15005, 3000), (999999, 3000)],
)
def test_percent_floors_and_caps(amount, discount):
    priced = quote([line(amount)], CouponRule(kind="percent", percent_off_bp=2000, cap_fen=3000))
    assert priced.discount_fen == discount


def test_scope_and_exclusions():
    rule = CouponRule(
        kind="fixed",
        amount_off_fen=100,
        scope="all",
        excluded_category_ids=frozenset({20}),
        excluded_product_ids=frozenset({3}),
    )
    assert quote([line(1000, product=1, category=20)], rule).reason == "out_of_scope"
    assert quote([line(1000, product=3, category=10)], rule).reason == "out_of_scope"
    assert quote([line(1000, product=2, category=None)], rule).discount_fen == 100
    categories = CouponRule(
        kind="fixed",
        amount_off_fen=100,
        scope="categories",
        category_ids=frozenset({10}),
        excluded_product_ids=frozenset({5}),
    )
    assert quote([line(1000, product=5, category=10)], categories).reason == "out_of_scope"
    assert quote([line(1000, product=6, category=None)], categories).reason == "out_of_scope"
    assert quote([line(1000, product=6, category=10)], categories).applies


def test_no_coupon():
    priced = quote([line(700, 3)], None)
    assert (priced.subtotal_fen, priced.discount_fen, priced.payable_fen) == (2100, 0, 2100)


def test_allocation_is_proportional_and_exact():
    assert allocate(100, [100, 200, 700]) == [10, 20, 70]
    assert allocate(3, [1, 1, 1]) == [1, 1, 1]
    assert allocate(2, [3, 3, 3]) == [1, 1, 0]
    assert allocate(0, [5]) == [0]


rules = st.builds(
    CouponRule,
    kind=st.sampled_from(["fixed", "threshold", "percent"]),
    amount_off_fen=st.integers(1, 100_000),
    threshold_fen=st.integers(0, 200_000),
    percent_off_bp=st.integers(1, 9999),
    cap_fen=st.integers(1, 100_000),
    scope=st.sampled_from(["all", "categories", "products"]),
    category_ids=st.frozensets(st.integers(1, 4), max_size=3),
    product_ids=st.frozensets(st.integers(1, 6), max_size=4),
    excluded_category_ids=st.frozensets(st.integers(1, 4), max_size=2),
    excluded_product_ids=st.frozensets(st.integers(1, 6), max_size=2),
)
lines = st.lists(
    st.builds(
        Line,
        product_id=st.integers(1, 6),
        category_id=st.one_of(st.none(), st.integers(1, 4)),
        unit_price_fen=st.integers(0, 50_000),
        quantity=st.integers(1, 5),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(rules, lines)
def test_pricing_invariants(rule, order):
    priced = quote(order, rule)
    eligible = sum(
        line.amount_fen for line in order if rule.covers(product_id=line.product_id, category_id=line.category_id)
    )
    assert priced.subtotal_fen == sum(line.amount_fen for line in order)
    assert priced.eligible_fen in (0, eligible)
    assert 0 <= priced.discount_fen <= eligible
    assert priced.payable_fen == priced.subtotal_fen - priced.discount_fen >= 0
    if priced.subtotal_fen >= 1:
        assert priced.payable_fen >= 1
    if rule.kind == "percent":
        assert priced.discount_fen <= rule.cap_fen
        assert priced.discount_fen <= eligible * rule.percent_off_bp // 10000
    else:
        assert priced.discount_fen <= rule.amount_off_fen
    if eligible < rule.threshold_fen:
        assert priced.discount_fen == 0
    assert sum(priced.line_discounts_fen) == priced.discount_fen
    for line, share in zip(order, priced.line_discounts_fen):
        assert 0 <= share <= line.amount_fen
        if not rule.covers(product_id=line.product_id, category_id=line.category_id):
            assert share == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_allocation_invariants(total, amounts):
    total = min(total, sum(amounts))
    shares = allocate(total, amounts)
    assert sum(shares) == (total if sum(amounts) else 0)
    assert all(0 <= s <= a for s, a in zip(shares, amounts))
