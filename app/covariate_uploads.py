"""CSV uploads that carry covariate columns: one file feeds a series and its linked covariates.

`covariate_cols=temperature_c` stores the column `temperature_c` in the covariate series linked
under the same name; `covariate_cols=temperature_c:temperature` in the one linked as
`temperature`. The whole upload is stored or nothing is.

Rows past the last one with a value of the series itself are the covariates' forecast: they are
not stored as missing readings of the series. An empty covariate cell stores nothing (one
station's temperature feeds many series' files, and a file's gap must not blank it); a present
one must sit on the covariate series' own grid.
"""

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.db import covariates as covariates_db
from app.db import readings as readings_db
from app.db import series as series_db
from app.db.tables import Series
from app.errors import Conflict, Invalid, field_error
from app.ingest import MAX_REPORTED_ROWS, LocalTimes, ReadingsBatch, TimestampFormat, to_batch
from app.streams.history import forget_from
from app.timegrid import off_grid, to_iso

COVARIATE_COLS_FIELD = "covariate_cols"
# `column` or `column:name`, where name is a covariate link's name.
COVARIATE_COL = re.compile(r"^(?P<column>[^:]+?)(?::(?P<name>[A-Za-z_][A-Za-z0-9_]{0,63}))?$")


@dataclass(frozen=True)
class CovariateColumn:
    """A CSV column and the name of the covariate link whose series stores it."""

    column: str
    name: str


@dataclass(frozen=True)
class CovariateTarget:
    """Where one covariate column goes: its column and the covariate series."""

    column: CovariateColumn
    series: Series


def parse_covariate_cols(raw: str | None) -> tuple[CovariateColumn, ...]:
    """The columns named by `covariate_cols` (comma-separated), or Invalid naming the item."""
    if raw is None:
        return ()
    found: list[CovariateColumn] = []
    for item in raw.split(","):
        match = COVARIATE_COL.match(item.strip())
        if match is None:
            raise Invalid(f"`covariate_cols` items are `column` or `column:name`, not {item!r}",
                          errors=[field_error(COVARIATE_COLS_FIELD, raw,
                                              f"{item!r} is not `column` or `column:name`")])
        column = match["column"]
        found.append(CovariateColumn(column=column, name=match["name"] or column))
    for key in ("column", "name"):
        seen = [getattr(c, key) for c in found]
        repeated = sorted({v for v in seen if seen.count(v) > 1})
        if repeated:
            raise Invalid(f"`covariate_cols` names the {key} {repeated[0]!r} twice",
                          errors=[field_error(COVARIATE_COLS_FIELD, raw,
                                              f"{key} {repeated[0]!r} appears twice")])
    return tuple(found)


def covariate_targets(*, session: Session, series: Series,
                      columns: tuple[CovariateColumn, ...]) -> list[CovariateTarget]:
    """The covariate series of each column, locked for the upload; Invalid naming
    `covariate_cols` if the series has no covariate of a column's name."""
    links = {link.name: link for link in covariates_db.links_of(session=session,
                                                                 series_id=series.id)}
    targets = []
    for column in columns:
        link = links.get(column.name)
        if link is None:
            value = column.column if column.name == column.column else \
                f"{column.column}:{column.name}"
            raise Invalid(
                f"Series {series.id} has no covariate named {column.name!r} (it has "
                f"{sorted(links) or 'none'}): link one with PATCH /v1/series/{series.id}",
                errors=[field_error(COVARIATE_COLS_FIELD, value,
                                    f"no covariate named {column.name!r}")])
        covariate = series_db.get_series(session=session, tenant_id=series.tenant_id,
                                         series_id=link.covariate_series_id, for_update=True)
        targets.append(CovariateTarget(column=column, series=covariate))
    return targets


def split_batches(ts_raw: pd.Series, value_raw: pd.Series, covariate_raw: dict[str, pd.Series],
                  freq: str, targets: list[CovariateTarget], *, ts_format: TimestampFormat,
                  local: LocalTimes = LocalTimes(), ts_field: str, value_field: str,
                  ) -> tuple[ReadingsBatch, list[ReadingsBatch]]:
    """The series' readings (up to its last present value) and each covariate's (its present
    cells), checked; errors name the CSV's data rows from 1."""
    batch = to_batch(ts_raw, value_raw, freq, row_base=1, ts_field=ts_field,
                     value_field=value_field, ts_format=ts_format, local=local)
    present = np.flatnonzero(~np.isnan(batch.values))
    if len(present) == 0:
        raise Invalid(f"Column {value_field!r} holds no value: upload covariate readings alone "
                      "to the covariate series itself",
                      errors=[field_error("value_col", value_field, "no value in any row")])
    end = int(present[-1]) + 1
    own = ReadingsBatch(ts_s=batch.ts_s[:end], values=batch.values[:end])
    covariate_batches = []
    for target in targets:
        column = target.column.column
        checked = to_batch(ts_raw, covariate_raw[column], freq, row_base=1, ts_field=ts_field,
                           value_field=column, ts_format=ts_format, local=local)
        given = ~np.isnan(checked.values)
        ts_s, values = checked.ts_s[given], checked.values[given]
        off = off_grid(ts_s, target.series.freq)
        if off.any():
            stamps = [to_iso(int(t)) for t in ts_s[off][:MAX_REPORTED_ROWS]]
            raise Invalid(
                f"{int(off.sum())} value(s) of column {column!r} are not on the "
                f"{target.series.freq} grid of its covariate series {target.series.id}; leave "
                "those cells empty",
                errors=[field_error(COVARIATE_COLS_FIELD, column,
                                    f"not on the {target.series.freq} grid", ts=ts)
                        for ts in stamps])
        covariate_batches.append(ReadingsBatch(ts_s=ts_s, values=values))
    return own, covariate_batches


def forget_after_change(*, session: Session, series_id: int, first_changed_ts: int) -> None:
    """Drop the warmed states that saw readings of the series at or after `first_changed_ts`:
    its own, and those of every series that reads it as a covariate."""
    forget_from(session=session, series_id=series_id, first_changed_ts=first_changed_ts)
    for reader in covariates_db.readers_of(session=session, covariate_series_id=series_id):
        forget_from(session=session, series_id=reader, first_changed_ts=first_changed_ts)


def store_covariates(*, session: Session, targets: list[CovariateTarget],
                     batches: list[ReadingsBatch], on_conflict: readings_db.OnConflict
                     ) -> list[tuple[CovariateTarget, readings_db.StoreResult | None]]:
    """Store each covariate's readings (a covariate without any in the file stores nothing)."""
    results: list[tuple[CovariateTarget, readings_db.StoreResult | None]] = []
    for target, batch in zip(targets, batches, strict=True):
        if len(batch) == 0:
            results.append((target, None))
            continue
        column = target.column.column
        try:
            result = readings_db.store_readings(session=session, series_id=target.series.id,
                                                batch=batch, on_conflict=on_conflict)
        except Conflict as exc:
            raise Conflict(f"Column {column!r}, stored in covariate series {target.series.id}: "
                           f"{exc.detail}", errors=[{**e, "field": column} for e in exc.errors]
                           ) from None
        if result.inserted or result.updated:
            forget_after_change(session=session, series_id=target.series.id,
                                first_changed_ts=result.first_ts)
        results.append((target, result))
    return results
