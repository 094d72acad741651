"""Day types from a country's public holidays: known into any future, offline.

Electricity demand follows the kind of day more than the date: a working day, a Saturday, a
Sunday, a public holiday, or a bridge day between a holiday and a weekend (and the days between
Christmas and New Year, when much of industry stops). The holidays come from the `holidays`
package, which ships its rules and needs no network; a series may add its own special days
(a local festival, a plant's shutdown), which count as holidays.

The contract with the API (cov-api): a series stores `holidays` (a code `check_holidays_code`
accepts) and `special_days`; it hands them to training and serving as a `CalendarSpec`, and
`day_types(dates, calendar)` gives the type of each local date. Codes are a country with an
optional subdivision, ISO style: "US", "GB-ENG", "AU-VIC", "DE-BY".
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import numpy as np
import pandas as pd


class DayType(IntEnum):
    """The kinds of day the seasonal profile and the network tell apart."""

    WORKING = 0
    SATURDAY = 1
    SUNDAY = 2
    HOLIDAY = 3
    BRIDGE = 4


N_DAY_TYPES = len(DayType)
SATURDAY_WEEKDAY = 5
SUNDAY_WEEKDAY = 6
# Christmas week: 24-31 December are bridge days where 25 December is a public holiday.
CHRISTMAS_BRIDGE_DAYS = range(24, 32)


@dataclass(frozen=True)
class SpecialDay:
    """A date the series' owner marks as a holiday, with a label for people."""

    date: datetime.date
    label: str


@dataclass(frozen=True)
class CalendarSpec:
    """A series' calendar: a `holidays` code (or None) and extra special days."""

    holidays: str | None = None
    special_days: tuple[SpecialDay, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "holidays": self.holidays,
            "special_days": [{"date": d.date.isoformat(), "label": d.label} for d in self.special_days],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CalendarSpec:
        days = data.get("special_days") or []
        assert isinstance(days, list)
        return cls(
            holidays=data.get("holidays"),  # type: ignore[arg-type]
            special_days=tuple(
                SpecialDay(datetime.date.fromisoformat(d["date"]), str(d["label"])) for d in days
            ),
        )


def _split_code(code: str) -> tuple[str, str | None]:
    country, _, subdivision = code.partition("-")
    return country, subdivision or None


def check_holidays_code(code: str) -> str:
    """The code itself if the `holidays` package knows it: a country ("US"), optionally with a
    subdivision ("GB-ENG", "AU-VIC").

    Raises:
        ValueError: the code names no supported country or subdivision; the message names the
            code and what is expected.
    """
    import holidays

    supported = holidays.list_supported_countries()
    if not isinstance(code, str):
        raise ValueError(f"Received holidays code {code!r}, expected a string such as 'US' or 'GB-ENG'.")
    country, dash, subdivision_or_empty = code.partition("-")
    subdivision = subdivision_or_empty if dash else None
    if country not in supported:
        raise ValueError(
            f"Received holidays code {code!r}, expected an ISO 3166 country code the `holidays` "
            "package supports, optionally with a subdivision: for example 'US', 'GB-ENG', 'AU-VIC'."
        )
    if subdivision is not None and subdivision not in supported[country]:  # "GB-" too
        known = ", ".join(supported[country][:12]) or "none"
        raise ValueError(
            f"Received holidays code {code!r}, expected a subdivision of {country} the `holidays` "
            f"package supports ({known}{', ...' if len(supported[country]) > 12 else ''})."
        )
    return code


@lru_cache(maxsize=256)
def _holidays_of_year(code: str, year: int) -> frozenset[datetime.date]:
    import holidays

    country, subdivision = _split_code(code)
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


def holiday_dates(calendar: CalendarSpec, years: Iterable[int]) -> set[datetime.date]:
    """Public holidays of `calendar.holidays` in `years`, plus its special days."""
    out: set[datetime.date] = {day.date for day in calendar.special_days}
    if calendar.holidays is not None:
        for year in years:
            out |= _holidays_of_year(calendar.holidays, int(year))
    return out


def day_types(
    dates: Sequence[datetime.date] | np.ndarray | pd.DatetimeIndex, calendar: CalendarSpec | None
) -> np.ndarray:
    """The `DayType` of each date (int8 array), read on the series' local dates.

    Without a calendar only weekdays and weekends are told apart. With one: holidays (public and
    special) come first, then Saturday and Sunday, then bridge days, which are working days
    that lie between a holiday and a weekend (the Friday after Thanksgiving) or in 24-31
    December of a year whose 25 December is a holiday.
    """
    days = np.asarray(pd.DatetimeIndex(dates).normalize().asi8 // (86_400 * 10**9), dtype=np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    out = np.full(len(days), DayType.WORKING, dtype=np.int8)
    out[weekday == SATURDAY_WEEKDAY] = DayType.SATURDAY
    out[weekday == SUNDAY_WEEKDAY] = DayType.SUNDAY
    if calendar is None or len(days) == 0:
        return out
    unique = np.unique(days)
    as_dates = pd.to_datetime(unique, unit="D").date
    years = {d.year for d in as_dates} | {min(as_dates).year - 1, max(as_dates).year + 1}
    holidays = holiday_dates(calendar, years)
    epoch = datetime.date(1970, 1, 1)
    holiday_days = np.array(sorted((d - epoch).days for d in holidays), dtype=np.int64)
    is_holiday = np.isin(days, holiday_days)

    def off(day: np.ndarray) -> np.ndarray:
        wd = (day + 3) % 7
        return (wd >= SATURDAY_WEEKDAY) | np.isin(day, holiday_days)

    working = ~is_holiday & (weekday < SATURDAY_WEEKDAY)
    after_holiday = np.isin(days - 1, holiday_days)
    before_holiday = np.isin(days + 1, holiday_days)
    between = (off(days - 1) & before_holiday) | (after_holiday & off(days + 1))
    christmas = np.zeros(len(days), dtype=bool)
    if holidays:
        stamps = pd.to_datetime(days, unit="D")
        in_week = (np.asarray(stamps.month) == 12) & np.isin(np.asarray(stamps.day), CHRISTMAS_BRIDGE_DAYS)
        years_with_christmas = {d.year for d in holidays if d.month == 12 and d.day == 25}
        christmas = in_week & np.isin(np.asarray(stamps.year), list(years_with_christmas))
    out[working & (between | christmas)] = DayType.BRIDGE
    out[is_holiday] = DayType.HOLIDAY
    return out
