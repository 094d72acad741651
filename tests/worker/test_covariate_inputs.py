"""Training reads each series' covariates (aligned to its grid) and calendar from storage, and a
model asked to read a covariate the series does not link is refused before any job runs."""

import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.ml.calendar import CalendarSpec, SpecialDay
from app.ml.forecaster import Forecaster
from app.model_files import model_path
from app.worker.training_task import load_series_data
from tests.api.helpers import CSV, assert_problem, fill_series
from tests.worker.helpers import trained


def half_hourly_load_with_hourly_temperature(client: TestClient, auth: dict[str, str]
                                             ) -> tuple[int, int]:
    temperature = client.post("/v1/series", headers=auth,
                              json={"name": "temperature", "freq": "h"}).json()["id"]
    body = "ts,value\n" + "".join(f"2024-01-01 {h:02d}:00,{10 + h}\n" for h in range(4))
    client.post(f"/v1/series/{temperature}/readings", content=body.encode(),
                headers={**auth, **CSV})
    load = client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "30min", "holidays": "US",
        "special_days": [{"date": "2024-12-27", "label": "plant shutdown"}],
        "covariates": [{"series_id": temperature, "name": "temperature"}]}).json()["id"]
    fill_series(client, auth, load, freq="30min", n=300)
    return load, temperature


def test_training_data_carries_aligned_covariates_and_calendar(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    load, _ = half_hourly_load_with_hourly_temperature(client, auth)
    answer = client.post("/v1/models", headers=auth, json={
        "series_ids": [load], "spec": {"epochs": 1, "covariates": ["temperature"]}})
    assert answer.status_code == 202, answer.text
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine)) as session:
        [data] = load_series_data(session, answer.json()["model"]["id"], ["temperature"])
        [plain] = load_series_data(session, answer.json()["model"]["id"], [])
    engine.dispose()
    temperature = data.covariates["temperature"]
    assert temperature.shape == data.values.shape
    # 00:00 .. 03:00 hourly: the half hours between are interpolated, nothing after 03:00.
    np.testing.assert_allclose(temperature[:7], [10, 10.5, 11, 11.5, 12, 12.5, 13])
    assert np.isnan(temperature[7:]).all()
    assert data.calendar == CalendarSpec(holidays="US", special_days=(
        SpecialDay(datetime.date(2024, 12, 27), "plant shutdown"),))
    assert dict(plain.covariates) == {}


@pytest.mark.parametrize("spec_covariates", [["wind"], ["temperature", "wind"]])
def test_a_model_of_an_unlinked_covariate_is_422(client: TestClient, auth: dict[str, str],
                                                 settings: Settings,
                                                 spec_covariates: list[str]) -> None:
    load, _ = half_hourly_load_with_hourly_temperature(client, auth)
    problem = assert_problem(client.post("/v1/models", headers=auth, json={
        "series_ids": [load], "spec": {"covariates": spec_covariates}}), 422, "spec.covariates")
    assert "wind" in problem["detail"]
    assert client.get("/v1/models", headers=auth).json()["count"] == 0


def test_a_global_model_needs_the_same_covariates_or_a_list(
        client: TestClient, auth: dict[str, str]) -> None:
    load, temperature = half_hourly_load_with_hourly_temperature(client, auth)
    other = client.post("/v1/series", headers=auth,
                        json={"name": "other", "freq": "30min"}).json()["id"]
    fill_series(client, auth, other, freq="30min", n=300)
    body = {"series_ids": [load, other], "spec": {"epochs": 1}}
    assert_problem(client.post("/v1/models", headers=auth, json=body), 422, "spec.covariates")
    answer = client.post("/v1/models", headers=auth,
                         json={**body, "spec": {"epochs": 1, "covariates": []}})
    assert answer.status_code == 202, answer.text
    assert client.patch(f"/v1/series/{other}", headers=auth, json={"covariates": [
        {"series_id": temperature, "name": "temperature"}]}).status_code == 200
    assert client.post("/v1/models", headers=auth, json=body).status_code == 202


LOAD_HOURS = 24 * 20


def load_weather() -> np.ndarray:
    """Hourly temperature over the load's hours and a day after them."""
    t = np.arange(LOAD_HOURS + 24)
    return 10 + 6 * np.sin(2 * np.pi * (t - 6) / 24) + np.cumsum(
        np.random.default_rng(1).normal(0, 0.3, len(t)))


def load_with_temperature_in_one_csv(client: TestClient, auth: dict[str, str]) -> int:
    """Hourly load that follows temperature, uploaded with the temperature in one CSV; the
    temperature runs a day past the last load reading (its forecast)."""
    temperature = client.post("/v1/series", headers=auth,
                              json={"name": "temperature", "freq": "h"}).json()["id"]
    load = client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "h", "holidays": "US",
        "covariates": [{"series_id": temperature, "name": "temperature"}]}).json()["id"]
    hours = LOAD_HOURS
    weather = load_weather()
    stamps = pd.date_range("2024-01-01", periods=len(weather), freq="h")
    rows = []
    for i, (stamp, w) in enumerate(zip(stamps, weather, strict=True)):
        value = "" if i >= hours else f"{100 + 2 * w:.4f}"  # the last day: temperature only
        rows.append(f"{stamp:%Y-%m-%d %H:%M},{value},{w:.4f}")
    body = "ts,load,temperature\n" + "\n".join(rows) + "\n"
    answer = client.post(f"/v1/series/{load}/readings", params={"covariate_cols": "temperature"},
                         content=body.encode(), headers={**auth, **CSV})
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == hours
    assert answer.json()["covariates"][0]["inserted"] == hours + 24
    return int(load)


@pytest.mark.slow
def test_a_job_trains_on_the_linked_covariate_and_its_model_forecasts_with_it(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    """Upload load with temperature in one CSV, train through the queue, forecast: the model
    reads the stored temperature, and the horizon past it is refused naming it."""
    load = load_with_temperature_in_one_csv(client, auth)
    model = trained(client, auth, settings, load, cell="gru", stateful=True, chunk=24)
    assert model["resolved_spec"]["covariates"] == ["temperature"]
    served = client.get(f"/v1/series/{load}/forecast?horizon=24", headers=auth)
    assert served.status_code == 200, served.text
    assert served.json()["mode"] == "covariates" and served.json()["covariates"] == ["temperature"]
    assert_problem(client.get(f"/v1/series/{load}/forecast?horizon=25", headers=auth), 422,
                   "horizon")


@pytest.mark.slow
@pytest.mark.parametrize("inputs", ["network", "both"])
def test_a_model_whose_network_reads_the_covariate_trains_and_forecasts_with_it(
        client: TestClient, auth: dict[str, str], settings: Settings, inputs: str) -> None:
    """`covariate_inputs`: the network reads the temperature (a window model by default); its
    forecast reads the stored temperature forecast or inline values, and refuses a horizon past
    it; streams do not feed a window model's network yet and say so."""
    load = load_with_temperature_in_one_csv(client, auth)
    model = trained(client, auth, settings, load, cell="gru", covariate_inputs=inputs)
    assert model["resolved_spec"]["covariates"] == ["temperature"]
    assert model["resolved_spec"]["covariate_inputs"] == inputs
    assert model["resolved_spec"]["stateful"] is False
    served = client.get(f"/v1/series/{load}/forecast?horizon=24", headers=auth)
    assert served.status_code == 200, served.text
    assert served.json()["mode"] == "covariates" and served.json()["covariates"] == ["temperature"]
    stored = [p["mean"] for p in served.json()["points"]]
    assert_problem(client.get(f"/v1/series/{load}/forecast?horizon=25", headers=auth), 422,
                   "horizon")
    # Inline temperature 15 degrees warmer moves the forecast: the network reads it.
    weather = load_weather()[-24:].tolist()
    warmer = client.post(f"/v1/series/{load}/forecast", headers=auth, json={
        "horizon": 24, "covariates": {"temperature": [w + 15 for w in weather]}})
    assert warmer.status_code == 200, warmer.text
    assert np.abs(np.array([p["mean"] for p in warmer.json()["points"]]) - stored).max() > 1e-3
    assert_problem(client.post("/v1/streams", headers=auth, json={
        "series_id": load, "model_id": model["id"]}), 409, "model_id")


def _means(answer: Any) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    return np.array([p["mean"] for p in answer.json()["points"]])


@pytest.mark.slow
def test_a_stream_model_whose_network_reads_the_covariate_steps_and_forecasts_with_it(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    """A stream model (`stateful: true`) whose network reads the temperature: its stream warms
    and steps each reading with the temperature stored at its time, forecasts with the stored
    temperature ahead (422 past it), and steps a reading with no temperature masked, not
    filled."""
    load = load_with_temperature_in_one_csv(client, auth)
    temperature = client.get(f"/v1/series/{load}", headers=auth).json()["covariates"][0]["series_id"]
    model = trained(client, auth, settings, load, cell="gru", stateful=True, chunk=24,
                    covariate_inputs="network", deseasonalize="none")
    assert model["resolved_spec"]["stateful"] is True
    assert model["resolved_spec"]["covariate_inputs"] == "network"
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": load, "model_id": model["id"], "stream_id": "s"})
    assert created.status_code == 201, created.text
    stored = _means(client.get("/v1/streams/s/forecast?horizon=24", headers=auth))
    assert_problem(client.get("/v1/streams/s/forecast?horizon=25", headers=auth), 422, "horizon")
    # A warmer temperature forecast, stored over the old one, moves the stream's forecast.
    stamps = pd.date_range("2024-01-01", periods=LOAD_HOURS + 24, freq="h")
    weather = load_weather()
    warmer = {"readings": [{"ts": t.isoformat(), "value": float(w + 15)}
                           for t, w in zip(stamps[LOAD_HOURS:], weather[LOAD_HOURS:], strict=True)]}
    assert client.post(f"/v1/series/{temperature}/readings?on_conflict=replace", json=warmer,
                       headers=auth).status_code == 200
    moved = _means(client.get("/v1/streams/s/forecast?horizon=24", headers=auth))
    assert np.abs(moved - stored).max() > 1e-3
    # Readings through the last stored temperature, then one past it: that one is stepped with
    # its temperature masked (no value, flag off), as the numpy forecaster steps a NaN.
    hours = range(LOAD_HOURS, LOAD_HOURS + 25)
    posted = client.post("/v1/streams/s/readings", headers=auth, json={"readings": [
        {"ts": (stamps[0] + pd.Timedelta(hours=h)).isoformat(), "value": 100.0 + 2 * 15}
        for h in hours[:-1]]})
    assert posted.status_code == 200, posted.text
    before = client.get("/v1/streams/s/state", headers=auth).json()["state"]
    last = stamps[0] + pd.Timedelta(hours=hours[-1])
    posted = client.post("/v1/streams/s/readings", headers=auth, json={"readings": [
        {"ts": last.isoformat(), "value": 131.0}]})
    assert posted.status_code == 200, posted.text
    after = client.get("/v1/streams/s/state", headers=auth).json()["state"]
    forecaster = Forecaster.load(model_path(settings.model_dir, model["id"]))
    grid = pd.date_range(last, periods=1 + 24, freq="h")

    def stepped(value_then: float) -> dict[str, Any]:
        track = forecaster.covariate_track(
            grid.asi8, {"temperature": np.r_[value_then, np.full(24, np.nan)]})
        return forecaster.warm(np.array([131.0]), pd.DatetimeIndex([last]), before,
                               network_covariates=track)

    np.testing.assert_allclose(after["network"], stepped(np.nan)["network"], atol=1e-9)
    carried = stepped(float(weather[-1] + 15))["network"]  # the last value carried forward
    assert np.abs(np.array(after["network"]) - np.array(carried)).max() > 1e-6
    # Its forecast needs the temperature ahead, which is not stored: refused, never filled.
    assert_problem(client.get("/v1/streams/s/forecast?horizon=1", headers=auth), 422, "horizon")
