"""Local-calendar arithmetic in America/Santiago for the read model.

Chile moves its clocks at local midnight, so "midnight" of some dates does not exist (2026-09-06 starts at
01:00) and some days last 25 hours (2026-04-04). Everything here goes through UTC instants to stay correct.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SANTIAGO = ZoneInfo("America/Santiago")
TIMEZONE_NAME = "America/Santiago"


def local_midnight_utc(local_date: date) -> datetime:
    """The UTC instant at which `local_date` begins in Santiago.

    A non-existent 00:00 (spring-forward at midnight) resolves, via fold=0, to the offset in force before the
    jump; converting that to UTC lands exactly on the first real instant of the day (01:00 local).
    """
    return datetime.combine(local_date, time(0), tzinfo=SANTIAGO).astimezone(UTC)


def to_local_iso(instant: datetime) -> str:
    """ISO 8601 text of an instant with the Santiago offset in force at that instant."""
    return instant.astimezone(SANTIAGO).isoformat()


def local_today(now: datetime | None = None) -> date:
    """Today's date in Santiago."""
    return (now or datetime.now(UTC)).astimezone(SANTIAGO).date()


def as_utc(instant: datetime) -> datetime:
    """Normalise an aware datetime (DuckDB returns the session zone) to UTC."""
    return instant.astimezone(UTC)


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """Same day-of-month `months` later (or earlier), clamped to the month's last day."""
    month_index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(month_index, 12)
    month += 1
    next_month_first = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month_first - timedelta(days=1)).day
    return date(year, month, min(day.day, last_day))


def date_range(start: date, stop: date):
    """Local dates in [start, stop)."""
    current = start
    while current < stop:
        yield current
        current += timedelta(days=1)
