"""Parsing of uploads without a database: grids, zones, missing values, row numbers."""

import numpy as np
import pandas as pd
import pytest

from app.errors import Invalid
from app.ingest import CsvOptions, parse_csv, to_batch
from app.timegrid import following, off_grid, parse_freq


def test_grid_for_fixed_and_calendar_frequencies() -> None:
    ts = pd.to_datetime(["2024-01-07 00:00", "2024-01-07 00:15", "2024-01-08 00:00"]).asi8 // 10**9
    assert off_grid(ts, "15min").tolist() == [False, False, False]
    assert off_grid(ts, "30min").tolist() == [False, True, False]
    assert off_grid(ts, "W-SUN").tolist() == [False, True, True]  # 2024-01-07 is a Sunday
    nxt = following(int(ts[0]), "30min", 2)
    assert (nxt - ts[0]).tolist() == [1800, 3600]


@pytest.mark.parametrize("freq", ["nonsense", "500ms", "1.5s", ""])
def test_invalid_frequency(freq: str) -> None:
    with pytest.raises(ValueError, match=r"alias|seconds"):
        parse_freq(freq)


def test_batch_sorted_with_missing_values() -> None:
    ts, values = parse_csv(b"t,v\n2024-01-01T01:00:00+01:00,1\n2024-01-01 00:30,\n", CsvOptions())
    batch = to_batch(ts, values, "30min")
    assert batch.ts_s.tolist() == [1704067200, 1704069000]
    assert batch.values[0] == 1 and np.isnan(batch.values[1])


def test_error_rows_are_counted_from_one() -> None:
    ts, values = parse_csv(b"t,v\n2024-01-01 00:00,1\n2024-01-01 00:30,x\n", CsvOptions())
    with pytest.raises(Invalid) as info:
        to_batch(ts, values, "30min", row_base=1, value_field="v")
    assert info.value.errors == [{"field": "v", "value": "x", "row": 2,
                                  "message": "not a finite number (leave it empty or null "
                                             "for a missing reading)"}]
