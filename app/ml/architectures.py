"""Keras networks: a plain RNN stack with a Dense head, so numpy can mirror it (engine.py)."""

from __future__ import annotations

import keras

from app.ml.spec import ResolvedSpec

_CELLS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}


def build_network(
    spec: ResolvedSpec,
    n_inputs: int,
    *,
    batch_size: int | None = None,
    stateful: bool = False,
) -> keras.Model:
    """Input -> [Bidirectional(]RNN[)] x layers (Dropout between) -> Dense(horizon).

    Window models return the last step only. Stream models (`spec.stateful`) return a forecast
    at every step; with `stateful=True` the layers carry state across batches, which needs a
    fixed `batch_size`. The same weights fit the stateful training network and its stateless
    twin that validates and is exported for serving.
    """
    sequences_out = spec.stateful
    steps = None
    if stateful:
        inputs = keras.Input(batch_shape=(batch_size, steps, n_inputs), name="inputs")
    else:
        inputs = keras.Input(shape=(steps, n_inputs), name="inputs")
    x = inputs
    for i in range(spec.layers):
        last = i == spec.layers - 1
        layer = _CELLS[spec.cell](
            spec.units,
            return_sequences=sequences_out or not last,
            stateful=stateful,
            name=f"{spec.cell}_{i}",
        )
        x = (
            keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")(x)
            if (spec.bidirectional)
            else layer(x)
        )
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, seed=spec.seed + i, name=f"dropout_{i}")(x)
    # A deseasonalised stream model starts from a zero correction, i.e. from the seasonal fit plus
    # the last deseasonalised level, a strong forecast on its own; it learns only what improves it.
    zero_start = spec.stateful and spec.deseasonalize == "mstl"
    outputs = keras.layers.Dense(
        spec.horizon, kernel_initializer="zeros" if zero_start else "glorot_uniform", name="head"
    )(x)
    return keras.Model(inputs, outputs, name=f"statecast_{spec.cell}")


def recurrent_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The RNN layers of a network built by `build_network` (to reset their state)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
