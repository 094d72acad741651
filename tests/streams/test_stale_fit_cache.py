"""The stand-in a post reads while its day's fit is late (`stale_fits`): cached per series and
day as a made fit is, replaced by a newer fit before the day, and never read once the day's
own fit is stored. Fits are written straight to the table: no model is trained or loaded."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import stream_rows
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.tables import ForecastModel, Series
from app.db.tenants import create_key
from app.ml.seasonal import SeasonalCycles
from app.streams.seasonal_fits import FitCache, noting_stale_fits, store_fit, stored_fits

STEP_S = 3600
DAY_S = 86_400
DAY = 1_700_006_400  # a midnight UTC: the day whose fit is late
PERIODS = (24, 168)


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(settings.database_url)
    yield create_session_factory(engine)
    engine.dispose()


def a_fit(seed: int) -> SeasonalCycles:
    rng = np.random.default_rng(seed)
    return SeasonalCycles(tuple(rng.normal(size=p).astype(np.float32) for p in PERIODS))


def a_series_and_model(factory: sessionmaker[Session]) -> tuple[int, int]:
    with transaction(factory) as session:
        tenant, _ = create_key(session=session, tenant_name="t")
        series = Series(tenant_id=tenant.id, name="meter", freq="h")
        model = ForecastModel(tenant_id=tenant.id, spec={})
        session.add_all([series, model])
        session.flush()
        return series.id, model.id


def store(factory: sessionmaker[Session], series_id: int, model_id: int, boundary_s: int,
          fit: SeasonalCycles) -> None:
    with transaction(factory, write=True) as session:
        assert store_fit(session, series_id, model_id, boundary_s, fit)


def read(factory: sessionmaker[Session], cache: FitCache, model_id: int,
         key: tuple[int, int]) -> tuple[SeasonalCycles, list[Any]]:
    """What a post reads for `key`, and the keys it noted as stale."""
    with transaction(factory) as session, noting_stale_fits() as stale:
        found = stored_fits(session.connection(), cache, model_id, [key], stale_step_s=STEP_S)
    return found[key], list(stale)


def same(a: SeasonalCycles, b: SeasonalCycles) -> bool:
    return len(a.cycles) == len(b.cycles) and all(
        np.array_equal(x, y) for x, y in zip(a.cycles, b.cycles, strict=True))


def test_the_stand_in_is_cached_until_a_newer_fit_and_the_days_own_fit_wins(
        factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    series_id, model_id = a_series_and_model(factory)
    key = (series_id, DAY)
    two_days_before, day_before, own = a_fit(0), a_fit(1), a_fit(2)
    store(factory, series_id, model_id, DAY - 2 * DAY_S, two_days_before)
    cache = FitCache(max_bytes=1 << 20)

    got, stale = read(factory, cache, model_id, key)
    assert same(got, two_days_before.shifted(2 * DAY_S // STEP_S)) and stale == [key]
    assert not same(got, two_days_before)  # the weekly cycle moved by two days

    # Read again: the stand-in comes from the cache, no fit's numbers from the database.
    read_cycles = stream_rows.fit_cycles

    def no_cycles(connection: Any, model_id: int, keys: list[Any]) -> Any:
        if keys:
            raise AssertionError(f"fits read from the database again: {keys}")
        return read_cycles(connection, model_id, keys)

    monkeypatch.setattr(stream_rows, "fit_cycles", no_cycles)
    again, stale = read(factory, cache, model_id, key)
    assert again is got and stale == [key]
    monkeypatch.setattr(stream_rows, "fit_cycles", read_cycles)

    # A newer fit before the day: the cached stand-in is no longer the newest, and is not read.
    store(factory, series_id, model_id, DAY - DAY_S, day_before)
    got, stale = read(factory, cache, model_id, key)
    assert same(got, day_before.shifted(DAY_S // STEP_S)) and stale == [key]

    # The day's own fit is stored (a worker caught up): posts read it, not the stand-in.
    store(factory, series_id, model_id, DAY, own)
    got, stale = read(factory, cache, model_id, key)
    assert same(got, own) and stale == []
