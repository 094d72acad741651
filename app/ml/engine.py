"""NumpyNetwork: a saved Keras recurrent stack evaluated with numpy, without TensorFlow.

Every statecast network is a plain stack: an input, SimpleRNN/LSTM/GRU layers (maybe inside
`Bidirectional`, maybe with `Dropout` between), then `Dense` layers. `NumpyNetwork.from_keras`
reads such a model's configs and weights once (the only place Keras is imported); `save`/`load`
keep it as network.json + weights.npz, so the API process serves forecasts and steps per-stream
state without importing TensorFlow.

State is a flat list of float64 arrays of shape (B, units): for each recurrent layer h, then c for
an LSTM (a bidirectional layer contributes its forward then its backward states). `state_to_lists`
and `state_from_lists` turn it into JSON lists and back exactly.

A network that reads future covariates has one more piece (`architectures.build_network`): a
Dense branch over its second input, `future`, whose output is concatenated with the top recurrent
layer's before the Dense head. `run` and `output` then take that input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.ml.cells import (
    COMPUTE_DTYPE,
    Activation,
    Cell,
    CellConfig,
    FloatArray,
    get_activation,
    make_cell,
)
from app.ml.stepper import Stepper

State = list[FloatArray]

FORMAT_NAME = "statecast.numpy_network"
FORMAT_VERSION = 1
NETWORK_FILE = "network.json"
WEIGHTS_FILE = "weights.npz"

_KERAS_CELL_KINDS = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
# Identity at inference time, so the numpy network skips them.
_KERAS_INFERENCE_IDENTITY = {
    "Dropout",
    "SpatialDropout1D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
}
MERGE_MODES = ("concat", "sum", "mul", "ave")
# The layer names `architectures.build_network` gives the future covariates' branch and its join.
FUTURE_BRANCH_LAYER = "future_branch"
FUTURE_JOIN_LAYER = "join_future"


@dataclass
class _Recurrent:
    cell: Cell
    return_sequences: bool
    keras_stateful: bool


@dataclass
class _Bidirectional:
    forward: Cell
    backward: Cell
    merge_mode: str
    return_sequences: bool

    def merge(self, forward: FloatArray, backward: FloatArray) -> FloatArray:
        if self.merge_mode == "concat":
            return np.concatenate([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        return (forward + backward) / 2.0


@dataclass
class _Dense:
    kernel: FloatArray
    bias: FloatArray | None
    activation_name: str
    activation: Activation

    def __call__(self, x: FloatArray) -> FloatArray:
        y = x @ self.kernel
        if self.bias is not None:
            y += self.bias
        return self.activation(y)


_Layer = _Recurrent | _Bidirectional | _Dense


def _checked_stack(layers: Sequence[_Layer]) -> list[_Recurrent | _Bidirectional]:
    """The recurrent layers of a stack that is recurrent layers, then Dense layers."""
    recurrent = [layer for layer in layers if not isinstance(layer, _Dense)]
    if not recurrent:
        raise ValueError("A NumpyNetwork needs at least one recurrent layer, got none.")
    if any(isinstance(layer, _Dense) for layer in layers[: len(recurrent)]):
        raise NotImplementedError(
            "A Dense layer before a recurrent layer is not supported; expected recurrent "
            "layers followed by Dense layers."
        )
    for layer in recurrent[:-1]:
        if not layer.return_sequences:
            raise ValueError("Every recurrent layer below the top one must have return_sequences=True.")
    return recurrent


def _output_size(top: _Recurrent | _Bidirectional, dense: Sequence[_Dense]) -> int:
    """Outputs per step: the last Dense layer's units, else the top recurrent layer's."""
    if dense:
        return int(dense[-1].kernel.shape[1])
    if isinstance(top, _Recurrent):
        return top.cell.units
    factor = 2 if top.merge_mode == "concat" else 1
    return factor * top.forward.units


class NumpyNetwork:
    """A Keras recurrent stack (RNN layers then Dense layers) evaluated with numpy."""

    def __init__(
        self,
        *,
        input_size: int,
        layers: Sequence[_Layer],
        keras_batch_size: int | None = None,
        future: _Dense | None = None,
    ) -> None:
        recurrent = _checked_stack(layers)
        if future is not None and not [layer for layer in layers if isinstance(layer, _Dense)]:
            raise ValueError("A future branch joins before a Dense head; got a network without one.")
        self._future = future
        self._input_size = input_size
        self._layers = list(layers)
        self._recurrent = recurrent
        self._dense = [layer for layer in layers if isinstance(layer, _Dense)]
        self._keras_batch_size = keras_batch_size
        self._step_cells = [layer.cell for layer in recurrent if isinstance(layer, _Recurrent)]
        self._state_units: list[int] = []
        for layer in recurrent:
            cells = [layer.cell] if isinstance(layer, _Recurrent) else [layer.forward, layer.backward]
            for cell in cells:
                self._state_units += [cell.units] * cell.state_count
        self._output_size = _output_size(recurrent[-1], self._dense)

    # -- properties -----------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        """Outputs per time step (the last Dense layer's units)."""
        return self._output_size

    @property
    def future_size(self) -> int:
        """Inputs of the future covariates' branch (0: the network has none)."""
        return 0 if self._future is None else int(self._future.kernel.shape[0])

    def _join_future(self, h: FloatArray, future: np.ndarray | None) -> FloatArray:
        """The top recurrent output joined with the future branch's, as the head reads it."""
        if self._future is None:
            if future is not None:
                raise ValueError("Received `future` inputs for a network without a future branch.")
            return h
        if future is None:
            raise ValueError(
                f"This network reads {self.future_size} future covariate inputs; pass `future`."
            )
        future = np.asarray(future, dtype=COMPUTE_DTYPE)
        if future.shape != (*h.shape[:-1], self.future_size):
            raise ValueError(
                f"Received future inputs of shape {future.shape}, expected "
                f"{(*h.shape[:-1], self.future_size)}."
            )
        return np.concatenate([h, self._future(future)], axis=-1)

    @property
    def stateful(self) -> bool:
        """Whether the network can be stepped (`stepper`, `output`): no bidirectional layer (those need
        the whole window)."""
        return all(isinstance(layer, _Recurrent) for layer in self._recurrent)

    @property
    def state_units(self) -> list[int]:
        """Width of each array in the flat state list."""
        return list(self._state_units)

    # -- state ----------------------------------------------------------------------------

    def zero_state(self, batch: int = 1) -> State:
        """Zero state for `batch` streams: per recurrent layer h (and c for LSTM), (B, units)."""
        if batch <= 0:
            raise ValueError(
                f"Received an invalid value for argument `batch`, expected a positive integer, got {batch}."
            )
        return [np.zeros((batch, units), dtype=COMPUTE_DTYPE) for units in self._state_units]

    def state_to_lists(self, state: Sequence[np.ndarray]) -> list[list[list[float]]]:
        """State as nested JSON-ready lists; float64 values survive `json.dumps`/`loads` exactly."""
        return [np.asarray(array, dtype=COMPUTE_DTYPE).tolist() for array in state]

    def state_from_lists(self, data: Sequence[Any]) -> State:
        """Inverse of `state_to_lists`, checked against this network's state layout."""
        state = [np.array(array, dtype=COMPUTE_DTYPE) for array in data]
        self._check_state(state, batch=None)
        return state

    def _check_state(self, state: Sequence[np.ndarray], batch: int | None) -> None:
        if len(state) != len(self._state_units):
            raise ValueError(
                f"Received a state of {len(state)} arrays, expected {len(self._state_units)} "
                f"(widths {self._state_units})."
            )
        if batch is None and state:
            batch = state[0].shape[0] if state[0].ndim == 2 else -1
        for index, (array, units) in enumerate(zip(state, self._state_units, strict=True)):
            if array.shape != (batch, units):
                raise ValueError(
                    f"Received state array {index} of shape {array.shape}, expected ({batch}, {units})."
                )

    # -- evaluation -----------------------------------------------------------------------

    def output(self, state: Sequence[np.ndarray], future: np.ndarray | None = None) -> FloatArray:
        """The outputs (B, out) that the last step made, recomputed from the state it left (and,
        with a future branch, the horizon's covariates `future`, (B, future_size)).

        The top layer's h is its output, so a stream need not store its forecast beside its state.
        """
        if not self.stateful:
            raise ValueError("A bidirectional network's output depends on the whole window, not a state.")
        self._check_state(state, batch=None)
        top = self._step_cells[-1]
        h = self._join_future(
            np.asarray(state[len(self._state_units) - top.state_count], dtype=COMPUTE_DTYPE), future
        )
        for dense in self._dense:
            h = dense(h)
        return h

    def stepper(self, state: Sequence[np.ndarray], known: np.ndarray) -> Stepper:
        """A `Stepper` from one stream's state (batch 1), left unchanged, over steps whose inputs
        but the first feature are `known`, (T, F - 1)."""
        if not self.stateful:
            raise ValueError("A bidirectional network reads the whole window; it cannot be stepped.")
        if self._future is not None:
            raise NotImplementedError("A network with a future branch is run, not stepped.")
        self._check_state(state, batch=1)
        known = np.asarray(known, dtype=COMPUTE_DTYPE)
        if known.ndim != 2 or known.shape[1] != self._input_size - 1:
            raise ValueError(
                f"Received known inputs of shape {known.shape}, expected (steps, {self._input_size - 1})."
            )
        return Stepper(self._step_cells, self._dense, state, known)

    def run(
        self,
        x: np.ndarray,
        state: Sequence[np.ndarray] | None = None,
        *,
        return_sequences: bool = False,
        future: np.ndarray | None = None,
    ) -> tuple[FloatArray, State]:
        """Run over a window.

        Args:
            x: inputs (B, T, F).
            state: initial state (default zeros); left unchanged.
            return_sequences: return outputs for every step (B, T, out) instead of the last
                step's (B, out). Unavailable when a bidirectional top layer returns one vector.
            future: a future branch's inputs, (B, future_size), or (B, T, future_size) with
                `return_sequences`; only for a network that has one.

        Returns:
            The outputs and the final state.
        """
        x = np.asarray(x, dtype=COMPUTE_DTYPE)
        if x.ndim != 3 or x.shape[2] != self._input_size or x.shape[1] == 0:
            raise ValueError(
                f"Received x of shape {x.shape}, expected (batch, steps >= 1, {self._input_size})."
            )
        batch = x.shape[0]
        if state is None:
            state = self.zero_state(batch)
        self._check_state(state, batch=batch)
        top = self._recurrent[-1]
        if return_sequences and isinstance(top, _Bidirectional) and not top.return_sequences:
            raise ValueError(
                "return_sequences=True needs a top bidirectional layer built with "
                "return_sequences=True; this one returns a single vector per window."
            )
        new_state: State = []
        h = x
        for index, layer in enumerate(self._recurrent):
            keep_sequence = index < len(self._recurrent) - 1 or return_sequences
            if isinstance(layer, _Recurrent):
                h, layer_state = self._run_cell(layer.cell, h, state, len(new_state), keep_sequence)
                new_state += layer_state
            else:
                forward, forward_state = self._run_cell(
                    layer.forward, h, state, len(new_state), layer.return_sequences
                )
                new_state += forward_state
                backward, backward_state = self._run_cell(
                    layer.backward, h[:, ::-1], state, len(new_state), layer.return_sequences
                )
                new_state += backward_state
                if layer.return_sequences:
                    backward = backward[:, ::-1]
                h = layer.merge(forward, backward)
                if layer.return_sequences and not keep_sequence:
                    h = h[:, -1]
        h = self._join_future(h, future)
        for dense in self._dense:
            h = dense(h)
        return h, new_state

    @staticmethod
    def _run_cell(
        cell: Cell, x: FloatArray, state: Sequence[np.ndarray], offset: int, keep_sequence: bool
    ) -> tuple[FloatArray, State]:
        initial = [
            np.asarray(array, dtype=COMPUTE_DTYPE) for array in state[offset : offset + cell.state_count]
        ]
        outputs, final = cell.sequence(x, initial, return_sequences=keep_sequence)
        return (outputs if outputs is not None else final[0]), final

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write network.json and weights.npz into `directory` (created if missing)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        weights: dict[str, np.ndarray] = {}
        specs: list[dict[str, Any]] = []
        for index, layer in enumerate(self._layers):
            if isinstance(layer, _Recurrent):
                specs.append(
                    {
                        "type": "recurrent",
                        "cell": layer.cell.config.to_dict(),
                        "return_sequences": layer.return_sequences,
                        "keras_stateful": layer.keras_stateful,
                    }
                )
                _put_weights(weights, f"{index}", layer.cell.raw_weights)
            elif isinstance(layer, _Bidirectional):
                specs.append(
                    {
                        "type": "bidirectional",
                        "forward": layer.forward.config.to_dict(),
                        "backward": layer.backward.config.to_dict(),
                        "merge_mode": layer.merge_mode,
                        "return_sequences": layer.return_sequences,
                    }
                )
                _put_weights(weights, f"{index}.forward", layer.forward.raw_weights)
                _put_weights(weights, f"{index}.backward", layer.backward.raw_weights)
            else:
                specs.append({"type": "dense", "activation": layer.activation_name})
                weights[f"{index}.kernel"] = layer.kernel
                if layer.bias is not None:
                    weights[f"{index}.bias"] = layer.bias
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "input_size": self._input_size,
            "keras_batch_size": self._keras_batch_size,
            "layers": specs,
        }
        if self._future is not None:
            document["future"] = {"activation": self._future.activation_name}
            weights["future.kernel"] = self._future.kernel
            if self._future.bias is not None:
                weights["future.bias"] = self._future.bias
        (path / NETWORK_FILE).write_text(json.dumps(document, indent=2) + "\n")
        with (path / WEIGHTS_FILE).open("wb") as handle:
            # numpy's stub types **kwds as if a key could be `allow_pickle`; names here never are.
            np.savez(handle, **weights)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: str | Path) -> NumpyNetwork:
        """Read a network written by `save`; needs numpy only."""
        path = Path(directory)
        document = json.loads((path / NETWORK_FILE).read_text())
        if document.get("format") != FORMAT_NAME or document.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"Received {path / NETWORK_FILE} with format {document.get('format')!r} version "
                f"{document.get('version')!r}, expected {FORMAT_NAME!r} version {FORMAT_VERSION}."
            )
        with np.load(path / WEIGHTS_FILE, allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
        layers: list[_Layer] = []
        for index, spec in enumerate(document["layers"]):
            if spec["type"] == "recurrent":
                layers.append(
                    _Recurrent(
                        make_cell(CellConfig.from_dict(spec["cell"]), _get_weights(weights, f"{index}")),
                        return_sequences=spec["return_sequences"],
                        keras_stateful=spec["keras_stateful"],
                    )
                )
            elif spec["type"] == "bidirectional":
                layers.append(
                    _Bidirectional(
                        forward=make_cell(
                            CellConfig.from_dict(spec["forward"]),
                            _get_weights(weights, f"{index}.forward"),
                        ),
                        backward=make_cell(
                            CellConfig.from_dict(spec["backward"]),
                            _get_weights(weights, f"{index}.backward"),
                        ),
                        merge_mode=spec["merge_mode"],
                        return_sequences=spec["return_sequences"],
                    )
                )
            elif spec["type"] == "dense":
                layers.append(
                    _make_dense(
                        weights[f"{index}.kernel"],
                        weights.get(f"{index}.bias"),
                        spec["activation"],
                        f"layer {index}",
                    )
                )
            else:
                raise ValueError(f"Received an unknown layer type {spec['type']!r} in {path}.")
        future = None
        if "future" in document:
            future = _make_dense(
                weights["future.kernel"], weights.get("future.bias"),
                document["future"]["activation"], "the future branch",
            )
        return cls(
            input_size=int(document["input_size"]),
            layers=layers,
            keras_batch_size=document["keras_batch_size"],
            future=future,
        )

    # -- reading Keras --------------------------------------------------------------------

    @classmethod
    def from_keras(cls, model: Any) -> NumpyNetwork:
        """Read a Keras model's layer configs and weights (the only place Keras is imported).

        Raises:
            NotImplementedError: for layers and options the engine does not reproduce.
        """
        import keras  # deferred: importing Keras pulls in TensorFlow (~2 s, ~560 MiB)

        branch = next((layer for layer in model.layers if layer.name == FUTURE_BRANCH_LAYER), None)
        input_shape = _keras_input_shape(model, future=branch is not None)
        layers: list[_Layer] = []
        future = None
        previous_output = model.inputs[0]
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            if branch is not None and layer is branch:
                if layer.input is not model.inputs[1]:
                    raise NotImplementedError(
                        f"Model `{model.name}`'s future branch must read its second input."
                    )
                future = _dense_from_keras(keras, layer)
                continue
            if branch is not None and layer.name == FUTURE_JOIN_LAYER:
                # The join: [top recurrent output, branch output] -> the head's input.
                joined = list(layer.input)
                if len(joined) != 2 or joined[0] is not previous_output or joined[1] is not branch.output:
                    raise NotImplementedError(
                        f"Model `{model.name}` joins its future branch at `{layer.name}` with "
                        "something else than the top recurrent output."
                    )
                previous_output = layer.output
                continue
            if not isinstance(model, keras.Sequential):
                # A Sequential is a chain by construction (and a loaded one's layers carry
                # several inbound nodes); a functional graph must be checked.
                _check_chained(model, layer, previous_output)
                previous_output = layer.output
            read = _layer_from_keras(keras, layer)
            if read is not None:
                layers.append(read)
        batch = input_shape[0]
        return cls(
            input_size=int(input_shape[2]),
            layers=layers,
            keras_batch_size=int(batch) if batch is not None else None,
            future=future,
        )


def _keras_input_shape(model: Any, *, future: bool = False) -> tuple[Any, ...]:
    """The (batch, steps, features) input of a one-input (with `future`: plus the future
    branch's), one-output model."""
    if len(model.inputs) != 1 + future or len(model.outputs) != 1:
        raise NotImplementedError(
            f"Model `{model.name}` has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; expected a plain stack with one of each."
        )
    input_shape = tuple(model.inputs[0].shape)
    if len(input_shape) != 3 or input_shape[2] is None:
        raise NotImplementedError(
            f"Model `{model.name}` has input shape {input_shape}; expected (batch, steps, "
            "features) with a known number of features."
        )
    return input_shape


def _layer_from_keras(keras: Any, layer: Any) -> _Layer | None:
    """The engine's layer for one Keras layer; None for a layer that is the identity at inference."""
    class_name = type(layer).__name__
    if class_name in _KERAS_INFERENCE_IDENTITY:
        return None
    if class_name in _KERAS_CELL_KINDS:
        return _recurrent_from_keras(keras, layer)
    if class_name == "Bidirectional":
        return _bidirectional_from_keras(keras, layer)
    if class_name == "Dense":
        return _dense_from_keras(keras, layer)
    raise NotImplementedError(
        f"Layer `{layer.name}` of type {class_name} is not supported by the numpy "
        "engine; expected SimpleRNN, LSTM, GRU (optionally in Bidirectional), "
        "Dropout and Dense layers."
    )


def _recurrent_from_keras(keras: Any, layer: Any) -> _Recurrent:
    config = layer.get_config()
    _check_recurrent_options(layer, config)
    if config.get("go_backwards"):
        raise NotImplementedError(
            f"Layer `{layer.name}` ({type(layer).__name__}) has go_backwards=True; the numpy "
            "engine supports it only inside Bidirectional."
        )
    return _Recurrent(
        _cell_from_keras(keras, layer),
        return_sequences=bool(config["return_sequences"]),
        keras_stateful=bool(config["stateful"]),
    )


def _bidirectional_from_keras(keras: Any, layer: Any) -> _Bidirectional:
    merge_mode = layer.merge_mode
    if merge_mode not in MERGE_MODES:
        raise NotImplementedError(
            f"Layer `{layer.name}` (Bidirectional) has merge_mode={merge_mode!r}; "
            f"expected one of {MERGE_MODES}."
        )
    for inner in (layer.forward_layer, layer.backward_layer):
        if type(inner).__name__ not in _KERAS_CELL_KINDS:
            raise NotImplementedError(
                f"Layer `{layer.name}` (Bidirectional) wraps {type(inner).__name__}; "
                f"expected one of {sorted(_KERAS_CELL_KINDS)}."
            )
        _check_recurrent_options(inner, inner.get_config())
    if layer.forward_layer.go_backwards or not layer.backward_layer.go_backwards:
        raise NotImplementedError(
            f"Layer `{layer.name}` (Bidirectional) has a forward layer that reads "
            "backwards or a backward layer that reads forwards."
        )
    return _Bidirectional(
        forward=_cell_from_keras(keras, layer.forward_layer),
        backward=_cell_from_keras(keras, layer.backward_layer),
        merge_mode=merge_mode,
        return_sequences=bool(layer.return_sequences),
    )


def _dense_from_keras(keras: Any, layer: Any) -> _Dense:
    config = layer.get_config()
    if getattr(layer, "quantization_mode", None):
        raise NotImplementedError(
            f"Layer `{layer.name}` (Dense) is quantized "
            f"({layer.quantization_mode!r}); expected float weights."
        )
    bias = keras.ops.convert_to_numpy(layer.bias) if config["use_bias"] else None
    return _make_dense(
        keras.ops.convert_to_numpy(layer.kernel),
        bias,
        config["activation"],
        f"Layer `{layer.name}` (Dense)",
    )


def _check_chained(model: Any, layer: Any, previous_output: Any) -> None:
    """Refuse graphs that are not a single chain in `model.layers` order."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1 or layer.input is not previous_output:
        raise NotImplementedError(
            f"Model `{model.name}` is not a plain stack at layer `{layer.name}`; expected each "
            "layer to be called once on the previous layer's output."
        )


def _check_recurrent_options(layer: Any, config: Mapping[str, Any]) -> None:
    if config.get("return_state"):
        raise NotImplementedError(f"Layer `{layer.name}` has return_state=True; expected a plain stack.")


def _cell_from_keras(keras: Any, layer: Any) -> Cell:
    config = layer.get_config()
    kind = _KERAS_CELL_KINDS[type(layer).__name__]
    cell = layer.cell
    weights = {"kernel": cell.kernel, "recurrent_kernel": cell.recurrent_kernel}
    if config["use_bias"]:
        weights["bias"] = cell.bias
    arrays = {name: keras.ops.convert_to_numpy(value) for name, value in weights.items()}
    where = f"Layer `{layer.name}` ({type(layer).__name__})"
    for option in ("activation", "recurrent_activation"):
        if option in config:
            get_activation(config[option], f"{where} `{option}`")
    cell_config = CellConfig(
        kind=kind,
        units=int(config["units"]),
        input_size=int(arrays["kernel"].shape[0]),
        activation=config["activation"],
        recurrent_activation=config.get("recurrent_activation", "sigmoid"),
        use_bias=bool(config["use_bias"]),
        reset_after=bool(config.get("reset_after", True)),
    )
    return make_cell(cell_config, arrays)


def _make_dense(kernel: np.ndarray, bias: np.ndarray | None, activation_name: str, where: str) -> _Dense:
    if kernel.ndim != 2 or (bias is not None and bias.shape != (kernel.shape[1],)):
        raise ValueError(
            f"{where}: received kernel {kernel.shape} and bias "
            f"{None if bias is None else bias.shape}, expected (inputs, units) and (units,)."
        )
    return _Dense(
        kernel=np.asarray(kernel, dtype=COMPUTE_DTYPE),
        bias=None if bias is None else np.asarray(bias, dtype=COMPUTE_DTYPE),
        activation_name=activation_name,
        activation=get_activation(activation_name, f"{where} `activation`"),
    )


def _put_weights(target: dict[str, np.ndarray], prefix: str, source: Mapping[str, np.ndarray]) -> None:
    for name, value in source.items():
        target[f"{prefix}.{name}"] = value


def _get_weights(weights: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {
        name[len(prefix) + 1 :]: value
        for name, value in weights.items()
        if name.startswith(prefix + ".") and "." not in name[len(prefix) + 1 :]
    }
