from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.ml.spec import ModelSpec, baseline_lags, freq_seconds, resolve_spec


def test_defaults() -> None:
    spec = ModelSpec()
    assert (spec.cell, spec.units, spec.layers, spec.dropout) == ("gru", 16, 1, 0.0)
    assert (spec.stateful, spec.bidirectional, spec.horizon, spec.calendar) == (None, False, None, None)
    # A stream model unless bidirectional: the model every stream's state belongs to.
    assert spec.is_stream and not ModelSpec(bidirectional=True).is_stream
    assert resolve_spec(spec, "30min").stateful and resolve_spec(spec, "30min").deseasonalize == "mstl"
    assert (spec.epochs, spec.patience, spec.window, spec.batch_size) == (40, 8, None, 64)
    assert (spec.deseasonalize, spec.loss, spec.auto, spec.budget_s) == ("mstl", "mae", False, None)
    resolved = resolve_spec(spec, "30min")
    assert (resolved.window, resolved.horizon, resolved.calendar) == (48, 48, False)
    stream = resolve_spec(ModelSpec(stateful=True), "30min")
    assert (stream.deseasonalize, stream.calendar) == ("mstl", False)
    with pytest.raises(ValidationError, match="`budget_s` only with `auto=True`"):
        ModelSpec(budget_s=10)


@pytest.mark.parametrize(
    ("freq", "window", "period"),
    [("15min", 96, 96), ("30min", 48, 48), ("h", 24, 24), ("D", 14, 7), ("2h", 12, 12),
     ("W-SAT", 104, 52), ("MS", 24, 12), ("QS", 8, 4)],
)
def test_resolve_spec_fills_frequency_defaults(freq: str, window: int, period: int) -> None:
    resolved = resolve_spec(ModelSpec(), freq)
    assert (resolved.window, resolved.seasonal_period, resolved.freq) == (window, period, freq)


def test_resolve_keeps_explicit_window_and_defaults_chunk_to_it() -> None:
    resolved = resolve_spec(ModelSpec(window=10, stateful=True), "h")
    assert (resolved.window, resolved.chunk) == (10, 10)


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"units": 0}, ["`units`", "positive integer", "got 0"]),
        ({"layers": 5}, ["`layers`", "from 1 to 4", "got 5"]),
        ({"dropout": 1.0}, ["`dropout`", "[0, 1)", "got 1.0"]),
        ({"cell": "lstmx"}, ["`cell`", "'gru'", "got 'lstmx'"]),
        ({"window": 4}, ["`window`", "at least 8", "got 4"]),
        ({"learning_rate": -1}, ["`learning_rate`", "positive number", "got -1"]),
        ({"stateful": "yes"}, ["`stateful`", "true or false", "got 'yes'"]),
        ({"test_fraction": 0.7}, ["`test_fraction`", "(0, 0.5)", "got 0.7"]),
        ({"horizon": 2.5}, ["`horizon`", "positive integer", "got 2.5"]),
        ({"chunk": 10, "stateful": False}, ["`chunk=10`", "stateful=False", "only for stateful"]),
        (
            {"stateful": True, "bidirectional": True},
            ["`stateful=True`", "`bidirectional=True`", "at most one"],
        ),
    ],
)
def test_invalid_fields_name_field_value_and_expectation(fields: dict, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSpec(**fields)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unit"):
        ModelSpec(unit=4)  # type: ignore[call-arg]


@pytest.mark.parametrize("freq", ["7min", "nonsense", "H"])
def test_resolve_rejects_unusable_frequency(freq: str) -> None:
    with pytest.raises(ValueError, match="`freq`"):
        resolve_spec(ModelSpec(), freq)


def test_baselines_follow_the_frequency() -> None:
    assert baseline_lags("30min") == (48, 336)
    assert baseline_lags("D") == (7, 365)
    assert baseline_lags("W-SAT") == (52,)
    assert baseline_lags("MS") == (12,)
    assert freq_seconds("W-SUN") == 7 * 86_400
    assert freq_seconds("MS") == pytest.approx(365.2425 / 12 * 86_400, rel=1e-4)


@pytest.mark.parametrize("field,value", [
    ("units", 100_000), ("window", 10**9), ("epochs", 10**9), ("patience", 10**6),
    ("batch_size", 10**6), ("horizon", 10**6), ("learning_rate", 5.0), ("seed", 2**40),
    ("budget_s", 10**7),
])
def test_every_numeric_field_has_an_upper_bound(field: str, value: object) -> None:
    extra = {"auto": True} if field == "budget_s" else {}
    with pytest.raises(ValidationError) as raised:
        ModelSpec(**{field: value, **extra})
    assert raised.value.errors()[0]["loc"] == (field,)


def test_chunk_has_an_upper_bound() -> None:
    with pytest.raises(ValidationError):
        ModelSpec(stateful=True, chunk=10**9)
