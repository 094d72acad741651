import datetime

import numpy as np
import pandas as pd
import pytest

from app.ml.calendar import CalendarSpec, DayType, SpecialDay, check_holidays_code, day_types


@pytest.mark.parametrize("code", ["US", "GB-ENG", "AU-VIC", "DE-BY"])
def test_known_codes_pass(code):
    assert check_holidays_code(code) == code


@pytest.mark.parametrize("code", ["XX", "US-ZZ", "GB-", "", "us"])
def test_unknown_codes_name_the_code(code):
    with pytest.raises(ValueError, match=repr(code)):
        check_holidays_code(code)


def _types(start, days, calendar):
    dates = pd.date_range(start, periods=days, freq="D")
    return dict(zip([d.date() for d in dates], day_types(dates, calendar).tolist(), strict=True))


def test_us_day_types_in_christmas_and_thanksgiving():
    us = CalendarSpec("US")
    types = _types("2005-11-21", 45, us)
    assert types[datetime.date(2005, 11, 24)] == DayType.HOLIDAY  # Thanksgiving, a Thursday
    assert types[datetime.date(2005, 11, 25)] == DayType.BRIDGE  # the Friday after it
    assert types[datetime.date(2005, 11, 23)] == DayType.WORKING
    assert types[datetime.date(2005, 12, 24)] == DayType.SATURDAY
    assert types[datetime.date(2005, 12, 26)] == DayType.HOLIDAY  # observed Christmas
    assert types[datetime.date(2005, 12, 27)] == DayType.BRIDGE
    assert types[datetime.date(2005, 12, 30)] == DayType.BRIDGE
    assert types[datetime.date(2006, 1, 2)] == DayType.HOLIDAY
    assert types[datetime.date(2006, 1, 3)] == DayType.WORKING


def test_without_calendar_only_weekends_differ():
    types = _types("2005-12-24", 4, None)
    assert list(types.values()) == [DayType.SATURDAY, DayType.SUNDAY, DayType.WORKING, DayType.WORKING]


def test_special_days_count_as_holidays_and_work_far_ahead():
    spec = CalendarSpec(None, (SpecialDay(datetime.date(2031, 3, 5), "plant shutdown"),))
    types = _types("2031-03-04", 3, spec)
    assert list(types.values()) == [DayType.WORKING, DayType.HOLIDAY, DayType.WORKING]
    assert CalendarSpec.from_dict(spec.to_dict()) == spec


def test_hourly_timestamps_take_their_date():
    ts = pd.date_range("2005-07-04", periods=48, freq="h")
    types = day_types(ts, CalendarSpec("US"))
    assert np.all(types[:24] == DayType.HOLIDAY) and np.all(types[24:] == DayType.WORKING)
