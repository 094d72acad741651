"""Where a stream model's readings find their seasonal fit: the day on the series' own clock."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.ml.seasonal import SeasonalCycles
from app.ml.stream_seasonal import boundaries, seasonal_ahead, seasonal_at


def test_days_start_at_local_midnight_across_a_dst_change() -> None:
    stamps = pd.DatetimeIndex(["2024-03-31 12:00", "2024-04-01 12:00"])  # naive UTC
    got = pd.DatetimeIndex(boundaries(stamps, 48.0, "Europe/London"))
    # London is on GMT until 01:00 on 31 March, then BST (UTC+1): its next midnight is 23:00 UTC.
    assert list(got) == [pd.Timestamp("2024-03-31 00:00"), pd.Timestamp("2024-03-31 23:00")]
    assert list(pd.DatetimeIndex(boundaries(stamps, 48.0))) == list(stamps.floor("D"))
    assert list(boundaries(stamps, 1.0, "Europe/London")) == list(stamps.asi8)  # daily: itself


class _Counting:
    """A source whose fit for each boundary is a ramp, recording which boundaries were asked."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        self.asked.append(boundary_ns)
        return SeasonalCycles((np.arange(4.0) + boundary_ns // 10**9 // 86_400,))


def test_each_reading_reads_its_days_fit_and_forecasts_read_the_next_steps() -> None:
    step = pd.Timedelta("6h")  # four readings a day, period 4
    stamps = pd.date_range("2024-01-01", periods=6, freq=step)
    source = _Counting()
    s, periods = seasonal_at(source, stamps, boundaries(stamps, 4.0), step)
    day = np.array([19723.0] * 4 + [19724.0] * 2)  # days since the epoch
    np.testing.assert_array_equal(s, day + np.array([0, 1, 2, 3, 0, 1]))
    assert (periods == 1).all()
    # At 18:00 on day one the first forecast step is the next day: its fit, from offset -1 on.
    ahead, _ = seasonal_ahead(source, stamps[3:4], step, 2, 4.0)
    np.testing.assert_array_equal(ahead[0], [0 - 3, 1 - 3])


def test_a_fit_made_ahead_reads_the_readings_up_to_its_lead_before_local_midnight() -> None:
    from app.ml.stream_seasonal import FIT_LEAD_S, fit_cutoff_ns

    hour = 3600 * 10**9
    half_hour = hour // 2
    # 1 April (BST) starts at 23:00 UTC on 31 March, a 23-hour day after the clocks went forward:
    # the lead is hours of real time before that midnight, 20:00 UTC (21:00 BST) for three.
    april = pd.Timestamp("2024-03-31T23:00Z").value
    assert FIT_LEAD_S == 3 * 3600
    assert fit_cutoff_ns(april, 48, half_hour) == pd.Timestamp("2024-03-31T20:00Z").value
    assert fit_cutoff_ns(april, 48, half_hour, lead_s=0) == april
    assert fit_cutoff_ns(april, 24, hour, lead_s=86_400) == pd.Timestamp("2024-03-30T23:00Z").value
    # A lead that is not whole steps reaches back to the step before: 2 h steps, 3 h lead.
    assert fit_cutoff_ns(april, 12, 2 * hour, lead_s=3 * 3600) == april - 4 * hour
    day = 24 * hour  # daily data: a fit per reading, made one reading ahead
    assert fit_cutoff_ns(april, 1, day) == april - day


def test_the_next_local_days_fit_is_due_once_its_readings_are_in() -> None:
    """A series' next day's fit is due from its lead before that day's local midnight, on the
    series' own clock: London's 1 April begins at 23:00 UTC, its fit is due from 20:00 UTC."""
    from app.ml.stream_seasonal import due_fit_boundaries

    half_hour = 1800 * 10**9
    london, utc = "Europe/London", "UTC"
    march_31 = pd.Timestamp("2024-03-31T00:00Z").value  # London's midnight, on GMT until 01:00
    april = pd.Timestamp("2024-03-31T23:00Z").value

    def due(newest: str, timezone: str) -> list[int]:
        return due_fit_boundaries(pd.Timestamp(newest).value, half_hour, 48, timezone)

    # Its newest reading at 19:00 UTC: the next reading (19:30) is before 20:00, the cutoff.
    assert due("2024-03-31T19:00Z", london) == [march_31]
    assert due("2024-03-31T19:30Z", london) == [march_31, april]
    assert due("2024-03-31T22:30Z", london) == [april]  # the next reading is April's first
    # On UTC's clock the same readings turn the day an hour later: due from 21:00 UTC.
    assert due("2024-03-31T19:30Z", utc) == [march_31]
    assert due("2024-03-31T20:30Z", utc) == [march_31, pd.Timestamp("2024-04-01T00:00Z").value]


def test_shifted_cycles_read_the_same_component_later() -> None:
    from app.ml.seasonal import SeasonalCycles

    fit = SeasonalCycles((np.arange(24.0), np.arange(168.0) / 10))
    offsets = np.arange(-24, 400)
    np.testing.assert_array_equal(fit.shifted(24).at(offsets), fit.at(offsets + 24))
    np.testing.assert_array_equal(fit.shifted(-5).at(offsets), fit.at(offsets - 5))
