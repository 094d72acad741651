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


def test_a_fit_made_ahead_reads_the_readings_before_the_local_day_before() -> None:
    from app.ml.stream_seasonal import fit_cutoff_ns

    hour = 3600 * 10**9
    london = "Europe/London"
    # 1 April (BST) starts at 23:00 UTC on 31 March, a 23-hour day after the clocks went forward.
    april = pd.Timestamp("2024-03-31T23:00Z").value
    assert fit_cutoff_ns(april, 24, london, hour) == pd.Timestamp("2024-03-31T00:00Z").value
    assert fit_cutoff_ns(april, 24, london, hour, lead_days=0) == april
    assert fit_cutoff_ns(april, 24, london, hour, lead_days=2) == pd.Timestamp(
        "2024-03-30T00:00Z").value
    day = 24 * hour  # daily data: a fit per reading, made one reading ahead
    assert fit_cutoff_ns(april, 1, london, day) == april - day


def test_shifted_cycles_read_the_same_component_later() -> None:
    from app.ml.seasonal import SeasonalCycles

    fit = SeasonalCycles((np.arange(24.0), np.arange(168.0) / 10))
    offsets = np.arange(-24, 400)
    np.testing.assert_array_equal(fit.shifted(24).at(offsets), fit.at(offsets + 24))
    np.testing.assert_array_equal(fit.shifted(-5).at(offsets), fit.at(offsets - 5))
