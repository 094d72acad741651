"""Queries on series, always scoped to a tenant: another tenant's series do not exist."""

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import reading_counts
from app.db.tables import Reading, Series
from app.errors import Conflict, NotFound
from app.ml.calendar import CalendarSpec, SpecialDay

# Distinct (holidays, special days) texts whose calendar a process keeps parsed: a calendar is a
# few hundred bytes, and a tenant's series mostly share a handful.
MAX_KEPT_CALENDARS = 4096


@dataclass(frozen=True)
class SeriesTraits:
    """What a model reads of its series beside readings and covariates: its id and name (a
    global model's scales and profiles are per series), its frequency and its calendar.

    Immutable and hashable: it keys the process's profiles (`app.covariate_cache`), so a
    series whose name or calendar changed keys another entry.
    """

    id: int
    name: str
    freq: str
    calendar: CalendarSpec | None

    @classmethod
    def of(cls, series: Series) -> "SeriesTraits":
        return cls(id=series.id, name=series.name, freq=series.freq,
                   calendar=calendar_spec(series.holidays, series.special_days))


def calendar_spec(holidays: str | None,
                  special_days: Sequence[Mapping[str, str]]) -> CalendarSpec | None:
    """A series' holidays and special days (as stored), or None when it has neither."""
    if holidays is None and not special_days:
        return None
    days = tuple(SpecialDay(date=datetime.date.fromisoformat(d["date"]), label=d["label"])
                 for d in special_days)
    return CalendarSpec(holidays=holidays, special_days=days)


@lru_cache(maxsize=MAX_KEPT_CALENDARS)
def stored_calendar(holidays: str | None, special_days_json: str) -> CalendarSpec | None:
    """As `calendar_spec`, from the special days' column read as JSON text: parsed once per
    process and text, so a post that reads the series' row reads its calendar for free."""
    return calendar_spec(holidays, orjson.loads(special_days_json))


def create_series(*, session: Session, tenant_id: int, name: str, freq: str,
                  timezone: str = "UTC", unit: str | None = None,
                  description: str | None = None, holidays: str | None = None,
                  special_days: list[dict[str, str]] | None = None) -> Series:
    series = Series(tenant_id=tenant_id, name=name, freq=freq, timezone=timezone, unit=unit,
                    description=description, holidays=holidays,
                    special_days=special_days or [])
    try:
        with session.begin_nested():
            session.add(series)
    except IntegrityError:
        raise _name_taken(name) from None
    return series


def rename_series(*, session: Session, series: Series, name: str) -> None:
    try:
        with session.begin_nested():
            series.name = name
            session.flush()
    except IntegrityError:
        raise _name_taken(name) from None


def _name_taken(name: str) -> Conflict:
    return Conflict(f"A series named {name!r} already exists",
                    errors=[{"field": "name", "value": name, "message": "already taken"}])


def list_series(*, session: Session, tenant_id: int, offset: int = 0,
                limit: int = 100) -> tuple[Sequence[Series], int]:
    query = select(Series).where(Series.tenant_id == tenant_id)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Series.id).offset(offset).limit(limit)).all()
    return rows, count


def get_series(*, session: Session, tenant_id: int, series_id: int,
               for_update: bool = False) -> Series:
    """The tenant's series, or NotFound; `for_update` locks its row (PostgreSQL)."""
    query = select(Series).where(Series.id == series_id, Series.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    series = session.scalar(query)
    if series is None:
        raise NotFound(f"No series with id {series_id}")
    return series


def delete_series(*, session: Session, series: Series) -> None:
    """Delete the series and its readings; its streams and warmed states go by cascade."""
    removed = session.connection().execute(delete(Reading).where(Reading.series_id == series.id)).rowcount
    reading_counts.add_stored(session=session, tenant_id=series.tenant_id, added=-removed)
    session.delete(series)
    session.flush()


def reading_stats(*, session: Session, series_id: int) -> tuple[int, int | None, int | None]:
    """Count, first and last timestamp (Unix seconds) of a series' readings."""
    count, first, last = session.execute(
        select(func.count(), func.min(Reading.ts), func.max(Reading.ts))
        .where(Reading.series_id == series_id)
    ).one()
    return int(count), first, last
