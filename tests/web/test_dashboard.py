"""The dashboard in a real browser against a real `statecast serve`: key, upload, training,
forecast bands and a live stream."""

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.server import ServerProcess
from tests.streams.conftest import (
    artifacts,
    fleet_csv,
    hourly_values,
    streams_on_the_series,
)
from tests.web.browser import chromium_page, require_chromium

__all__ = ["artifacts"]  # the tiny trained models, for streams fed from the series list

STEPS_PER_DAY = 48
DAYS = 10
TRAIN_TIMEOUT_MS = 120_000


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    require_chromium()
    process = ServerProcess(settings, tmp_path / "serve.log", workers=1)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def page(server: ServerProcess) -> Iterator[Any]:
    with chromium_page() as browser_page:
        yield browser_page


def key_of(auth: dict[str, str]) -> str:
    return auth["Authorization"].removeprefix("Bearer ")


def daily_csv(path: Path) -> Path:
    """Ten days of a half-hourly daily cycle, `;`-separated as some meters export it."""
    lines = ["time;kwh"]
    for i in range(DAYS * STEPS_PER_DAY):
        day, step = divmod(i, STEPS_PER_DAY)
        value = 10 + 4 * math.sin(2 * math.pi * step / STEPS_PER_DAY) + 0.3 * ((i * 7) % 5)
        lines.append(f"2024-03-{day + 1:02d} {step // 2:02d}:{30 * (step % 2):02d};{value:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def enter_key(page: Any, key: str) -> None:
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")


def chart_traces(page: Any, element_id: str) -> list[dict[str, Any]]:
    traces: list[dict[str, Any]] = page.evaluate(
        f"""() => document.getElementById({element_id!r}).data.map(t => ({{
            name: t.name, fill: t.fill || null, n: (t.y || []).length }}))""")
    return traces


@pytest.mark.slow
def test_upload_train_forecast_and_stream(server: ServerProcess, page: Any, auth: dict[str, str],
                                          tmp_path: Path) -> None:
    page.goto(server.url + "/")
    enter_key(page, key_of(auth))
    assert page.evaluate("sessionStorage.getItem('statecast.apiKey')") == key_of(auth)

    # A new series from a CSV file, with the API's CSV options.
    page.fill("#new-series input[name=name]", "meter-7")
    page.set_input_files("#new-series input[name=file]", str(daily_csv(tmp_path / "m.csv")))
    page.click("#new-series summary")
    page.fill("#new-series input[name=sep]", ";")
    page.click("#new-series button[type=submit]")
    page.wait_for_selector("#series-chart .main-svg")
    assert page.inner_text("#reading-count") == str(DAYS * STEPS_PER_DAY)
    assert chart_traces(page, "series-chart")[0] == {"name": "history", "fill": None,
                                                     "n": DAYS * STEPS_PER_DAY}
    assert "No forecast yet" in page.inner_text("#forecast-note")

    # The train form starts from the spec's defaults; a tiny network keeps the test fast.
    assert page.input_value("#train-form [name=units]") == "16"
    assert page.input_value("#train-form [name=cell]") == "gru"
    assert page.input_value("#train-form [name=stateful]") == "auto"  # the server's default
    page.fill("#train-form [name=units]", "4")
    page.fill("#train-form [name=epochs]", "2")
    page.click("#train-form button[type=submit]")
    page.wait_for_url("**/#/jobs/*")
    page.wait_for_selector("#job-progress[data-percent='100']", timeout=TRAIN_TIMEOUT_MS)
    page.wait_for_selector("#job-result table")
    assert "succeeded" in page.inner_text("#job-status")
    assert not page.is_visible(".page-head button.danger")  # nothing left to cancel
    assert chart_traces(page, "loss-chart")[0]["n"] == 2  # one loss per epoch
    assert not page.is_visible("#loss-empty")

    # Back on the series page: the forecast with its 80% and 95% bands, and the model listed.
    page.click("#job-result a")
    page.wait_for_selector("#series-chart[data-forecast-points='96']")
    traces = {t["name"]: t for t in chart_traces(page, "series-chart")}
    assert traces["80% interval"] == {"name": "80% interval", "fill": "tonexty", "n": 96}
    assert traces["95% interval"] == {"name": "95% interval", "fill": "tonexty", "n": 96}
    assert traces["forecast"]["n"] == 96
    fills = page.evaluate("""() => Object.fromEntries(document.getElementById('series-chart').data
        .filter(t => t.fill).map(t => [t.name, t.fillcolor]))""")
    rgb = {name: [int(c) for c in color.split("(")[1].split(",")[:3]] for name, color in fills.items()}
    # The two bands differ in hue, not only in how much they overlap.
    assert sum(abs(a - b) for a, b in zip(rgb["80% interval"], rgb["95% interval"],
                                          strict=True)) > 150, fills
    row = page.inner_text("#models-table tbody tr")
    assert "ready" in row and "default" in row

    # A stream: its chart grows as readings arrive from elsewhere, and from the form.
    page.click("#new-stream")
    page.wait_for_url("**/#/streams/*")
    page.wait_for_selector("#stream-chart[data-readings='0']")
    stream_id = page.url.rsplit("/", 1)[1]
    stream = httpx.get(f"{server.url}/v1/streams/{stream_id}", headers=auth).json()
    next_ts = stream["next_forecast"]["ts"]
    readings = [{"ts": next_ts, "value": 11.0}]
    response = httpx.post(f"{server.url}/v1/streams/{stream_id}/readings", headers=auth,
                          json={"readings": readings})
    assert response.status_code == 200, response.text
    page.wait_for_selector("#stream-chart[data-readings='1']")
    assert page.input_value("#push-form [name=ts]") != next_ts  # follows the stream
    page.fill("#push-form [name=value]", "12.5")
    page.click("#push-form button[type=submit]")
    page.wait_for_selector("#stream-chart[data-readings='2']")
    figures = page.inner_text("#stream-figures")
    assert "judged" in figures and "MAE" in figures
    # Every figure is explained, as a tooltip and in the list below the figures.
    labels = page.eval_on_selector_all("#stream-figures .figure", "nodes => nodes.map(n => n.title)")
    assert len(labels) == 8 and all(labels), labels
    explained = page.inner_text("#stream-figure-help")
    assert "MASE model / naive" in explained and "seasonal naive" in explained
    names = [t["name"] for t in chart_traces(page, "stream-chart")]
    assert names == ["readings", "step forecasts", "next step"]


def test_the_page_sees_only_its_keys_tenant(server: ServerProcess, page: Any,
                                            auth: dict[str, str], other_auth: dict[str, str],
                                            ) -> None:
    httpx.post(f"{server.url}/v1/series", headers=auth, json={"name": "alices", "freq": "h"})
    page.goto(server.url + "/")
    assert "data/api_key" in page.inner_text("#key-where")  # where make run saved its key
    enter_key(page, "sc_not_a_key")
    page.wait_for_selector("#key-error:not([hidden])")
    assert "not valid" in page.inner_text("#key-error")
    assert page.evaluate("sessionStorage.getItem('statecast.apiKey')") is None

    enter_key(page, key_of(other_auth))
    page.wait_for_selector("text=No series yet")
    page.click("#change-key")
    enter_key(page, key_of(auth))
    page.wait_for_selector("#series-table >> text=alices")
    # A reload keeps the key for this tab only.
    page.reload()
    page.wait_for_selector("#series-table >> text=alices")


def test_a_refused_csv_creates_no_series_and_the_error_stays_by_the_form(
        server: ServerProcess, page: Any, auth: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,kwh\n2024-03-01 00:00,1\n2024-03-01 00:10,2\n")  # off the 30min grid
    page.goto(server.url + "/")
    enter_key(page, key_of(auth))
    page.wait_for_selector("text=No series yet")
    page.fill("#new-series input[name=name]", "meter-bad")
    page.set_input_files("#new-series input[name=file]", str(bad))
    page.click("#new-series button[type=submit]")
    error = page.wait_for_selector("#new-series + .inline-error")
    text = error.inner_text()
    assert "Nothing was created" in text and "not on the 30min grid" in text
    assert httpx.get(f"{server.url}/v1/series", headers=auth).json()["count"] == 0
    assert page.input_value("#new-series input[name=name]") == "meter-bad"  # ready for a retry
    # It stays until dismissed, whatever else happens on the page meanwhile.
    page.click("#new-series summary")
    assert page.is_visible("#new-series + .inline-error")
    page.click("#new-series + .inline-error button.dismiss")
    assert page.query_selector("#new-series + .inline-error") is None


def test_a_series_without_readings_says_so_instead_of_an_empty_chart(
        server: ServerProcess, page: Any, auth: dict[str, str]) -> None:
    created = httpx.post(f"{server.url}/v1/series", headers=auth,
                         json={"name": "empty", "freq": "30min"}).json()
    page.goto(f"{server.url}/#/series/{created['id']}")
    enter_key(page, key_of(auth))
    page.wait_for_selector("#series-chart-empty:not([hidden])")
    assert "No readings yet" in page.inner_text("#series-chart-empty")
    assert not page.is_visible("#series-chart")
    assert page.query_selector("#series-chart .main-svg") is None  # no placeholder axes


def test_readings_for_many_streams_from_a_csv_show_per_stream_and_refresh_the_list(
        page: Any, server: ServerProcess, client: TestClient, auth: dict[str, str],
        settings: Settings, artifacts: dict[str, Path], tmp_path: Path) -> None:
    warm = 300
    streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"],
                                      ("m1", "m2"), warm)
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(fleet_csv(warm))
    stamps, _ = hourly_values()
    applied_cell = "#streams-table tr[data-stream-id='m1'] td:nth-child(4)"

    page.goto(server.url + "/")
    enter_key(page, key_of(auth))
    page.wait_for_selector(applied_cell)
    assert page.inner_text(applied_cell) == "0"
    page.set_input_files("#bulk-readings input[name=file]", str(fleet))
    page.click("#bulk-readings button[type=submit]")
    page.wait_for_selector("#bulk-result")
    cells = page.eval_on_selector_all(
        "#bulk-result tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
    assert [row[:5] for row in cells] == [["m1", "applied", "2", "0", "0"],
                                          ["ghost", "refused", "0", "0", "0"],
                                          ["m2", "applied", "2", "0", "0"]]
    assert cells[1][6].startswith("404: No stream with id") and cells[0][6] == ""
    assert page.inner_text("#bulk-result p").startswith("4 applied, 0 duplicates, 2 refused")
    page.wait_for_function(f"() => document.querySelector({applied_cell!r}).innerText === '2'")
    assert httpx.get(f"{server.url}/v1/streams/m2", headers=auth).json()["readings_applied"] == 2

    # Sent again: duplicates, nothing applied twice.
    page.set_input_files("#bulk-readings input[name=file]", str(fleet))
    page.click("#bulk-readings button[type=submit]")
    page.wait_for_selector("#bulk-result p >> text=0 applied, 4 duplicates")
    assert page.inner_text(applied_cell) == "2"

    # A file the API would refuse is refused before anything is sent, beside the form.
    bad = tmp_path / "bad.csv"
    bad.write_text(f"stream_id,ts,value\nm1,{stamps[warm + 2]:%Y-%m-%dT%H:%M:%SZ},lots\n")
    page.set_input_files("#bulk-readings input[name=file]", str(bad))
    page.click("#bulk-readings button[type=submit]")
    error = page.wait_for_selector("#bulk-readings + .inline-error").inner_text()
    assert "Nothing was sent" in error and 'line 2: value "lots" is not a number' in error
    assert httpx.get(f"{server.url}/v1/streams/m1", headers=auth).json()["readings_applied"] == 2


def test_missing_readings_are_drawn_as_a_gap_not_a_line(
        page: Any, server: ServerProcess, client: TestClient, auth: dict[str, str],
        settings: Settings, artifacts: dict[str, Path]) -> None:
    warm = 300
    sid = streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"], ("m1",), warm)
    stamps, values = hourly_values()

    def post(i: int, query: str = "") -> None:
        reading = {"ts": f"{stamps[i]:%Y-%m-%dT%H:%M:%SZ}", "value": float(values[i])}
        response = client.post(f"/v1/streams/m1/readings{query}", json={"readings": [reading]},
                               headers=auth)
        assert response.status_code == 200, response.text

    post(warm + 150, "?rewarm=true")  # 149 missing hours, more than a stream fills: re-warmed
    post(warm + 160)  # 9 more, filled by the stream's model
    chart_y = "id => document.getElementById(id).data[0].y"

    page.goto(f"{server.url}/#/series/{sid}")
    enter_key(page, key_of(auth))
    page.wait_for_selector("#series-chart .main-svg")
    history = page.evaluate(chart_y, "series-chart")
    assert len(history) == warm + 2 + 2 and history.count(None) == 2
    assert history[warm] is None and history[warm + 2] is None

    page.goto(f"{server.url}/#/streams/m1")
    page.wait_for_selector("#stream-chart .main-svg")
    readings = page.evaluate(chart_y, "stream-chart")
    assert readings[-3:] == [float(values[warm + 150]), None, float(values[warm + 160])]


def test_a_day_first_local_file_loads_with_the_options_the_server_asks_for(
        server: ServerProcess, page: Any, auth: dict[str, str], tmp_path: Path) -> None:
    day_first = tmp_path / "berlin.csv"
    day_first.write_text("when,kwh\n04/03/2024 00:00,1\n04/03/2024 01:00,2\n")
    page.goto(server.url + "/")
    enter_key(page, key_of(auth))
    page.wait_for_selector("text=No series yet")
    page.fill("#new-series input[name=name]", "berlin")
    page.fill("#new-series input[name=freq]", "h")
    page.fill("#new-series input[name=timezone]", "Europe/Berlin")
    page.set_input_files("#new-series input[name=file]", str(day_first))
    page.click("#new-series summary")
    page.click("#new-series button[type=submit]")
    assert "dayfirst=true" in page.wait_for_selector("#new-series + .inline-error").inner_text()
    page.click("#new-series + .inline-error button.dismiss")
    page.select_option("#new-series select[name=dayfirst]", "true")
    page.click("#new-series button[type=submit]")
    page.wait_for_selector("#series-chart .main-svg")
    series = httpx.get(f"{server.url}/v1/series", headers=auth).json()["data"][0]
    detail = httpx.get(f"{server.url}/v1/series/{series['id']}", headers=auth).json()
    assert detail["first_ts"] == "2024-03-03T23:00:00Z"  # midnight in Berlin, in UTC
def test_the_keys_page_creates_and_revokes_keys(server: ServerProcess, page: Any,
                                                auth: dict[str, str]) -> None:
    page.goto(server.url + "/#/keys")
    enter_key(page, key_of(auth))
    page.wait_for_selector("#keys-table tbody tr")
    assert "this key" in page.inner_text("#keys-table tbody tr")
    page.fill("#new-key-form input[name=name]", "dashboard-made")
    page.select_option("#new-key-form select[name=scope]", "read")
    page.click("#new-key-form button[type=submit]")
    page.wait_for_selector("#new-key-value")
    new_key = page.inner_text("#new-key-value")
    assert new_key.startswith("sc_")
    made = {"Authorization": f"Bearer {new_key}"}
    assert httpx.get(f"{server.url}/v1/series", headers=made).status_code == 200
    assert httpx.post(f"{server.url}/v1/series", headers=made,
                      json={"name": "x", "freq": "h"}).status_code == 403
    page.reload()
    page.wait_for_selector("#keys-table tbody tr:nth-child(2)")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#keys-table tbody tr:nth-child(2) button")
    page.wait_for_function("document.querySelectorAll('#keys-table tbody tr').length === 1")
    assert httpx.get(f"{server.url}/v1/series", headers=made).status_code == 401
    # The last key stays: the page says why.
    page.click("#keys-table tbody tr button")
    page.wait_for_selector("#keys-table .inline-error")
    assert "last" in page.inner_text("#keys-table .inline-error")


@pytest.mark.slow
def test_the_series_page_lists_its_inputs_and_plots_the_covariate_under_the_forecast(
        server: ServerProcess, page: Any, auth: dict[str, str]) -> None:
    temperature = httpx.post(f"{server.url}/v1/series", headers=auth,
                             json={"name": "temperature", "freq": "h"}).json()
    load = httpx.post(f"{server.url}/v1/series", headers=auth, json={
        "name": "load", "freq": "h", "holidays": "US",
        "special_days": [{"date": "2024-12-27", "label": "plant shutdown"}],
        "covariates": [{"series_id": temperature["id"], "name": "temperature"}]}).json()
    # A day of load, and the temperature over it and the day after (its forecast).
    body = "ts,load,temperature\n" + "".join(
        f"2024-03-0{1 + h // 24} {h % 24:02d}:00,{'' if h >= 24 else 10 + h},{5 + h / 10}\n"
        for h in range(48))
    answer = httpx.post(f"{server.url}/v1/series/{load['id']}/readings", headers={
        **auth, "Content-Type": "text/csv"}, params={"covariate_cols": "temperature"},
        content=body.encode())
    assert answer.status_code == 200, answer.text
    page.goto(f"{server.url}/#/series/{load['id']}")
    enter_key(page, key_of(auth))
    page.wait_for_selector("#series-inputs")
    assert page.inner_text("#series-covariates") == "covariates temperature"
    assert page.get_attribute("#series-covariates a", "href") == f"#/series/{temperature['id']}"
    assert page.inner_text("#series-holidays") == "holidays US"
    assert page.get_attribute("#series-special-days", "title") == "2024-12-27 plant shutdown"
    page.wait_for_function("document.getElementById('series-chart').data")
    traces = page.evaluate("""() => document.getElementById('series-chart').data.map(t => ({
        name: t.name, yaxis: t.yaxis || 'y', n: (t.y || []).length }))""")
    assert {"name": "history", "yaxis": "y", "n": 24} in traces
    assert {"name": "covariate temperature", "yaxis": "y2", "n": 48} in traces
    domain = page.evaluate("document.getElementById('series-chart').layout.yaxis2.domain")
    assert domain[1] < page.evaluate("document.getElementById('series-chart').layout.yaxis.domain")[0]
