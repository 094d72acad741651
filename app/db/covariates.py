"""A series' covariates: its links to other series of its tenant, and their readings as arrays.

A link names another series (temperature, ...) whose readings a model of the series reads:
past ones with each step, and, for a `known_future` covariate, the readings past the series'
last reading as the covariate's forecast over the horizon.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import readings_versions
from app.db.readings import fetch_readings, lock_series
from app.db.tables import (
    ForecastModel,
    ModelSeries,
    Series,
    SeriesCovariate,
    SeriesState,
    Stream,
)
from app.errors import Conflict, Invalid, NotFound, field_error

# First key of the advisory lock on a tenant's links: "cv" in ASCII (readings use "sc").
LINKS_LOCK_NAMESPACE = 0x6376


@dataclass(frozen=True)
class CovariateLink:
    """A link as a client sends it: the covariate series, its name, and whether its future is
    known (a weather forecast) or only its past (an upstream meter)."""

    series_id: int
    name: str
    known_future: bool


def links_of(*, session: Session, series_id: int) -> list[SeriesCovariate]:
    """The series' covariate links, by name."""
    return list(session.scalars(select(SeriesCovariate).where(
        SeriesCovariate.series_id == series_id).order_by(SeriesCovariate.name)))


@dataclass(frozen=True)
class ReadLink:
    """A link as a model reads it: with its covariate series' frequency and readings version."""

    name: str
    covariate_series_id: int
    known_future: bool
    freq: str
    readings_version: int


def read_links(*, session: Session, series_id: int) -> dict[str, ReadLink]:
    """The series' links by name, each with what a read of its covariate needs, in one
    statement: a post reads it anyway, so the versions that tell whether the covariates kept in
    memory are current (`app.covariate_cache`) come with it."""
    connection = session.connection()
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    rows = connection.exec_driver_sql(
        "SELECT l.name, l.covariate_series_id, l.known_future, s.freq, s.readings_version "
        "FROM series_covariates l JOIN series s ON s.id = l.covariate_series_id "
        f"WHERE l.series_id = {mark}", (series_id,)).all()
    return {row[0]: ReadLink(name=row[0], covariate_series_id=row[1],
                             known_future=bool(row[2]), freq=row[3], readings_version=row[4])
            for row in rows}


def links_of_many(*, session: Session, series_ids: Sequence[int]
                  ) -> dict[int, list[SeriesCovariate]]:
    """The covariate links of several series at once (a page of series), by name."""
    found: dict[int, list[SeriesCovariate]] = {sid: [] for sid in series_ids}
    if series_ids:
        for link in session.scalars(select(SeriesCovariate).where(
                SeriesCovariate.series_id.in_(series_ids)).order_by(SeriesCovariate.name)):
            found[link.series_id].append(link)
    return found


def readers_of(*, session: Session, covariate_series_id: int) -> list[int]:
    """Ids of the series that read this one as a covariate."""
    return list(session.scalars(select(SeriesCovariate.series_id).where(
        SeriesCovariate.covariate_series_id == covariate_series_id).distinct()))


def replace_links(*, session: Session, series: Series, links: Sequence[CovariateLink]) -> None:
    """Make `links` the series' covariates, replacing those it had.

    Refuses (nothing changed) a covariate series the tenant does not have (another tenant's
    looks the same), the series itself, a link that closes a cycle (A reads B, B reads A) and
    two links of one name; each error names the link's field and value.
    """
    lock_links(session=session, tenant_id=series.tenant_id)
    names = [link.name for link in links]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise Invalid(f"Covariate names must differ; repeated: {repeated}",
                      errors=[field_error("covariates", names, f"{repeated[0]!r} appears twice")])
    for position, link in enumerate(links):
        field = f"covariates[{position}].series_id"
        if link.series_id == series.id:
            raise Invalid(f"A series cannot be its own covariate (series {series.id})",
                          errors=[field_error(field, link.series_id, "the series itself")])
        covariate = session.scalar(select(Series).where(
            Series.id == link.series_id, Series.tenant_id == series.tenant_id))
        if covariate is None:
            raise NotFound(f"No series with id {link.series_id}",
                           errors=[field_error(field, link.series_id, "no such series")])
        if series.id in _reachable(session, [link.series_id]):
            raise Invalid(
                f"Series {link.series_id} already reads series {series.id} as a covariate, "
                "directly or through others: the link would close a cycle",
                errors=[field_error(field, link.series_id, "closes a cycle of covariates")])
    session.execute(delete(SeriesCovariate).where(SeriesCovariate.series_id == series.id))
    session.add_all(SeriesCovariate(series_id=series.id, name=link.name,
                                    covariate_series_id=link.series_id,
                                    known_future=link.known_future) for link in links)
    session.flush()
    linked = sorted({link.series_id for link in links})
    lock_writers(session=session, series_ids=linked)
    readings_versions.note_linked(session.connection(), linked)


def lock_writers(*, session: Session, series_ids: Sequence[int]) -> None:
    """Wait for whatever writes these series' readings now, and keep new writers out until the
    transaction ends: a writer that began before the link was committed found no link, gave its
    readings no new version, and would otherwise commit them after the version read with the link
    (PostgreSQL; SQLite's write lock, which the caller holds, serialises every writer already).

    Streams first, then the series' advisory locks: the order a stream's post takes them in.
    """
    if not series_ids or session.connection().dialect.name != "postgresql":
        return
    session.execute(select(Stream.id).where(Stream.series_id.in_(series_ids))
                    .order_by(Stream.id).with_for_update())
    for series_id in series_ids:
        lock_series(session=session, series_id=series_id)


def lock_links(*, session: Session, tenant_id: int) -> None:
    """Serialise changes to a tenant's covariate links until the transaction ends.

    Two requests linking A to B and B to A would each find no cycle in what the other has not
    committed yet. PostgreSQL takes a transaction-scoped advisory lock per tenant; on SQLite the
    caller's write lock already serialises every writer.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, %s)",
                                   (LINKS_LOCK_NAMESPACE, tenant_id))


def _reachable(session: Session, start: Iterable[int]) -> set[int]:
    """Every series read, directly or not, as a covariate by the series in `start`."""
    seen: set[int] = set()
    frontier = set(start)
    while frontier:
        seen |= frontier
        frontier = set(session.scalars(select(SeriesCovariate.covariate_series_id).where(
            SeriesCovariate.series_id.in_(frontier)))) - seen
    return seen


def forget_warmed(*, session: Session, series_id: int) -> None:
    """Drop the series' warmed forecast states: a model that reads its calendar or covariates
    warmed them over what these were (the next forecast warms again)."""
    session.execute(delete(SeriesState).where(SeriesState.series_id == series_id))


def check_not_read(*, session: Session, series: Series) -> None:
    """Conflict if other series read this one as a covariate (deleting it would break them)."""
    readers = readers_of(session=session, covariate_series_id=series.id)
    if readers:
        raise Conflict(f"Series {series.id} is a covariate of series {readers}; unlink it "
                       "from them first (PATCH /v1/series/{id} with their new `covariates`)",
                       errors=[field_error("series_id", series.id,
                                           f"read as a covariate by series {readers}")])


def covariate_readings(*, session: Session, link: SeriesCovariate | ReadLink,
                       start_s: int | None = None, end_s: int | None = None,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The covariate series' readings in [start_s, end_s], as Unix seconds and values (NaN for
    a missing one), on the covariate's own grid; aligning them is the model side's job."""
    return fetch_readings(session=session, series_id=link.covariate_series_id, start_s=start_s,
                          end_s=end_s)


def ready_models(*, session: Session, series_id: int) -> list[ForecastModel]:
    """The series' ready models, among which `fallback=no_covariates` picks one reading none."""
    return list(session.scalars(
        select(ForecastModel).join(ModelSeries, ModelSeries.model_id == ForecastModel.id)
        .where(ModelSeries.series_id == series_id, ForecastModel.status == "ready")))
