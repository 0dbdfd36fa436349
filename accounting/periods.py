"""Reporting periods: which periods may be reported, and by when.

Monthly data is due by a day of the following month (default the 15th); an annual-only line
(``YYYY``) is due by 31 March of the following year, the national deadline for reporting the
previous year's emissions. A period later than the current month has not happened yet.

>>> deadline("2024-01", day=15).isoformat()
'2024-02-15'
>>> deadline("2024-12", day=15).isoformat()
'2025-01-15'
>>> deadline("2024", day=15).isoformat()
'2025-03-31'
"""

from __future__ import annotations

from datetime import date


def month_of(period: str) -> str:
    """The month partition of a period: itself, or December for an annual period."""
    return period if len(period) == 7 else f"{period}-12"


def deadline(period: str, *, day: int) -> date:
    """The last day on which an enterprise may still report ``period``."""
    year = int(period[:4])
    if len(period) == 4:
        return date(year + 1, 3, 31)
    month = int(period[5:7])
    return date(year + 1, 1, day) if month == 12 else date(year, month + 1, day)


def period_problem(period: str, *, today: date, first_period: str) -> str | None:
    """Why ``period`` cannot be reported at all (None when it can): before the zone's first period, or in the future."""
    if month_of(period) < first_period:
        return f"a period from {first_period} on (the zone's first reporting period)"
    current = f"{today.year:04d}-{today.month:02d}"
    if (len(period) == 7 and period > current) or (len(period) == 4 and int(period) > today.year):
        return f"a period that has begun (today is {today.isoformat()})"
    return None


def is_late(period: str, *, today: date, day: int) -> bool:
    """True when ``period``'s reporting deadline has passed."""
    return today > deadline(period, day=day)
