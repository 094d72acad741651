"""Counting grid steps on fixed and calendar frequencies."""

import pandas as pd
import pytest

from app.timegrid import fixed_step, parse_freq, steps_between


@pytest.mark.parametrize("freq", ["30min", "h", "D", "W-SAT", "W-SUN", "MS", "ME", "QS", "QE-DEC",
                                  "YS", "B"])
def test_steps_between_counts_the_grid_on_the_calendar(freq: str) -> None:
    grid = pd.date_range("2019-12-28", periods=40, freq=freq)
    offset = parse_freq(freq)
    assert [steps_between(grid[3], grid[k], offset) for k in (2, 3, 4, 39)] == [0, 0, 1, 36]


def test_fixed_step_names_a_calendar_frequency() -> None:
    assert fixed_step(parse_freq("30min")) == pd.Timedelta(minutes=30)
    with pytest.raises(ValueError, match="'MS' steps differ in length"):
        fixed_step(parse_freq("MS"))
