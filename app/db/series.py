"""Queries on series, always scoped to a tenant: another tenant's series do not exist."""

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import reading_counts
from app.db.tables import Reading, Series
from app.errors import Conflict, NotFound


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
