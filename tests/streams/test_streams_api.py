"""Streams through the HTTP API: ground truth against Keras, exactly-once, gaps, models."""

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.config import Settings
from app.ml.artifacts import KERAS_FILE, load_meta
from app.ml.features import FeatureConfig, calendar
from app.ml.forecaster import Forecaster
from app.ml.spec import ResolvedSpec
from app.ml.stream_seasonal import NO_SEASON, boundaries, change_inputs, seasonal_ahead, seasonal_at
from app.ml.stream_state import decode, to_json
from tests.api.helpers import assert_problem, count_rows
from tests.streams.conftest import (
    fits_made_ahead,
    hourly_values,
    install_model,
    load_series,
    streams_on_the_series,
)

WARM = 300


def keras_stateful_forecasts(artifact: Path, values: np.ndarray, stamps: object) -> np.ndarray:
    """The trained network rebuilt with stateful layers, fed one reading per call from zero."""
    import keras

    from app.ml.architectures import build_network

    meta = load_meta(artifact)
    spec = ResolvedSpec.from_dict(meta["spec"])
    features = FeatureConfig.from_dict(meta["features"])
    scale = float(meta["scales"]["load"])
    trained = keras.saving.load_model(artifact / KERAS_FILE, compile=False)
    stepper = build_network(spec, features.n_inputs, batch_size=1, stateful=True)
    stepper.set_weights(trained.get_weights())
    # Each reading minus the seasonal fit made before its day (none for a raw stream model).
    forecaster = Forecaster.load(artifact)
    source = forecaster.history_seasonal(values, stamps) if forecaster.needs_seasonal else NO_SEASON
    step = stamps[1] - stamps[0]  # type: ignore[index]
    seasonal, _ = seasonal_at(source, stamps, boundaries(stamps, spec.steps_per_day), step)
    ahead, _ = seasonal_ahead(source, stamps, step, spec.horizon, spec.steps_per_day)
    z = values - seasonal
    x = np.concatenate([change_inputs(z, scale, None)[:, None], calendar(stamps, features)], axis=1)
    outputs = [np.asarray(stepper(x[None, i:i + 1].astype(np.float32), training=False))[0, -1]
               for i in range(len(x))]
    return values[:, None] + ahead + scale * np.array(outputs, dtype=np.float64)


def post(client: TestClient, auth: dict[str, str], stream: str, readings: list[tuple[str, float]],
         query: str = "") -> object:
    return client.post(f"/v1/streams/{stream}/readings{query}", headers=auth,
                       json={"readings": [{"ts": t, "value": v} for t, v in readings]})


def test_streaming_one_reading_at_a_time_matches_keras(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path]) -> None:
    sid = load_series(client, auth, WARM)
    install_model(settings, artifacts["lstm_stateful"], sid)
    created = client.post("/v1/streams", json={"series_id": sid, "stream_id": "meter-1"},
                          headers=auth)
    assert created.status_code == 201, created.text
    stamps, values = hourly_values()
    n = WARM + 40
    expected = keras_stateful_forecasts(artifacts["lstm_stateful"], values[:n], stamps[:n])
    for i in range(WARM, n):
        fits_made_ahead(settings)  # as the workers keep ahead of the stream's days
        response = post(client, auth, "meter-1", [(stamps[i].isoformat(), float(values[i]))],
                        "?horizon=3")
        assert response.status_code == 200, response.text  # type: ignore[attr-defined]
        got = [p["mean"] for p in response.json()["forecast"]]  # type: ignore[attr-defined]
        np.testing.assert_allclose(got, expected[i], rtol=1e-4)
    detail = client.get("/v1/streams/meter-1", headers=auth).json()
    assert detail["readings_applied"] == 40 and detail["accuracy"]["judged"] == 40
    assert 0 <= detail["accuracy"]["coverage_95"] <= 1
    assert count_rows(settings.database_url, "readings") == n


def test_window_model_stream_and_series_forecast(client: TestClient, auth: dict[str, str],
                                                 settings: Settings,
                                                 artifacts: dict[str, Path]) -> None:
    sid = load_series(client, auth, WARM)
    model_id = install_model(settings, artifacts["gru_window"], sid)
    forecast = client.get(f"/v1/series/{sid}/forecast?horizon=96&level=80&level=95",
                          headers=auth).json()
    assert forecast["model_id"] == model_id and len(forecast["points"]) == 96
    first = forecast["points"][0]
    stamps, values = hourly_values()
    assert first["ts"] == stamps[WARM].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["lower_95"] < first["lower_80"] < first["mean"] < first["upper_80"] < \
        first["upper_95"]
    # Changing a reading inside the last window must change the forecast: no stale state.
    changed = {"readings": [{"ts": stamps[WARM - 2].isoformat(), "value": 500.0}]}
    assert client.post(f"/v1/series/{sid}/readings?on_conflict=replace", json=changed,
                       headers=auth).status_code == 200
    moved = client.get(f"/v1/series/{sid}/forecast?horizon=96", headers=auth).json()
    assert moved["points"][0]["mean"] != forecast["points"][0]["mean"]
    restore = {"readings": [{"ts": stamps[WARM - 2].isoformat(), "value": float(values[WARM - 2])}]}
    client.post(f"/v1/series/{sid}/readings?on_conflict=replace", json=restore, headers=auth)
    client.post("/v1/streams", json={"series_id": sid, "stream_id": "w"}, headers=auth)
    stream_forecast = client.get("/v1/streams/w/forecast?horizon=96", headers=auth).json()
    np.testing.assert_allclose([p["mean"] for p in stream_forecast["points"]],
                               [p["mean"] for p in forecast["points"]], rtol=1e-9)
    response = post(client, auth, "w", [(stamps[WARM].isoformat(), float(values[WARM]))])
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    again = client.get(f"/v1/series/{sid}/forecast?horizon=2", headers=auth).json()
    assert again["points"][0]["ts"] == stamps[WARM + 1].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert_problem(client.get(f"/v1/series/{sid}/forecast?level=42", headers=auth), 422, "level")
    assert_problem(client.get(f"/v1/series/{sid}/forecast?horizon=0", headers=auth), 422,
                   "query.horizon")


def test_exactly_once_order_and_gaps(client: TestClient, auth: dict[str, str],
                                     settings: Settings, artifacts: dict[str, Path]) -> None:
    sid = load_series(client, auth, WARM)
    install_model(settings, artifacts["lstm_stateful"], sid)
    client.post("/v1/streams", json={"series_id": sid, "stream_id": "s"}, headers=auth)
    stamps, values = hourly_values()
    t0, v0 = stamps[WARM].isoformat(), float(values[WARM])
    assert post(client, auth, "s", [(t0, v0)]).json()["applied"] == [  # type: ignore
        stamps[WARM].strftime("%Y-%m-%dT%H:%M:%SZ")]
    state = client.get("/v1/streams/s/state", headers=auth).json()
    again = post(client, auth, "s", [(t0, v0)]).json()  # type: ignore[attr-defined]
    assert again["applied"] == [] and len(again["duplicates"]) == 1
    assert client.get("/v1/streams/s/state", headers=auth).json() == state
    problem = assert_problem(post(client, auth, "s", [(t0, v0 + 1)]), 409)
    assert problem["last_ts"].startswith(stamps[WARM].strftime("%Y-%m-%dT%H:%M"))
    assert_problem(post(client, auth, "s", [(stamps[WARM - 5].isoformat() + "x", 1.0)]), 422)
    assert_problem(post(client, auth, "s", [(stamps[WARM + 1].isoformat()[:-5] + "30:00",
                                             1.0)]), 422, "readings[0].ts")
    nan = '{"readings": [{"ts": "' + stamps[WARM + 1].isoformat() + '", "value": NaN}]}'
    assert_problem(client.post("/v1/streams/s/readings", content=nan.encode(),
                               headers={**auth, "Content-Type": "application/json"}), 422)
    # A gap of 3 steps is filled by the model and said so; one past max_gap is refused.
    filled = post(client, auth, "s", [(stamps[WARM + 4].isoformat(), float(values[WARM + 4]))])
    assert len(filled.json()["filled"]) == 3  # type: ignore[attr-defined]
    readings_before = count_rows(settings.database_url, "readings")
    far = WARM + 6 + settings.stream_max_gap
    assert_problem(post(client, auth, "s", [(stamps[far].isoformat(), 1.0)]), 422,
                   "readings[0].ts")
    assert count_rows(settings.database_url, "readings") == readings_before
    rewarmed = post(client, auth, "s", [(stamps[far].isoformat(), 1.0)], "?rewarm=true").json()  # type: ignore
    assert rewarmed["rewarmed"] and rewarmed["applied"]


def test_streams_follow_the_default_model_and_pins_hold(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, artifacts: dict[str, Path]) -> None:
    sid = load_series(client, auth, WARM)
    assert_problem(client.post("/v1/streams", json={"series_id": sid}, headers=auth), 409)
    first = install_model(settings, artifacts["lstm_stateful"], sid)
    follower = client.post("/v1/streams", json={"series_id": sid}, headers=auth).json()
    pinned = client.post("/v1/streams", json={"series_id": sid, "model_id": first,
                                              "stream_id": "pinned"}, headers=auth).json()
    assert follower["model_id"] == first and pinned["pinned"]
    assert_problem(client.get(f"/v1/streams/{follower['id']}", headers=other_auth), 404)
    assert_problem(client.post("/v1/streams", json={"series_id": sid, "stream_id": "pinned"},
                               headers=auth), 409, "stream_id")
    second = install_model(settings, artifacts["gru_window"], sid)
    stamps, values = hourly_values()
    reading = [(stamps[WARM].isoformat(), float(values[WARM]))]
    answer = post(client, auth, follower["id"], reading).json()  # type: ignore[attr-defined]
    assert answer["rewarmed"] and str(second) in answer["rewarmed"]
    assert client.get(f"/v1/streams/{follower['id']}", headers=auth).json()["model_id"] == second
    assert post(client, auth, "pinned", reading).json()["rewarmed"] is None  # type: ignore
    assert client.delete(f"/v1/models/{first}", headers=auth).status_code == 204
    assert_problem(post(client, auth, "pinned", [(stamps[WARM + 1].isoformat(), 1.0)]), 409)
    reset = client.post(f"/v1/streams/pinned/reset?model_id={second}", headers=auth)
    assert reset.status_code == 200 and reset.json()["model_id"] == second
    assert client.delete("/v1/streams/pinned", headers=auth).status_code == 204
    assert_problem(client.get("/v1/streams/pinned", headers=auth), 404)
    listed = client.get(f"/v1/streams?series_id={sid}", headers=auth).json()
    assert listed["count"] == 1


def test_stream_model_forecast_is_the_forecasters_from_the_stored_state(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path]) -> None:
    """GET /v1/streams/{id}/forecast rolls the stored state out against the stored seasonal
    fit (read, then read back parsed from the process' cache): what the forecaster gives."""
    sid = load_series(client, auth, WARM)
    model_id = install_model(settings, artifacts["lstm_stateful"], sid)
    stamps, values = hourly_values()
    client.post("/v1/streams", json={"series_id": sid, "stream_id": "s"}, headers=auth)
    n = WARM + 12  # the last reading closes a day: the forecast reads the next day's fit
    assert stamps[n].hour == 0
    for i in range(WARM, n):
        if stamps[i].hour == 21:  # the readings the next day's fit reads are in (FIT_LEAD_S)
            fits_made_ahead(settings)  # that fit, made ahead by the workers
        response = post(client, auth, "s", [(stamps[i].isoformat(), float(values[i]))])
        assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    state = client.get("/v1/streams/s/state", headers=auth).json()["state"]
    forecaster = Forecaster.load(artifacts["lstm_stateful"])
    source = forecaster.history_seasonal(values[:n], stamps[:n])
    want = forecaster.forecast_from_state(state, 30, (80, 95), seasonal=source)
    for _ in range(2):
        answer = client.get("/v1/streams/s/forecast?horizon=30", headers=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["stream_id"] == "s" and body["model_id"] == model_id
        points = body["points"]
        assert [p["ts"] for p in points] == [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in stamps[n:n + 30]]
        np.testing.assert_allclose([p["mean"] for p in points], want.mean, rtol=1e-9)
        for level in (80, 95):
            np.testing.assert_allclose([p[f"lower_{level}"] for p in points], want.lower[level], rtol=1e-9)
            np.testing.assert_allclose([p[f"upper_{level}"] for p in points], want.upper[level], rtol=1e-9)
    only_80 = client.get("/v1/streams/s/forecast?horizon=2&level=80", headers=auth).json()["points"]
    assert set(only_80[0]) == {"ts", "mean", "lower_80", "upper_80"}
    assert_problem(client.get("/v1/streams/s/forecast?level=42", headers=auth), 422, "level")
    assert_problem(client.get("/v1/streams/s/forecast", headers=other_auth), 404)
    assert_problem(client.get("/v1/streams/nope/forecast", headers=auth), 404)
    assert client.delete(f"/v1/models/{model_id}", headers=auth).status_code == 204
    assert_problem(client.get("/v1/streams/s/forecast", headers=auth), 409)


@pytest.mark.parametrize("body,field", [
    ({"series_id": 999}, None), ({"series_id": "x"}, "series_id"),
    ({"series_id": 1, "stream_id": "has space"}, "stream_id"),
])
def test_bad_stream_creation(client: TestClient, auth: dict[str, str], body: dict[str, object],
                             field: str | None) -> None:
    response = client.post("/v1/streams", json=body, headers=auth)
    assert_problem(response, 404 if field is None else 422, field)


def test_window_model_stream_from_an_empty_series_fills_its_window_first(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path]) -> None:
    """Readings are stored and applied before the window is full; forecasts start after."""
    sid = load_series(client, auth, 0)
    install_model(settings, artifacts["gru_window"], sid)
    created = client.post("/v1/streams", json={"series_id": sid, "stream_id": "fresh"},
                          headers=auth)
    assert created.status_code == 201 and created.json()["next_forecast"] is None
    stamps, values = hourly_values()
    window = 12  # SPECS["gru_window"]
    first = post(client, auth, "fresh", [(stamps[i].isoformat(), float(values[i]))
                                         for i in range(window - 1)]).json()  # type: ignore
    assert len(first["applied"]) == window - 1 and first["forecast"] == []
    full = post(client, auth, "fresh", [(stamps[window - 1].isoformat(),
                                         float(values[window - 1]))]).json()  # type: ignore
    assert len(full["forecast"]) == 1
    assert count_rows(settings.database_url, "readings") == window


def test_stream_readings_follow_the_upload_rules(client: TestClient, auth: dict[str, str],
                                                 settings: Settings,
                                                 artifacts: dict[str, Path]) -> None:
    """A fractional second or a repeated timestamp is refused as an upload refuses it."""
    sid = load_series(client, auth, WARM)
    install_model(settings, artifacts["lstm_stateful"], sid)
    client.post("/v1/streams", json={"series_id": sid, "stream_id": "r"}, headers=auth)
    stamps, _ = hourly_values()
    t = stamps[WARM].isoformat()
    problem = assert_problem(post(client, auth, "r", [(t + ".5", 1.0)]), 422, "readings[0].ts")
    assert "whole seconds" in problem["detail"]
    problem = assert_problem(post(client, auth, "r", [(t, 1.0), (t, 1.0)]), 422, "readings[1].ts")
    assert "repeat" in problem["detail"]
    assert count_rows(settings.database_url, "readings") == WARM


def test_stream_rows_hold_only_the_state_and_share_one_seasonal_fit_a_day(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path]) -> None:
    """Two streams on one series: each row holds h, c and the last reading (no history), and the
    seasonal fits their readings are read against are made once per day and shared."""
    sid = streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"], ("a", "b"),
                                WARM)
    fits_after_warm = count_rows(settings.database_url, "seasonal_fits")
    days_warmed = len({t.floor("D") for t in hourly_values()[0][:WARM]})
    assert fits_after_warm == days_warmed  # one fit per day, made once for both streams
    stamps, values = hourly_values()
    for i in range(WARM, WARM + 30):  # across a midnight: one new fit, for both streams
        if stamps[i].hour == 21:  # the workers make the next day's fit, once for both streams
            fits_made_ahead(settings)
        for name in ("a", "b"):
            response = post(client, auth, name, [(stamps[i].isoformat(), float(values[i]))])
            assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    new_days = len({t.floor("D") for t in stamps[WARM:WARM + 31]}) - 1
    assert count_rows(settings.database_url, "seasonal_fits") == fits_after_warm + new_days
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT state, next_forecast, accuracy FROM streams")).all()
    engine.dispose()
    for stored, next_forecast, accuracy in rows:
        # The state is stored in its binary form (app.ml.stream_state), the rest as JSON.
        state = to_json(decode(stored))
        assert set(state) == {"kind", "series", "network", "last_value", "last_z",
                              "last_timestamp", "readings"}
        size = len(bytes(stored)) + sum(len(v if isinstance(v, str) else json.dumps(v))
                                        for v in (next_forecast, accuracy))
        assert size < 4096
    # A changed reading before a fit's day drops the fits that read it.
    changed = {"readings": [{"ts": stamps[WARM - 30].isoformat(), "value": 500.0}]}
    assert client.post(f"/v1/series/{sid}/readings?on_conflict=replace", json=changed,
                       headers=auth).status_code == 200
    assert count_rows(settings.database_url, "seasonal_fits") < fits_after_warm


def test_fits_older_than_four_weeks_before_a_new_one_are_dropped(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path]) -> None:
    """A fleet's fits would otherwise grow by ~8 KB per series and day, forever."""
    from app.db.engine import create_db_engine, create_session_factory, transaction
    from app.db.tables import Series
    from app.ml.seasonal import SeasonalCycles
    from app.streams.seasonal_fits import FIT_RETENTION_S, StoredSeasonal

    sid = streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"], ("a",), WARM)
    engine = create_db_engine(settings.database_url)
    with engine.connect() as connection:
        model_id, oldest, newest = connection.execute(text(
            "SELECT model_id, min(boundary_ts), max(boundary_ts) FROM seasonal_fits "
            "GROUP BY model_id")).one()
    later = oldest + FIT_RETENTION_S + 2 * 86_400  # keeps all but the two oldest days
    with transaction(create_session_factory(engine), write=True) as session:
        series = session.get(Series, sid)
        assert series is not None
        source = StoredSeasonal(session=session, series=series, model_id=model_id,
                                forecaster=Forecaster.load(artifacts["lstm_stateful"]))
        source._store(later, SeasonalCycles((np.zeros(24),)))
    with engine.connect() as connection:
        kept = [row[0] for row in connection.execute(text(
            "SELECT boundary_ts FROM seasonal_fits ORDER BY boundary_ts"))]
    engine.dispose()
    assert kept[0] == oldest + 2 * 86_400 and kept[-2] == newest and kept[-1] == later


def test_live_accuracy_sets_the_model_beside_persistence_and_the_seasonal_naive(
        client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path]) -> None:
    """A one-step forecast is judged like for like: against persistence (the reading one step
    earlier) as well as the seasonal naive, on the fast path (one reading a post) and the
    general one (several), and the answer names both baselines."""
    sid = load_series(client, auth, WARM)
    install_model(settings, artifacts["lstm_stateful"], sid)
    created = client.post("/v1/streams", json={"series_id": sid, "stream_id": "m"}, headers=auth)
    assert created.status_code == 201, created.text
    stamps, values = hourly_values()
    for i in range(WARM, WARM + 10):
        response = post(client, auth, "m", [(stamps[i].isoformat(), float(values[i]))])
        assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    response = post(client, auth, "m", [(stamps[i].isoformat(), float(values[i]))
                                        for i in range(WARM + 10, WARM + 13)])
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    got = client.get("/v1/streams/m", headers=auth).json()["accuracy"]
    period = Forecaster.load(artifacts["lstm_stateful"]).spec.seasonal_period
    judged = np.arange(WARM, WARM + 13)
    assert got["judged"] == len(judged)
    assert got["persistence_mae"] == pytest.approx(
        np.abs(values[judged] - values[judged - 1]).mean(), rel=1e-12)
    assert got["naive_mae"] == pytest.approx(
        np.abs(values[judged] - values[judged - period]).mean(), rel=1e-12)
    # Every reading had both baselines' forecasts, so each ratio is of the whole MAEs.
    assert got["relative_mae_persistence"] == pytest.approx(got["mae"] / got["persistence_mae"])
    assert got["relative_mae"] == pytest.approx(got["mae"] / got["naive_mae"])
    assert got["baselines"] == {"naive": {"name": "seasonal naive", "lag_steps": period},
                                "persistence": {"name": "persistence", "lag_steps": 1}}
