from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.clock import now_utc
from app.core.db import UTCDateTime
from app.core.money import share_of, yuan


@given(base=st.integers(min_value=0, max_value=10**12), rate=st.integers(min_value=0, max_value=10_000))
def test_a_share_is_the_floor_and_never_exceeds_the_base(base, rate):
    share = share_of(base, rate)
    assert share * 10_000 <= base * rate < (share + 1) * 10_000
    assert 0 <= share <= base


@given(
    base=st.integers(min_value=0, max_value=10**9),
    rates=st.lists(st.integers(min_value=0, max_value=2_500), min_size=1, max_size=4),
)
def test_floored_shares_leave_a_non_negative_remainder(base, rates):
    assert sum(share_of(base, r) for r in rates) <= share_of(base, sum(rates)) <= base


def test_share_edges():
    assert share_of(1999, 500) == 99  # 99.95 fen → 99, the platform keeps the 0.95
    assert share_of(0, 500) == 0
    with pytest.raises(ValueError):
        share_of(-1, 500)
    assert yuan(12345) == "123.45" and yuan(-5) == "-0.05"


def test_the_clock_is_aware_utc():
    assert now_utc().tzinfo is not None and now_utc().utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused_and_zones_normalised():
    column = UTCDateTime()

    class Dialect:
        name = "postgresql"

    with pytest.raises(ValueError):
        column.process_bind_param(datetime(2026, 1, 1), Dialect())
    shanghai = timezone(timedelta(hours=8))
    stored = column.process_bind_param(datetime(2026, 1, 1, 8, tzinfo=shanghai), Dialect())
    assert stored == datetime(2026, 1, 1, tzinfo=UTC)
