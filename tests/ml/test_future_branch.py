"""The future covariates' branch: numpy serving mirrors the Keras graph `build_network` makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ml.architectures import build_network
from app.ml.engine import NumpyNetwork
from app.ml.spec import ModelSpec, resolve_spec

ATOL = 1e-5
INPUTS = 4
FUTURE = 12  # 6 steps x (value, present) of one covariate
STEPS = 20


def _randomized(spec_fields: dict[str, object], *, seed: int) -> tuple[object, object]:
    spec = resolve_spec(ModelSpec(**spec_fields), "h")  # type: ignore[arg-type]
    model = build_network(spec, INPUTS, n_future=FUTURE)
    rng = np.random.default_rng(seed)
    # Non-zero weights everywhere: a zero-initialised head would hide a wrong join.
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    return spec, model


@pytest.mark.parametrize(
    "fields",
    [
        {"stateful": False, "horizon": 6, "cell": "gru"},
        {"stateful": False, "horizon": 6, "cell": "lstm", "layers": 2, "dropout": 0.2},
        {"stateful": False, "horizon": 6, "cell": "gru", "bidirectional": True},
    ],
    ids=["gru", "lstm-2-dropout", "bidirectional"],
)
def test_window_network_with_future_branch_matches_keras(fields: dict[str, object], tmp_path: Path) -> None:
    _, model = _randomized(fields, seed=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, STEPS, INPUTS)).astype("float32")
    future = rng.normal(size=(5, FUTURE)).astype("float32")
    expected = np.asarray(model([x, future], training=False))

    network = NumpyNetwork.from_keras(model)
    got, _ = network.run(x, future=future)

    assert network.future_size == FUTURE
    np.testing.assert_allclose(got, expected, atol=ATOL)
    network.save(tmp_path)
    again, _ = NumpyNetwork.load(tmp_path).run(x, future=future)
    np.testing.assert_array_equal(again, got)
    # The branch matters: other future values give another forecast.
    other, _ = network.run(x, future=future + 1.0)
    assert np.abs(other - got).max() > 1e-3


def test_stream_network_with_future_branch_matches_keras_at_every_step() -> None:
    _, model = _randomized({"stateful": True, "horizon": 6, "cell": "gru"}, seed=5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, STEPS, INPUTS)).astype("float32")
    future = rng.normal(size=(2, STEPS, FUTURE)).astype("float32")
    expected = np.asarray(model([x, future], training=False))

    network = NumpyNetwork.from_keras(model)
    sequence, state = network.run(x, return_sequences=True, future=future)

    np.testing.assert_allclose(sequence, expected, atol=ATOL)
    # A stream's forecast is recomputed from its state and the horizon's covariates.
    np.testing.assert_allclose(network.output(state, future[:, -1]), expected[:, -1], atol=ATOL)


def test_future_inputs_are_required_and_checked() -> None:
    _, model = _randomized({"stateful": False, "horizon": 6}, seed=7)
    network = NumpyNetwork.from_keras(model)
    x = np.zeros((1, STEPS, INPUTS))
    with pytest.raises(ValueError, match="pass `future`"):
        network.run(x)
    with pytest.raises(ValueError, match=r"expected \(1, 12\)"):
        network.run(x, future=np.zeros((1, 5)))
    plain = NumpyNetwork.from_keras(build_network(resolve_spec(ModelSpec(stateful=False), "h"), INPUTS))
    with pytest.raises(ValueError, match="without a future branch"):
        plain.run(x, future=np.zeros((1, FUTURE)))
