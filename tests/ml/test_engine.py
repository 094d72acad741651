"""Golden comparisons of the numpy engine with Keras on every supported kind of stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.ml.cells import ACTIVATIONS
from app.ml.engine import NumpyNetwork

ATOL = 1e-5
FEATURES = 3
CARRIED_STEPS = 500
LAYER_TYPES = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}
# Several heads with different activations, so each golden case also checks a Dense variant.
HEADS = {
    "lstm": [("relu", 5), ("linear", 3)],
    "gru": [("tanh", 4), ("sigmoid", 2)],
    "simple_rnn": [("elu", 4), ("softplus", 3)],
}


def _stack(
    inputs: Any,
    kind: str,
    layer_count: int,
    *,
    top_return_sequences: bool,
    bidirectional: bool = False,
    merge_mode: str = "concat",
    stateful: bool = False,
    units: int = 5,
    **cell_options: Any,
) -> keras.Model:
    x = inputs
    for index in range(layer_count):
        top = index == layer_count - 1
        layer = LAYER_TYPES[kind](
            units - index,
            return_sequences=top_return_sequences or not top,
            stateful=stateful,
            **cell_options,
        )
        x = keras.layers.Bidirectional(layer, merge_mode=merge_mode)(x) if bidirectional else layer(x)
        if not top:
            x = keras.layers.Dropout(0.3)(x)
    for activation, width in HEADS[kind]:
        x = keras.layers.Dense(width, activation=activation)(x)
    return keras.Model(inputs, x)


def _randomize(model: keras.Model, seed: int) -> None:
    # Non-zero biases everywhere (Keras initializes most to zero) so the bias layout is tested.
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])


def _inputs(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _states(model: keras.Model) -> list[np.ndarray]:
    return [
        np.asarray(variable)
        for layer in model.layers
        if isinstance(layer, keras.layers.RNN)
        for variable in layer.states
    ]


def _assign_states(model: keras.Model, state: list[np.ndarray]) -> None:
    variables = [
        variable for layer in model.layers if isinstance(layer, keras.layers.RNN) for variable in layer.states
    ]
    for variable, value in zip(variables, state, strict=True):
        variable.assign(value.astype("float32"))


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layer_count", [1, 2])
@pytest.mark.parametrize("kind", sorted(LAYER_TYPES))
def test_window_matches_keras(
    kind: str, layer_count: int, bidirectional: bool, return_sequences: bool
) -> None:
    model = _stack(
        keras.Input(shape=(9, FEATURES)),
        kind,
        layer_count,
        top_return_sequences=return_sequences,
        bidirectional=bidirectional,
    )
    _randomize(model, seed=layer_count)
    x = _inputs(1, (2, 9, FEATURES))
    expected = np.asarray(model(x))

    network = NumpyNetwork.from_keras(model)
    last, _ = network.run(x)

    assert network.stateful is not bidirectional
    assert network.output_size == HEADS[kind][-1][1]
    np.testing.assert_allclose(last, expected[:, -1] if return_sequences else expected, atol=ATOL)
    if return_sequences or not bidirectional:
        sequence, _ = network.run(x, return_sequences=True)
        assert sequence.shape == (2, 9, network.output_size)
        if return_sequences:
            np.testing.assert_allclose(sequence, expected, atol=ATOL)
        np.testing.assert_allclose(sequence[:, -1], last, atol=1e-12)


@pytest.mark.parametrize(("kind", "merge_mode"), [("lstm", "sum"), ("gru", "mul"), ("simple_rnn", "ave")])
def test_bidirectional_merge_modes_match_keras(kind: str, merge_mode: str) -> None:
    model = _stack(
        keras.Input(shape=(6, FEATURES)),
        kind,
        2,
        top_return_sequences=True,
        bidirectional=True,
        merge_mode=merge_mode,
    )
    _randomize(model, seed=7)
    x = _inputs(2, (3, 6, FEATURES))

    sequence, _ = NumpyNetwork.from_keras(model).run(x, return_sequences=True)

    np.testing.assert_allclose(sequence, np.asarray(model(x)), atol=ATOL)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("gru", {"reset_after": False}),
        ("gru", {"use_bias": False, "activation": "relu"}),
        ("lstm", {"use_bias": False, "recurrent_activation": "hard_sigmoid"}),
        ("lstm", {"activation": "softsign", "unit_forget_bias": False}),
        ("simple_rnn", {"activation": "relu", "use_bias": False}),
    ],
    ids=["gru-reset-before", "gru-nobias-relu", "lstm-nobias-hardsig", "lstm-softsign", "rnn-relu"],
)
def test_cell_options_match_keras(kind: str, options: dict[str, Any]) -> None:
    model = _stack(keras.Input(shape=(8, FEATURES)), kind, 2, top_return_sequences=True, **options)
    _randomize(model, seed=11)
    x = _inputs(3, (2, 8, FEATURES))

    sequence, _ = NumpyNetwork.from_keras(model).run(x, return_sequences=True)

    np.testing.assert_allclose(sequence, np.asarray(model(x)), atol=ATOL)


# Each kind with 1 and 2 layers; the top layer's return_sequences alternates (the reference
# model is the same for both, so a full cross product would double the cost for little).
@pytest.mark.parametrize(
    ("kind", "layer_count", "top_return_sequences"),
    [
        ("lstm", 1, False),
        ("lstm", 2, True),
        ("gru", 1, True),
        ("gru", 2, False),
        ("simple_rnn", 1, False),
        ("simple_rnn", 2, True),
    ],
)
def test_carried_steps_match_stateful_keras(kind: str, layer_count: int, top_return_sequences: bool) -> None:
    batch = 2
    served = _stack(
        keras.Input(batch_shape=(batch, 1, FEATURES)),
        kind,
        layer_count,
        top_return_sequences=top_return_sequences,
        stateful=True,
    )
    _randomize(served, seed=3)
    network = NumpyNetwork.from_keras(served)
    initial = [
        np.random.default_rng(5 + i).uniform(-0.5, 0.5, (batch, units))
        for i, units in enumerate(network.state_units)
    ]
    x = _inputs(4, (batch, CARRIED_STEPS, FEATURES))
    # One stateful call over the whole window stands in for 500 one-step calls.
    reference = _stack(
        keras.Input(batch_shape=(batch, CARRIED_STEPS, FEATURES)),
        kind,
        layer_count,
        top_return_sequences=True,
        stateful=True,
    )
    reference.set_weights(served.get_weights())
    _assign_states(reference, initial)
    expected = np.asarray(reference(x))
    expected_state = _states(reference)

    state = initial
    outputs = []
    for t in range(CARRIED_STEPS):
        y, state = network.run(x[:, t : t + 1], state)
        outputs.append(y)

    assert network.stateful
    np.testing.assert_allclose(np.stack(outputs, axis=1), expected, atol=ATOL)
    for got, want in zip(state, expected_state, strict=True):
        np.testing.assert_allclose(got, want, atol=ATOL)
    run_outputs, run_state = network.run(x, initial, return_sequences=True)
    np.testing.assert_allclose(run_outputs, np.stack(outputs, axis=1), atol=1e-12)
    for got, want in zip(run_state, state, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)

    # The served model itself, fed one step at a time, agrees with the numpy steps.
    _assign_states(served, initial)
    for t in range(3):
        y = np.asarray(served(x[:, t : t + 1])).reshape(batch, -1)
        np.testing.assert_allclose(y, outputs[t], atol=ATOL)


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _stack(keras.Input(shape=(5, FEATURES)), "gru", 2, top_return_sequences=True, bidirectional=True)
    _randomize(model, seed=13)
    stepped = _stack(
        keras.Input(batch_shape=(1, 1, FEATURES)),
        "lstm",
        2,
        top_return_sequences=False,
        stateful=True,
    )
    _randomize(stepped, seed=17)
    x = _inputs(6, (2, 5, FEATURES))

    for index, source in enumerate([model, stepped]):
        network = NumpyNetwork.from_keras(source)
        network.save(tmp_path / str(index))
        loaded = NumpyNetwork.load(tmp_path / str(index))

        for flag in (False, True):
            before, before_state = network.run(x, return_sequences=flag)
            after, after_state = loaded.run(x, return_sequences=flag)
            np.testing.assert_array_equal(after, before)
            for got, want in zip(after_state, before_state, strict=True):
                np.testing.assert_array_equal(got, want)
        assert loaded.stateful == network.stateful
        # Everything read from Keras (its batch size and statefulness too) is saved back as read.
        loaded.save(tmp_path / f"{index}-again")
        for saved in (tmp_path / str(index)).iterdir():
            assert (tmp_path / f"{index}-again" / saved.name).read_bytes() == saved.read_bytes()


def test_reads_sequential_models_loaded_from_keras_files(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input(shape=(5, FEATURES)),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
            keras.layers.Dropout(0.2),
            keras.layers.GRU(3),
            keras.layers.Dense(2),
        ]
    )
    _randomize(model, seed=23)
    model.save(tmp_path / "network.keras")
    loaded = keras.saving.load_model(tmp_path / "network.keras")
    x = _inputs(8, (2, 5, FEATURES))

    last, _ = NumpyNetwork.from_keras(loaded).run(x)

    np.testing.assert_allclose(last, np.asarray(model(x)), atol=ATOL)


def test_state_survives_json_exactly() -> None:
    model = _stack(
        keras.Input(batch_shape=(1, 1, FEATURES)),
        "lstm",
        2,
        top_return_sequences=False,
        stateful=True,
    )
    _randomize(model, seed=19)
    network = NumpyNetwork.from_keras(model)
    _, state = network.run(_inputs(7, (3, 40, FEATURES)))

    restored = network.state_from_lists(json.loads(json.dumps(network.state_to_lists(state))))

    assert [a.dtype for a in restored] == [np.dtype(np.float64)] * 4
    for got, want in zip(restored, state, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="expected 4"):
        network.state_from_lists(network.state_to_lists(state)[:2])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_keras(name: str) -> None:
    x = np.linspace(-8.0, 8.0, 161).reshape(7, 23)
    expected = np.asarray(keras.activations.get(name)(x.astype("float32")))

    np.testing.assert_allclose(ACTIVATIONS[name](x), expected, atol=1e-5, rtol=1e-5)


def test_unsupported_layer_raises() -> None:
    inputs = keras.Input(shape=(6, FEATURES))
    x = keras.layers.Conv1D(4, 2)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(3)(x)))

    with pytest.raises(NotImplementedError, match="Conv1D"):
        NumpyNetwork.from_keras(model)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda x: keras.layers.LSTM(3, go_backwards=True)(x), "go_backwards"),
        (
            lambda x: keras.layers.Bidirectional(keras.layers.GRU(3), merge_mode=None)(x)[0],
            "merge_mode",
        ),
        (
            lambda x: keras.layers.Dense(2, activation="sparsemax")(keras.layers.GRU(3)(x)),
            "sparsemax",
        ),
        (lambda x: keras.layers.SimpleRNN(3, activation="hard_shrink")(x), "hard_shrink"),
        (
            lambda x: keras.layers.Add()([keras.layers.LSTM(3)(x), keras.layers.GRU(3)(x)]),
            "plain stack",
        ),
    ],
    ids=["go-backwards", "merge-none", "dense-activation", "cell-activation", "branching"],
)
def test_unsupported_options_raise(build: Any, message: str) -> None:
    inputs = keras.Input(shape=(4, FEATURES))
    model = keras.Model(inputs, build(inputs))

    with pytest.raises(NotImplementedError, match=message):
        NumpyNetwork.from_keras(model)


def test_stepping_refuses_bidirectional_and_bad_shapes() -> None:
    bidirectional = _stack(
        keras.Input(shape=(4, FEATURES)), "gru", 1, top_return_sequences=False, bidirectional=True
    )
    with pytest.raises(ValueError, match="bidirectional"):
        network = NumpyNetwork.from_keras(bidirectional)
        network.stepper(network.zero_state(), np.zeros((1, FEATURES - 1)))

    network = NumpyNetwork.from_keras(
        _stack(keras.Input(shape=(4, FEATURES)), "lstm", 1, top_return_sequences=False)
    )
    with pytest.raises(ValueError, match=r"expected \(batch, steps >= 1, 3\)"):
        network.run(np.zeros((1, 1, FEATURES + 1)), network.zero_state())
    with pytest.raises(ValueError, match=r"expected \(2, 5\)"):
        network.run(np.zeros((2, 1, FEATURES)), network.zero_state(1))
    with pytest.raises(ValueError, match=r"expected \(steps, 2\)"):
        network.stepper(network.zero_state(), np.zeros((1, FEATURES)))
    with pytest.raises(ValueError, match="positive integer, got 0"):
        network.zero_state(0)


def test_import_needs_no_tensorflow() -> None:
    code = (
        "import sys, app.ml.engine; "
        "loaded = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
