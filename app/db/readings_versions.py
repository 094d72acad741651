"""The version of a series' readings: what a process compares to tell whether the covariate
readings it keeps (`app.covariate_cache`) are still the stored ones.

Every write of readings (an upload, a replace, a stream's reading) sets a new version on the
series it wrote, in its own transaction, if the series is read as a covariate; linking a series
as a covariate sets one too (`app.db.covariates.replace_links`), since its readings may have
changed while nothing read it. Versions are random, as the seasonal fits' are: a version never
comes back after a change, and two databases (a test's) cannot hand one process the same key.
"""

import secrets
from collections.abc import Collection

from sqlalchemy import Connection

# The series among those written that others read as a covariate: only theirs are versioned, so
# a fleet's posts to meters that nothing reads update no series row.
_READ_AS_COVARIATE = ("EXISTS (SELECT 1 FROM series_covariates c "
                      "WHERE c.covariate_series_id = series.id)")


def new_version() -> int:
    return secrets.randbits(62)


def noted_sql(written: str, mark: str) -> str:
    """An UPDATE giving a new version (the parameter `mark`) to the series among `written` (a
    subquery of series ids) read as covariates; for a statement that writes and notes at once."""
    return (f"UPDATE series SET readings_version = {mark} "
            f"WHERE id IN ({written}) AND {_READ_AS_COVARIATE}")


def note_written(connection: Connection, series_ids: Collection[int]) -> None:
    """Give the series among `series_ids` that others read as covariates a new version."""
    if not series_ids:
        return
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    ids = sorted(series_ids)
    connection.exec_driver_sql(noted_sql(", ".join([mark] * len(ids)), mark),
                               (new_version(), *ids))


def note_linked(connection: Connection, series_ids: Collection[int]) -> None:
    """Give series just linked as covariates a new version, whatever was kept of them before."""
    if not series_ids:
        return
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    ids = sorted(series_ids)
    connection.exec_driver_sql(
        f"UPDATE series SET readings_version = {mark} "
        f"WHERE id IN ({', '.join([mark] * len(ids))})", (new_version(), *ids))
