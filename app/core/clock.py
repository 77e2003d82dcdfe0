"""The one clock: every timestamp in the system comes from here, timezone-aware and in UTC."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# The instants accepted from outside (webhooks, statements, operator input): wide enough for any real event,
# and far enough from datetime's limits that turning one into UTC or stepping a window back never overflows.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# The zone a group or a person has when nothing else says (China keeps one zone, without daylight saving).
DEFAULT_ZONE_NAME = "Asia/Shanghai"
DEFAULT_ZONE = ZoneInfo(DEFAULT_ZONE_NAME)

_frozen: datetime | None = None


def now_utc() -> datetime:
    """Return the current time as an aware UTC datetime (or the frozen time in tests)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Pin the clock to `at` (tests only); `None` releases it."""
    global _frozen  # noqa: PLW0603 - the one clock is module state by design
    if at is not None and at.tzinfo is None:
        raise ValueError("the clock only holds aware datetimes")
    _frozen = at.astimezone(UTC) if at is not None else None
