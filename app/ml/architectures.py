"""Keras networks: a plain RNN stack with a Dense head, so numpy can mirror it (engine.py).

A network that reads covariates (`n_future` > 0) has a second input, the horizon's future
covariate columns (`features.future_batch`), through one small Dense branch whose output is
concatenated with the top recurrent layer's before the head: the RNN summarises the past, the
branch says what the known future brings.
"""

from __future__ import annotations

import keras

from app.ml.spec import ResolvedSpec

_CELLS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}
# Units of the future covariates' branch: a small summary of the horizon's weather, tanh so that
# it can bend (demand rises with both heat and cold).
FUTURE_BRANCH_UNITS = 16
FUTURE_BRANCH_ACTIVATION = "tanh"


def build_network(
    spec: ResolvedSpec,
    n_inputs: int,
    *,
    batch_size: int | None = None,
    stateful: bool = False,
    n_future: int = 0,
) -> keras.Model:
    """Input -> [Bidirectional(]RNN[)] x layers (Dropout between) -> Dense(horizon); with
    `n_future` future covariate inputs, [RNN output, Dense branch(future)] -> Dense(horizon).

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
    model_inputs = [inputs]
    if n_future:
        # Stream models forecast at every step, so their branch reads every step's future.
        future_shape = (steps, n_future) if sequences_out else (n_future,)
        if stateful:
            future = keras.Input(batch_shape=(batch_size, *future_shape), name="future")
        else:
            future = keras.Input(shape=future_shape, name="future")
        branch = keras.layers.Dense(
            FUTURE_BRANCH_UNITS, activation=FUTURE_BRANCH_ACTIVATION, name="future_branch"
        )(future)
        x = keras.layers.Concatenate(name="join_future")([x, branch])
        model_inputs.append(future)
    # A deseasonalised stream model starts from a zero correction, i.e. from the seasonal fit plus
    # the last deseasonalised level, a strong forecast on its own; it learns only what improves it.
    zero_start = spec.stateful and spec.deseasonalize == "mstl"
    outputs = keras.layers.Dense(
        spec.horizon, kernel_initializer="zeros" if zero_start else "glorot_uniform", name="head"
    )(x)
    return keras.Model(
        model_inputs if n_future else inputs, outputs, name=f"statecast_{spec.cell}"
    )


def recurrent_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The RNN layers of a network built by `build_network` (to reset their state)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
