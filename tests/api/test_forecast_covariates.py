"""Forecasts and covariates: the inline body's checks, and what a model without covariates
answers (mode, fallback) on both databases."""

import json
import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.helpers import assert_problem
from tests.streams.conftest import artifacts, install_model, load_series

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
