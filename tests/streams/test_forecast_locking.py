"""Forecasts never hold a write transaction across their computation; busy means 503."""

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.api.routes import forecasts
from app.config import Settings
from app.db.engine import create_db_engine
from tests.api.helpers import assert_problem, count_rows
from tests.streams.conftest import install_model, load_series

WARM = 300


def sqlite_path(settings: Settings) -> str:
    return settings.database_url.removeprefix("sqlite:///")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("model", ["gru_window", "lstm_stateful"])
def test_other_writers_proceed_while_a_forecast_computes(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    """Window models, and stream models that make and store a seasonal fit per day."""
    sid = load_series(client, auth, WARM)
    install_model(settings, artifacts[model], sid)
    got_lock: list[bool] = []
    warm = forecasts.warm_history

    def warm_while_another_writes(*args: Any, **kwargs: Any) -> Any:
        other = sqlite3.connect(sqlite_path(settings), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            got_lock.append(True)
        except sqlite3.OperationalError:  # "database is locked": the forecast holds it
            got_lock.append(False)
        finally:
            other.close()
        return warm(*args, **kwargs)

    monkeypatch.setattr(forecasts, "warm_history", warm_while_another_writes)
    first = client.get(f"/v1/series/{sid}/forecast?horizon=24", headers=auth)
    assert first.status_code == 200, first.text
    assert got_lock == [True]
    # The warmed state was still stored afterwards, and the next forecast starts from it.
    assert count_rows(settings.database_url, "series_states") == 1
    if model == "lstm_stateful":  # the fits made while computing were stored afterwards
        assert count_rows(settings.database_url, "seasonal_fits") > 0
    again = client.get(f"/v1/series/{sid}/forecast?horizon=24", headers=auth)
    assert again.json()["points"] == first.json()["points"]


def test_a_state_warmed_over_readings_changed_meanwhile_is_not_stored(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    sid = load_series(client, auth, WARM)
    install_model(settings, artifacts["gru_window"], sid)
    warm = forecasts.warm_history

    def warm_while_a_reading_changes(*args: Any, **kwargs: Any) -> Any:
        engine = create_db_engine(settings.database_url)
        with engine.begin() as connection:
            connection.execute(text("UPDATE readings SET value = value + 50 WHERE series_id = :s "
                                    "AND ts = (SELECT max(ts) FROM readings WHERE series_id = :s)"),
                               {"s": sid})
        engine.dispose()
        return warm(*args, **kwargs)

    monkeypatch.setattr(forecasts, "warm_history", warm_while_a_reading_changes)
    assert client.get(f"/v1/series/{sid}/forecast", headers=auth).status_code == 200
    assert count_rows(settings.database_url, "series_states") == 0


def test_horizon_above_the_cap_is_422(client: TestClient, auth: dict[str, str],
                                      settings: Settings) -> None:
    cap = settings.max_forecast_horizon_steps
    sid = load_series(client, auth, 0)
    body = assert_problem(client.get(f"/v1/series/{sid}/forecast?horizon={cap + 1}",
                                     headers=auth), 422, "horizon")
    assert str(cap) in body["detail"]
    assert_problem(client.get(f"/v1/streams/s/forecast?horizon={cap + 1}", headers=auth), 422,
                   "horizon")
    # One cap, one message, however far past it.
    for far in (99_999, 10**30):
        for path in (f"/v1/series/{sid}/forecast", "/v1/streams/s/forecast"):
            far_body = assert_problem(client.get(f"{path}?horizon={far}", headers=auth), 422,
                                      "horizon")
            assert far_body["detail"] == body["detail"]
    # At the cap the horizon is accepted (here: no model yet, so 409).
    assert_problem(client.get(f"/v1/series/{sid}/forecast?horizon={cap}", headers=auth), 409)


def test_a_lock_not_granted_in_time_is_503_with_retry_after(
        auth: dict[str, str], settings: Settings) -> None:
    from app.main import create_app

    settings.database_lock_timeout_s = 0.2
    engine = create_db_engine(settings.database_url)
    with TestClient(create_app(settings)) as client, engine.connect() as holder:
        assert client.get("/v1/series", headers=auth).status_code == 200  # key now cached
        if engine.dialect.name == "sqlite":
            other = sqlite3.connect(sqlite_path(settings), isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
        else:
            holder.execute(text("LOCK TABLE series IN ACCESS EXCLUSIVE MODE"))
        response = client.post("/v1/series", json={"name": "x", "freq": "h"}, headers=auth)
        if engine.dialect.name == "sqlite":
            other.execute("ROLLBACK")
            other.close()
        holder.rollback()
    engine.dispose()
    assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
