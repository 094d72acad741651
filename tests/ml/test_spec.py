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
    ("fields", "field", "expected"),
    [
        ({"units": 0}, "units", "greater than or equal to 1"),
        ({"units": True}, "units", "a valid integer"),
        ({"units": "4"}, "units", "a valid integer"),
        ({"layers": 5}, "layers", "less than or equal to 4"),
        ({"layers": 0}, "layers", "greater than or equal to 1"),
        ({"dropout": 1.0}, "dropout", "less than 1"),
        ({"dropout": -0.1}, "dropout", "greater than or equal to 0"),
        ({"dropout": True}, "dropout", "a valid number"),
        ({"cell": "lstmx"}, "cell", "'lstm', 'gru' or 'simple_rnn'"),
        ({"loss": "l1"}, "loss", "'mae' or 'mse'"),
        ({"deseasonalize": "stl"}, "deseasonalize", "'mstl' or 'none'"),
        ({"window": 4}, "window", "greater than or equal to 8"),
        ({"learning_rate": -1}, "learning_rate", "greater than 0"),
        ({"learning_rate": "0.1"}, "learning_rate", "a valid number"),
        ({"stateful": "yes"}, "stateful", "a valid boolean"),
        ({"auto": 1}, "auto", "a valid boolean"),
        ({"test_fraction": 0.7}, "test_fraction", "less than 0.5"),
        ({"validation_fraction": 0}, "validation_fraction", "greater than 0"),
        ({"horizon": 2.5}, "horizon", "a valid integer"),
        ({"patience": -1}, "patience", "greater than or equal to 0"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"chunk": 0, "stateful": True}, "chunk", "greater than or equal to 1"),
        ({"budget_s": 0, "auto": True}, "budget_s", "greater than or equal to 1"),
    ],
)
def test_invalid_fields_name_field_value_and_expectation(fields: dict, field: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSpec(**fields)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert error["input"] == fields[field] and type(error["input"]) is type(fields[field])
    assert expected in error["msg"]
    # The text a CLI user or a log reader sees says the same.
    assert field in str(caught.value) and f"input_value={fields[field]!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"chunk": 10, "stateful": False}, ["`chunk=10`", "stateful=False", "only for stateful"]),
        (
            {"stateful": True, "bidirectional": True},
            ["`stateful=True`", "`bidirectional=True`", "at most one"],
        ),
        ({"budget_s": 10}, ["`budget_s=10`", "`auto=True`"]),
    ],
)
def test_invalid_combinations_name_both_fields(fields: dict, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSpec(**fields)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message


def test_numbers_keep_their_type() -> None:
    spec = ModelSpec(dropout=0, learning_rate=1, validation_fraction=0.2)
    assert spec.model_dump()["dropout"] == 0.0 and isinstance(spec.dropout, float)
    assert isinstance(spec.learning_rate, float)


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
