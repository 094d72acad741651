"""Forecasts and covariates on both databases: the inline body's checks, a model trained with a
temperature covariate and US holidays served from stored or inline temperature, the 422 past
what the covariate covers, and the fallback to a model without covariates."""

import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.ml.calendar import CalendarSpec, SpecialDay
from app.ml.data import SeriesData
from app.ml.forecaster import Forecaster
from app.ml.spec import ModelSpec
from tests.api.helpers import assert_problem, count_rows
from tests.server import ServerProcess
from tests.streams.conftest import (
    SERIES_NAME,
    artifacts,
    hourly_values,
    install_model,
    load_series,
    upload,
)

__all__ = ["artifacts"]


@pytest.fixture
def plain(client: TestClient, auth: dict[str, str], settings: Settings,
          artifacts: dict[str, Path]) -> dict[str, int]:
    """The series with a temperature covariate linked, and a model that reads no covariates."""
    series_id = load_series(client, auth, 300)
    temperature = client.post("/v1/series", headers=auth,
                              json={"name": "temperature", "freq": "h"}).json()["id"]
    assert client.patch(f"/v1/series/{series_id}", headers=auth, json={"covariates": [
        {"series_id": temperature, "name": "temperature"}]}).status_code == 200
    model_id = install_model(settings, artifacts["gru_window"], series_id)
    return {"series": series_id, "model": model_id}


def post(client: TestClient, auth: dict[str, str], series_id: int, body: Any) -> Any:
    # json.dumps writes NaN as JSON's common extension does, as a careless client would.
    return client.post(f"/v1/series/{series_id}/forecast", content=json.dumps(body),
                       headers={**auth, "Content-Type": "application/json"})


def test_a_model_without_covariates_says_so_and_post_equals_get(
        client: TestClient, auth: dict[str, str], plain: dict[str, int]) -> None:
    got = client.get(f"/v1/series/{plain['series']}/forecast?horizon=4&level=80", headers=auth)
    assert got.status_code == 200, got.text
    posted = post(client, auth, plain["series"], {"horizon": 4, "level": [80]})
    assert posted.status_code == 200, posted.text
    assert posted.json() == got.json()
    body = got.json()
    assert (body["model_id"], body["mode"], body["covariates"]) == (
        plain["model"], "no_covariates", [])
    assert len(body["points"]) == 4
    fallback = client.get(f"/v1/series/{plain['series']}/forecast?horizon=4&level=80"
                          "&fallback=no_covariates", headers=auth)
    assert fallback.json() == body


@pytest.mark.parametrize("covariates,field", [
    ({"temperature": [1.0, 2.0, 3.0, 4.0]}, "covariates.temperature"),
    ({"temperature": [1.0, math.nan, 3.0, 4.0]}, "covariates.temperature.1"),
    ({"temperature": [1.0, None, 3.0, 4.0]}, "covariates.temperature.1"),
    ({"temperature": [1.0, 1e300, 3.0, 4.0]}, "covariates.temperature.1"),
    ({"air temperature": [1.0]}, "covariates.air temperature.[key]"),
    ({"temperature": "warm"}, "covariates.temperature"),
])
def test_bad_inline_covariates_are_422_naming_the_field(
        client: TestClient, auth: dict[str, str], plain: dict[str, int],
        covariates: dict[str, Any], field: str) -> None:
    problem = assert_problem(post(client, auth, plain["series"],
                                  {"horizon": 4, "covariates": covariates}), 422, field)
    assert problem["errors"][0]["field"] == field


@pytest.mark.parametrize("body,field", [
    ({"horizon": 0}, "horizon"),
    ({"horizon": 4, "fallback": "anything"}, "fallback"),
    ({"horizon": 4, "level": []}, "level"),
    ({"horizon": 4, "model_id": 0}, "model_id"),
    ({"horizon": 4, "weather": {}}, "weather"),
])
def test_bad_forecast_bodies_are_422(client: TestClient, auth: dict[str, str],
                                     plain: dict[str, int], body: dict[str, Any],
                                     field: str) -> None:
    assert_problem(post(client, auth, plain["series"], body), 422, field)


def test_inline_forecast_of_another_tenants_series_is_404(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        plain: dict[str, int]) -> None:
    assert_problem(post(client, other_auth, plain["series"], {"horizon": 4}), 404)


# --- a model trained with a temperature covariate and US holidays --------------------------

WARM = 24 * 21  # hourly readings of load stored, and trained on
AHEAD = 24  # hours of temperature stored past the last load reading (its "forecast")


def temperature_values(n: int) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(7)
    return 10 + 6 * np.sin(2 * np.pi * (t - 6) / 24) + np.cumsum(rng.normal(0, 0.3, n))


def train_on_weather(spec: ModelSpec, directory: Path) -> Path:
    """A tiny model (few epochs) trained on load that follows temperature, saved."""
    from app.ml.artifacts import save_artifacts
    from app.ml.training import train

    stamps, values = hourly_values(WARM)
    temperature = temperature_values(WARM)
    data = SeriesData(values=values + 2.0 * temperature, timestamps=stamps, freq="h",
                      name=SERIES_NAME, covariates={"temperature": temperature},
                      calendar=CalendarSpec("US"))
    trained = train(spec, [data])
    assert trained.features.covariates == ("temperature",)
    return save_artifacts(trained, directory / "model")


@pytest.fixture(scope="module")
def covariate_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stream model trained on load that follows temperature."""
    spec = ModelSpec(cell="gru", stateful=True, horizon=4, chunk=12, units=6, epochs=2,
                     batch_size=4, seed=3, window=12)
    return train_on_weather(spec, tmp_path_factory.mktemp("covariate"))


@pytest.fixture
def with_weather(client: TestClient, auth: dict[str, str], settings: Settings,
                 covariate_artifact: Path, artifacts: dict[str, Path]) -> dict[str, int]:
    """The load series (linked to temperature, US holidays), its covariate model, and a
    temperature series stored AHEAD hours past the last load reading."""
    temperature = client.post("/v1/series", headers=auth,
                              json={"name": "temperature", "freq": "h"}).json()["id"]
    stamps, values = hourly_values(WARM + AHEAD)
    weather = temperature_values(WARM + AHEAD)
    upload(client, auth, temperature, stamps, weather)
    load = client.post("/v1/series", headers=auth, json={
        "name": SERIES_NAME, "freq": "h", "holidays": "US",
        "covariates": [{"series_id": temperature, "name": "temperature"}]}).json()["id"]
    upload(client, auth, load, stamps[:WARM], (values + 2.0 * weather)[:WARM])
    model = install_model(settings, covariate_artifact, load)
    return {"series": load, "temperature": temperature, "model": model}


def means(answer: Any) -> np.ndarray:
    return np.array([p["mean"] for p in answer.json()["points"]])


def forecast(client: TestClient, auth: dict[str, str], series_id: int, **params: Any) -> Any:
    return client.get(f"/v1/series/{series_id}/forecast", params={"level": 80, **params},
                      headers=auth)


def test_a_covariate_model_reads_the_stored_temperature_forecast(
        client: TestClient, auth: dict[str, str], with_weather: dict[str, int]) -> None:
    answer = forecast(client, auth, with_weather["series"], horizon=AHEAD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_id"], body["mode"], body["covariates"]) == (
        with_weather["model"], "covariates", ["temperature"])
    assert len(body["points"]) == AHEAD
    # The same values inline give the same forecast; other values another one.
    stored = temperature_values(WARM + AHEAD)[WARM:].tolist()
    same = post(client, auth, with_weather["series"], {
        "horizon": AHEAD, "level": [80], "covariates": {"temperature": stored}})
    assert same.status_code == 200, same.text
    # (to rounding: the first forecast warmed the state the later ones start from)
    np.testing.assert_allclose(means(same), means(answer), rtol=1e-12)
    warmer = post(client, auth, with_weather["series"], {
        "horizon": AHEAD, "level": [80], "covariates": {"temperature": [v + 15 for v in stored]}})
    assert warmer.status_code == 200, warmer.text
    assert np.abs(means(warmer) - means(answer)).max() > 1e-3
    # A newer temperature forecast, stored with on_conflict=replace, is what the next one reads.
    stamps, _ = hourly_values(WARM + AHEAD)
    newer = {"readings": [{"ts": t.isoformat(), "value": v + 15}
                          for t, v in zip(stamps[WARM:], stored, strict=True)]}
    assert client.post(f"/v1/series/{with_weather['temperature']}/readings?on_conflict=replace",
                       json=newer, headers=auth).status_code == 200
    np.testing.assert_allclose(means(forecast(client, auth, with_weather["series"],
                                              horizon=AHEAD)), means(warmer), rtol=1e-12)


def test_a_horizon_past_the_covariate_is_422_naming_it_and_its_last_time(
        client: TestClient, auth: dict[str, str], settings: Settings,
        with_weather: dict[str, int], artifacts: dict[str, Path]) -> None:
    problem = assert_problem(forecast(client, auth, with_weather["series"], horizon=AHEAD + 1),
                             422, "horizon")
    last = hourly_values(WARM + AHEAD)[0][-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert problem["errors"][0]["covariate"] == "temperature"
    assert problem["errors"][0]["covered_until"] == last
    assert "'temperature'" in problem["detail"] and last in problem["detail"]
    # Inline values of the wrong length name the field.
    assert_problem(post(client, auth, with_weather["series"], {
        "horizon": 4, "covariates": {"temperature": [1.0, 2.0]}}), 422, "covariates.temperature")
    # No model without covariates to fall back on: 409 naming the fallback.
    assert_problem(forecast(client, auth, with_weather["series"], horizon=AHEAD + 1,
                            fallback="no_covariates"), 409, "fallback")
    plain = install_model(settings, artifacts["gru_window"], with_weather["series"])
    # The covariate model stays the series' default; the newer plain one is the fallback.
    assert client.post(f"/v1/models/{with_weather['model']}/promote",
                       headers=auth).status_code == 200
    served = forecast(client, auth, with_weather["series"], horizon=AHEAD + 1,
                      fallback="no_covariates")
    assert served.status_code == 200, served.text
    body = served.json()
    assert (body["model_id"], body["mode"], body["covariates"]) == (plain, "no_covariates", [])
    assert "fallback=no_covariates" in body["warning"] and "'temperature'" in body["warning"]
    assert len(body["points"]) == AHEAD + 1


def test_an_unlinked_covariate_is_409_for_its_model(
        client: TestClient, auth: dict[str, str], with_weather: dict[str, int]) -> None:
    assert client.patch(f"/v1/series/{with_weather['series']}", headers=auth,
                        json={"covariates": []}).status_code == 200
    assert_problem(forecast(client, auth, with_weather["series"], horizon=4), 409, "model_id")


def stream_state(client: TestClient, auth: dict[str, str], name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/streams/{name}/state", headers=auth).json()
    return body["state"]


def post_hour(client: Any, auth: dict[str, str], name: str, i: int) -> Any:
    stamps, values = hourly_values(WARM + AHEAD)
    load = values + 2.0 * temperature_values(WARM + AHEAD)
    return client.post(f"/v1/streams/{name}/readings", headers=auth, json={
        "readings": [{"ts": stamps[i].isoformat(), "value": float(load[i])}]})


def test_a_stream_on_a_covariate_model_steps_with_the_covariate_at_each_reading(
        client: TestClient, auth: dict[str, str], with_weather: dict[str, int],
        covariate_artifact: Path) -> None:
    """Each reading is stepped with the temperature stored at its time, and the stream's
    forecast reads the stored temperature ahead, as the series' forecast does."""
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": with_weather["series"], "stream_id": "m1"})
    assert created.status_code == 201, created.text
    stream = client.get("/v1/streams/m1/forecast", params={"horizon": 4}, headers=auth)
    assert stream.status_code == 200, stream.text
    assert np.allclose(means(stream), means(forecast(client, auth, with_weather["series"],
                                                     horizon=4)), atol=1e-6)
    start = stream_state(client, auth, "m1")
    live = 3
    for i in range(WARM, WARM + live):
        assert post_hour(client, auth, "m1", i).status_code == 200
    # The same steps taken in the ML core over the true temperature and the series' calendar.
    forecaster = Forecaster.load(covariate_artifact)
    stamps, values = hourly_values(WARM + AHEAD)
    weather = temperature_values(WARM + AHEAD)
    source = forecaster.profile_source(stamps.asi8, {"temperature": weather},
                                       CalendarSpec("US"), series=SERIES_NAME)
    load = values + 2.0 * weather
    expected = forecaster.warm(load[WARM:WARM + live], stamps[WARM:WARM + live], start,
                               seasonal=source)
    state = stream_state(client, auth, "m1")
    assert np.allclose(state["network"], expected["network"], atol=1e-9)
    ahead = forecaster.forecast_from_state(expected, 4, (80,), seasonal=source)
    answer = client.get("/v1/streams/m1/forecast", params={"horizon": 4, "level": 80},
                        headers=auth)
    assert np.allclose(means(answer), ahead.mean, atol=1e-6)
    # The series' forecast, warmed over the same readings and temperature, agrees; so does a
    # reading posted among others (the bulk endpoint).
    assert np.allclose(means(answer), means(forecast(client, auth, with_weather["series"],
                                                     horizon=4)), atol=1e-6)
    stamps_, _ = hourly_values(WARM + AHEAD)
    bulk = client.post("/v1/streams/readings", headers=auth, json={"readings": [
        {"stream_id": "m1", "ts": stamps_[WARM + live].isoformat(),
         "value": float(load[WARM + live])}]})
    assert bulk.status_code == 200 and bulk.json()["streams"][0]["status"] == "applied"
    live += 1
    state = stream_state(client, auth, "m1")
    # Past the stored temperature, the stream's forecast is refused as the series' is.
    too_far = AHEAD - live + 1
    problem = assert_problem(client.get("/v1/streams/m1/forecast", headers=auth,
                                        params={"horizon": too_far}), 422, "horizon")
    assert "'temperature'" in problem["detail"]
    # A post asking for that forecast is refused whole: its reading is not applied.
    stamps_, _ = hourly_values(WARM + AHEAD)
    refused = client.post("/v1/streams/m1/readings", headers=auth, params={"horizon": too_far},
                          json={"readings": [{"ts": stamps_[WARM + live].isoformat(),
                                              "value": float(load[WARM + live])}]})
    assert_problem(refused, 422, "horizon")
    assert stream_state(client, auth, "m1") == state


def test_a_covariate_stream_whose_covariate_was_unlinked_is_refused_and_stores_nothing(
        client: TestClient, auth: dict[str, str], settings: Settings,
        with_weather: dict[str, int]) -> None:
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": with_weather["series"], "stream_id": "m1"})
    assert created.status_code == 201, created.text
    assert client.patch(f"/v1/series/{with_weather['series']}", headers=auth,
                        json={"covariates": []}).status_code == 200
    stored = count_rows(settings.database_url, "readings")
    problem = assert_problem(post_hour(client, auth, "m1", WARM), 409, "model_id")
    assert "'temperature'" in problem["detail"]
    stamps, _ = hourly_values(WARM + 1)
    bulk = client.post("/v1/streams/readings", headers=auth, json={"readings": [
        {"stream_id": "m1", "ts": stamps[WARM].isoformat(), "value": 1.0}]})
    assert bulk.json()["streams"][0]["error"]["status"] == 409
    assert count_rows(settings.database_url, "readings") == stored


def test_a_calendar_patched_between_posts_is_what_the_next_post_steps_with(
        client: TestClient, auth: dict[str, str], with_weather: dict[str, int],
        covariate_artifact: Path) -> None:
    """The series' calendar comes with the stream's locked row and keys the profile kept in the
    process: a special day added by PATCH is what the next post reads, not the profile kept
    (two days ahead) by the post before it."""
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": with_weather["series"], "stream_id": "m1"})
    assert created.status_code == 201, created.text
    start = stream_state(client, auth, "m1")
    assert post_hour(client, auth, "m1", WARM).status_code == 200
    stamps, values = hourly_values(WARM + AHEAD)
    shutdown = SpecialDay(stamps[WARM + 1].date(), "plant shutdown")  # a Monday
    patched = client.patch(f"/v1/series/{with_weather['series']}", headers=auth, json={
        "special_days": [{"date": shutdown.date.isoformat(), "label": shutdown.label}]})
    assert patched.status_code == 200, patched.text
    assert post_hour(client, auth, "m1", WARM + 1).status_code == 200
    forecaster = Forecaster.load(covariate_artifact)
    weather = temperature_values(WARM + AHEAD)
    load = values + 2.0 * weather

    def stepped(calendars: list[CalendarSpec]) -> Any:
        state = start
        for i, calendar in enumerate(calendars):
            source = forecaster.profile_source(stamps.asi8, {"temperature": weather}, calendar,
                                               series=SERIES_NAME)
            at = slice(WARM + i, WARM + i + 1)
            state = forecaster.warm(load[at], stamps[at], state, seasonal=source)
        return state

    network = stream_state(client, auth, "m1")["network"]
    assert np.allclose(network, stepped([CalendarSpec("US"), CalendarSpec(
        "US", (shutdown,))])["network"], atol=1e-9)
    assert not np.allclose(network, stepped([CalendarSpec("US")] * 2)["network"], atol=1e-6)


@pytest.fixture(scope="module")
def covariate_window_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny window model trained on load that follows temperature."""
    spec = ModelSpec(cell="gru", stateful=False, horizon=4, units=6, epochs=2, batch_size=4,
                     seed=3, window=12)
    return train_on_weather(spec, tmp_path_factory.mktemp("covariate_window"))


def test_a_stream_on_a_covariate_window_model_forecasts_as_the_series_does(
        client: TestClient, auth: dict[str, str], settings: Settings,
        with_weather: dict[str, int], covariate_window_artifact: Path) -> None:
    assert Forecaster.load(covariate_window_artifact).uses_profile
    model = install_model(settings, covariate_window_artifact, with_weather["series"])
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": with_weather["series"], "stream_id": "w", "model_id": model})
    assert created.status_code == 201, created.text
    for i in range(WARM, WARM + 2):
        posted = post_hour(client, auth, "w", i)
        assert posted.status_code == 200, posted.text
    answer = client.get("/v1/streams/w/forecast", params={"horizon": 6}, headers=auth)
    assert answer.status_code == 200, answer.text
    assert np.allclose(means(answer), means(forecast(
        client, auth, with_weather["series"], horizon=6, model_id=model)), atol=1e-6)


@pytest.mark.slow
def test_a_covariate_stream_survives_sigkill_with_an_unchanged_forecast(
        client: TestClient, auth: dict[str, str], settings: Settings,
        with_weather: dict[str, int], tmp_path: Path) -> None:
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": with_weather["series"], "stream_id": "m1"})
    assert created.status_code == 201, created.text
    server = ServerProcess(settings, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in range(WARM, WARM + 3):
                assert post_hour(http, auth, "m1", i).status_code == 200
            before = http.get("/v1/streams/m1/forecast", params={"horizon": 8}, headers=auth)
            assert before.status_code == 200, before.text
        server.kill()
        server = ServerProcess(settings, tmp_path / "serve.log")
        with httpx.Client(base_url=server.url, timeout=30) as http:
            after = http.get("/v1/streams/m1/forecast", params={"horizon": 8}, headers=auth)
            assert after.status_code == 200, after.text
            assert after.json()["points"] == before.json()["points"]
            assert post_hour(http, auth, "m1", WARM + 3).status_code == 200
    finally:
        server.stop()


def replace_temperature(http: Any, auth: dict[str, str], temperature: int, first: int,
                        weather: np.ndarray) -> None:
    """Store `weather` from hour `first` on as the temperature's newer forecast, replacing."""
    stamps, _ = hourly_values(WARM + AHEAD)
    newer = {"readings": [{"ts": stamps[i].isoformat(), "value": float(weather[i])}
                          for i in range(first, WARM + AHEAD)]}
    replaced = http.post(f"/v1/series/{temperature}/readings?on_conflict=replace", json=newer,
                         headers=auth)
    assert replaced.status_code == 200, replaced.text


@pytest.mark.slow
def test_a_temperature_replaced_in_one_process_is_what_the_next_post_in_another_reads(
        client: TestClient, auth: dict[str, str], settings: Settings,
        with_weather: dict[str, int], covariate_artifact: Path, tmp_path: Path) -> None:
    """Two processes on one database each keep the temperature after a post; each replace of
    it, sent to the other process, is what the next post reads: never the values kept before."""
    created = client.post("/v1/streams", headers=auth, json={
        "series_id": with_weather["series"], "stream_id": "m1"})
    assert created.status_code == 201, created.text
    start = stream_state(client, auth, "m1")
    weather = temperature_values(WARM + AHEAD)
    # The temperature each post reads: as uploaded, then 15 degrees warmer from the third post's
    # hour on (replaced through this process), then 30 colder (through the server process).
    read = [weather, weather, weather.copy(), weather.copy()]
    read[2][WARM + 2:] += 15
    read[3][WARM + 2:] += 15
    read[3][WARM + 3:] -= 30
    temperature = with_weather["temperature"]
    server = ServerProcess(settings, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert post_hour(http, auth, "m1", WARM).status_code == 200
            assert post_hour(client, auth, "m1", WARM + 1).status_code == 200
            replace_temperature(client, auth, temperature, WARM + 2, read[2])
            assert post_hour(http, auth, "m1", WARM + 2).status_code == 200
            replace_temperature(http, auth, temperature, WARM + 3, read[3])
            assert post_hour(client, auth, "m1", WARM + 3).status_code == 200
    finally:
        server.stop()
    forecaster = Forecaster.load(covariate_artifact)
    stamps, values = hourly_values(WARM + AHEAD)
    load = values + 2.0 * weather

    def stepped(temperatures: list[np.ndarray]) -> Any:
        state = start
        for i, temperature_then in enumerate(temperatures):
            source = forecaster.profile_source(stamps.asi8, {"temperature": temperature_then},
                                               CalendarSpec("US"), series=SERIES_NAME)
            at = slice(WARM + i, WARM + i + 1)
            state = forecaster.warm(load[at], stamps[at], state, seasonal=source)
        return state

    network = stream_state(client, auth, "m1")["network"]
    assert np.allclose(network, stepped(read)["network"], atol=1e-9)
    # ... which the values kept before the replaces would not have given.
    assert not np.allclose(network, stepped([weather] * 4)["network"], atol=1e-6)
    assert not np.allclose(network, stepped([*read[:3], read[2]])["network"], atol=1e-6)
