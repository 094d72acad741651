"""Parsing of uploads without a database: grids, zones, missing values, row numbers."""

import numpy as np
import pandas as pd
import pytest

from app.errors import Invalid
from app.ingest import CsvOptions, TimestampFormat, parse_csv, to_batch
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


DAY_FIRST = "ts,v\n12/08/2000 22:00,1\n13/08/2000 22:00,2\n14/08/2000 22:00,3\n"


def test_day_first_column_is_read_as_one_format() -> None:
    ts, values = parse_csv(DAY_FIRST.encode(), CsvOptions())
    batch = to_batch(ts, values, "30min")
    days = pd.to_datetime(batch.ts_s, unit="s").strftime("%Y-%m-%d %H:%M").tolist()
    assert days == ["2000-08-12 22:00", "2000-08-13 22:00", "2000-08-14 22:00"]


def test_ambiguous_column_names_the_parameter_that_resolves_it() -> None:
    body = b"ts,v\n12/08/2000 22:00,1\n11/08/2000 22:00,2\n"
    ts, values = parse_csv(body, CsvOptions())
    with pytest.raises(Invalid) as info:
        to_batch(ts, values, "30min")
    assert "dayfirst" in info.value.detail and "ts_format" in info.value.detail
    assert info.value.errors[0]["field"] == "dayfirst"
    for formats, months in ((TimestampFormat(dayfirst=True), [8, 8]),
                            (TimestampFormat(dayfirst=False), [11, 12]),
                            (TimestampFormat(ts_format="%m/%d/%Y %H:%M"), [11, 12])):
        batch = to_batch(ts, values, "30min", ts_format=formats)
        assert pd.to_datetime(batch.ts_s, unit="s").month.tolist() == months


def test_mixed_formats_are_refused_with_their_rows() -> None:
    body = b"ts,v\n2000-08-12 22:00,1\n2000-08-12 22:30,2\n13/08/2000 23:00,3\n"
    ts, values = parse_csv(body, CsvOptions())
    with pytest.raises(Invalid) as info:
        to_batch(ts, values, "30min", row_base=1, ts_field="ts")
    assert [e["row"] for e in info.value.errors] == [3]
    assert info.value.errors[0]["value"] == "13/08/2000 23:00"


def test_semicolon_file_without_sep_gets_the_fix() -> None:
    with pytest.raises(Invalid) as info:
        parse_csv(b"timestamp;load\n2000-08-28 00:00;23100,5\n", CsvOptions())
    assert "`sep=;` and `decimal=,`" in info.value.detail
    assert info.value.errors[0]["field"] == "sep"
    with pytest.raises(Invalid) as plain:
        parse_csv(b"timestamp;load\n2000-08-28 00:00;23100\n", CsvOptions())
    assert "`sep=;`" in plain.value.detail and "decimal" not in plain.value.detail


def test_body_without_line_breaks_gets_a_hint() -> None:
    with pytest.raises(Invalid) as info:
        parse_csv(b"timestamp,load2000-08-28 00:00,23100", CsvOptions())
    assert "--data-binary" in info.value.detail
