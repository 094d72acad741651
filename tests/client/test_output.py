"""Pieces of the client's output: error lines, tables, metrics beside the baseline, the bar."""

import io

import httpx
import pytest

from app.client.api import problem_line
from app.client.output import cell, metrics_table, table
from app.client.progress import ProgressBar, format_bytes, format_duration


def response(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text)
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def test_problem_line_names_fields_rows_and_values() -> None:
    errors = [{"field": "value", "value": "x", "message": "not a finite number", "row": 3},
              {"field": "spec.units", "value": 0, "message": "expected a positive integer"}]
    line = problem_line(response(422, {"status": 422, "detail": "Invalid value", "errors": errors}))
    assert line == ("HTTP 422: Invalid value [value (row 3) = 'x': not a finite number; "
                    "spec.units = 0: expected a positive integer]")


def test_problem_line_caps_the_fields_listed() -> None:
    errors = [{"field": "v", "value": i, "message": "bad", "row": i} for i in range(8)]
    line = problem_line(response(422, {"detail": "d", "errors": errors}))
    assert line.count("bad") == 5 and line.endswith("(+3 more)]")
    assert "\n" not in line


def test_problem_line_without_json() -> None:
    assert problem_line(response(502, text="<html>\n Bad gateway </html>")) == (
        "HTTP 502 Bad Gateway: <html> Bad gateway </html>")


def test_table_aligns_numbers_right_and_text_left() -> None:
    assert table(["id", "name", "mase"], [[1, "a", 0.91234567], [12, "long name", None]]) == (
        "id  name         mase\n"
        "--  ---------  ------\n"
        " 1  a          0.9123\n"
        "12  long name       -")


METRICS = {
    "test_origins": 40, "validation_origins": 40, "horizon": 48, "seasonal_period": 48,
    "one_step": {"model": {"mae": 1.5, "rmse": 2.0, "smape": 3.0, "mase": 0.5},
                 "seasonal_naive": {"mae": 3.0, "rmse": 4.0, "smape": 6.0, "mase": 1.0}},
    "full_horizon": {"model": {"mae": 2.5, "rmse": 3.0, "smape": 4.0, "mase": 0.8},
                     "seasonal_naive": {"mae": 3.1, "rmse": 4.2, "smape": 6.1, "mase": 1.02}},
    "interval_coverage": {"80": 0.79, "95": 0.951},
}


def test_metrics_table_sets_the_model_beside_the_seasonal_naive() -> None:
    lines = metrics_table(METRICS).splitlines()
    assert lines[0].split("  ")[0] == "metric"
    assert "model (1 step)" in lines[0] and "naive (48 steps)" in lines[0]
    assert lines[2].split() == ["mae", "1.5", "3", "2.5", "3.1"]
    assert lines[5].split() == ["mase", "0.5", "1", "0.8", "1.02"]
    assert lines[6] == "interval coverage on the test part: 80% -> 79.0%, 95% -> 95.1%"


def test_progress_bar_writes_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(200, label="upload", stream=stream)
    bar.update(50, "50 B")
    bar.update(100, "100 B")  # within the log interval: not written
    bar.update(200, "200 B")
    bar.close()
    assert stream.getvalue().splitlines() == [
        "upload [########......................]  25% 50 B",
        "upload [##############################] 100% 200 B"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    stream = Terminal()
    bar = ProgressBar(4, label="job 1", stream=stream)
    bar.update(1, "epoch 1/4 loss 0.5 ETA 3s")
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\rjob 1 [") and text.endswith("  25% epoch 1/4 loss 0.5 ETA 3s\n")
    assert text.count("\r") == 2


@pytest.mark.parametrize("seconds,text", [(None, "?"), (float("nan"), "?"), (4.4, "4s"),
                                          (185, "3m05s"), (3725, "1h02m")])
def test_durations(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_sizes() -> None:
    assert [format_bytes(n) for n in (12, 2048, 5 * 1024 * 1024)] == ["12 B", "2.0 KiB", "5.0 MiB"]


@pytest.mark.parametrize("value,shown", [(21770.0, "21770"), (21770.4, "21770"),
                                         (123456789.0, "123456789"), (0.52413, "0.5241"),
                                         (12.3456, "12.35"), (1.5, "1.5"),
                                         (-3.0, "-3"), (1.234e-5, "0.00001234"), (0.0, "0"),
                                         (-1e-12, "0"), (float("nan"), "nan")])
def test_numbers_are_plain_never_scientific(value: float, shown: str) -> None:
    assert cell(value) == shown
