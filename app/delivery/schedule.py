"""Schedules in each group's local time: once at a wall time, daily or weekly at a time, or cron, with an end.

A schedule is stored as local wall times; each time zone among a post's groups gets its own occurrences,
so "08:00 daily" is 08:00 in Shanghai for Shanghai groups and 08:00 in London for London groups. DST is
APScheduler's (a wall time that does not exist that day is skipped; an ambiguous one fires once).
"""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from app.core.errors import Invalid

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CRON_DOW = {"0": "sun", "1": "mon", "2": "tue", "3": "wed", "4": "thu", "5": "fri", "6": "sat", "7": "sun"}
SLOT_FORMAT = "%Y-%m-%dT%H:%M"


def _invalid(message: str, field: str) -> Invalid:
    return Invalid(message, code="invalid_schedule", errors={"schedule": {field: [message]}})


def _cron_fields(expr: str) -> dict[str, str]:
    """Standard 5-field cron (day of week 0 or 7 = Sunday), mapped onto APScheduler's fields."""
    parts = expr.split()
    if len(parts) != 5:
        raise _invalid("A cron expression has 5 fields: minute hour day month day-of-week.", "cron")
    dow = "".join(CRON_DOW.get(ch, ch) if ch.isdigit() else ch for ch in _split_keep(parts[4]))
    return {"minute": parts[0], "hour": parts[1], "day": parts[2], "month": parts[3], "day_of_week": dow}


def _split_keep(field: str) -> list[str]:
    """Split a day-of-week field into digit runs and separators, so only whole numbers are renamed."""
    out, run = [], ""
    for ch in field:
        if ch.isdigit():
            run += ch
            continue
        if run:
            out.append(run)
            run = ""
        out.append(ch)
    if run:
        out.append(run)
    return out


def _local(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _invalid("Use a local date-time like 2026-11-23T08:00.", field) from None
    if parsed.tzinfo is not None:
        raise _invalid("Give a local wall time without a zone: each group's own zone applies.", field)
    return parsed.replace(second=0, microsecond=0)


def _hour_minute(value: str) -> tuple[int, int]:
    try:
        parsed = datetime.strptime(value, "%H:%M")
    except (TypeError, ValueError):
        raise _invalid("Use a local time like 08:00.", "time") from None
    return parsed.hour, parsed.minute


def trigger(schedule: dict, tz: str) -> BaseTrigger:
    """The APScheduler trigger for `schedule` in zone `tz` (validates the schedule)."""
    zone = ZoneInfo(tz)
    kind = schedule.get("kind")
    until = _local(schedule["until"], "until").replace(tzinfo=zone) if schedule.get("until") else None
    if kind == "once":
        if not schedule.get("at"):
            raise _invalid("A one-off schedule needs 'at'.", "at")
        return DateTrigger(run_date=_local(schedule["at"], "at").replace(tzinfo=zone))
    if kind == "daily":
        hour, minute = _hour_minute(schedule.get("time"))
        return CronTrigger(hour=hour, minute=minute, timezone=zone, end_date=until)
    if kind == "weekly":
        hour, minute = _hour_minute(schedule.get("time"))
        days = schedule.get("weekdays") or []
        if not days or any(not isinstance(d, int) or not 1 <= d <= 7 for d in days):
            raise _invalid("Weekly schedules need weekdays 1 (Monday) to 7 (Sunday).", "weekdays")
        return CronTrigger(
            day_of_week=",".join(WEEKDAY_NAMES[d - 1] for d in sorted(set(days))),
            hour=hour,
            minute=minute,
            timezone=zone,
            end_date=until,
        )
    if kind == "cron":
        try:
            return CronTrigger(**_cron_fields(schedule.get("cron") or ""), timezone=zone, end_date=until)
        except Exception as exc:  # APScheduler's parser raises several types for malformed fields; all mean 422
            raise _invalid(f"The cron expression is not valid: {exc}.", "cron") from exc
    raise _invalid("kind must be once, daily, weekly or cron.", "kind")


def next_fire(schedule: dict, tz: str, *, after: datetime, not_before: datetime) -> datetime | None:
    """The first firing strictly after `after` and at or after `not_before` (aware), or None when the schedule ended."""
    start = max(after + timedelta(microseconds=1), not_before)
    fire = trigger(schedule, tz).get_next_fire_time(None, start)
    if fire is None or fire < start:
        return None
    return fire


def slot_of(fire: datetime, tz: str) -> str:
    """The local wall time of a firing: the occurrence's identity within its zone."""
    return fire.astimezone(ZoneInfo(tz)).strftime(SLOT_FORMAT)


def local_days(schedule: dict, tz: str, *, start: datetime, horizon: timedelta) -> list[date]:
    """The local dates of the firings from `start` over `horizon`; stops at the first date that repeats."""
    days, fire, end = [], start - timedelta(microseconds=1), start + horizon
    zone = ZoneInfo(tz)
    while True:
        fire = next_fire(schedule, tz, after=fire, not_before=start)
        if fire is None or fire > end:
            return days
        day = fire.astimezone(zone).date()
        days.append(day)
        if len(days) > 1 and days[-2] == day:
            return days
