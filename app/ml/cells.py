"""Numpy cells that reproduce Keras SimpleRNN, LSTM and GRU inference, one time step at a time.

Serving must not import TensorFlow, so these cells compute what `keras.layers.SimpleRNN`,
`LSTM` and `GRU` compute, from the raw Keras weights (`kernel`, `recurrent_kernel`, `bias`).
Weights are rearranged once at construction so that the per-step work is two matrix products
and a handful of element-wise operations.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Activation = Callable[[FloatArray], FloatArray]

# Computing in float64 keeps 500 carried steps within ~1e-7 of Keras' float32 (measured; a
# float32 numpy cell drifts about as far as Keras itself does, in another direction).
COMPUTE_DTYPE = np.float64

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x: FloatArray) -> FloatArray:
    # tanh form: one transcendental and no overflow warning for large negative inputs.
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _softplus(x: FloatArray) -> FloatArray:
    return np.logaddexp(0.0, x)


def _elu(x: FloatArray) -> FloatArray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _softmax(x: FloatArray) -> FloatArray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    out: FloatArray = e / np.sum(e, axis=-1, keepdims=True)
    return out


def _log_softmax(x: FloatArray) -> FloatArray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    out: FloatArray = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return out


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(x: FloatArray) -> FloatArray:
    # Keras' string "gelu" is the exact form (approximate=False).
    erf: FloatArray = _erf(x / math.sqrt(2.0))
    return 0.5 * x * (1.0 + erf)


def _hard_sigmoid(x: FloatArray) -> FloatArray:
    # Keras 3 definition: relu6(x + 3) / 6 (Keras 2 used 0.2 * x + 0.5).
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


ACTIVATIONS: dict[str, Activation] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "elu": _elu,
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "celu": lambda x: np.maximum(x, 0.0) + np.expm1(np.minimum(x, 0.0)),
    "softplus": _softplus,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "sigmoid": _sigmoid,
    "log_sigmoid": lambda x: -_softplus(-x),
    "hard_sigmoid": _hard_sigmoid,
    "tanh": np.tanh,
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "hard_silu": lambda x: x * _hard_sigmoid(x),
    "hard_swish": lambda x: x * _hard_sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "gelu": _gelu,
    "exponential": np.exp,
    "squareplus": lambda x: 0.5 * (x + np.sqrt(x * x + 4.0)),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}


def get_activation(name: object, where: str) -> Activation:
    """Return the numpy function for a Keras activation name.

    Args:
        name: the activation as a Keras layer config holds it (a string for built-ins).
        where: the layer and option, for the error message.

    Raises:
        NotImplementedError: for custom activations and built-ins this engine lacks.
    """
    if name is None:
        return ACTIVATIONS["linear"]
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise NotImplementedError(
            f"{where}: unsupported activation {name!r}; the numpy engine supports "
            f"{sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name]


@dataclass(frozen=True)
class CellConfig:
    """What a recurrent cell computes, as read from a Keras layer config."""

    kind: str  # "simple_rnn", "lstm" or "gru"
    units: int
    input_size: int
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"  # unused by simple_rnn
    use_bias: bool = True
    reset_after: bool = True  # gru only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellConfig:
        return cls(**data)


class Cell(abc.ABC):
    """One recurrent cell: `project` the inputs, then `recur` over the carried state."""

    state_count: ClassVar[int] = 1
    gate_count: ClassVar[int] = 1
    _kernel: FloatArray  # (F, G), in the gate order `recur` expects
    _input_bias: FloatArray  # (G,), added to every projected input

    def __init__(self, config: CellConfig, weights: Mapping[str, np.ndarray]) -> None:
        if config.units <= 0:
            raise ValueError(
                f"Received an invalid value for argument `units`, expected a positive integer, "
                f"got {config.units}."
            )
        self.config = config
        self.units = config.units
        self.raw_weights = {name: np.asarray(value) for name, value in weights.items()}
        where = f"{type(self).__name__}(units={config.units})"
        self.activation = get_activation(config.activation, f"{where} `activation`")
        self.recurrent_activation = get_activation(
            config.recurrent_activation, f"{where} `recurrent_activation`"
        )
        width = self.gate_count * config.units
        kernel = self._weight("kernel", (config.input_size, width))
        recurrent_kernel = self._weight("recurrent_kernel", (config.units, width))
        bias_shape = self._bias_shape()
        bias = (
            self._weight("bias", bias_shape)
            if config.use_bias
            else np.zeros(bias_shape, dtype=COMPUTE_DTYPE)
        )
        self._prepare(kernel, recurrent_kernel, bias)

    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gate_count * self.units,)

    def _weight(self, name: str, shape: tuple[int, ...]) -> FloatArray:
        if name not in self.raw_weights:
            raise ValueError(f"{type(self).__name__}: missing weight `{name}`.")
        value = self.raw_weights[name]
        if value.shape != shape:
            raise ValueError(
                f"{type(self).__name__}: received weight `{name}` of shape {value.shape}, "
                f"expected {shape}."
            )
        return value.astype(COMPUTE_DTYPE)

    @abc.abstractmethod
    def _prepare(self, kernel: FloatArray, recurrent_kernel: FloatArray, bias: FloatArray) -> None:
        """Store the weights in the layout the hot loop wants."""

    def project(self, x: FloatArray) -> FloatArray:
        """Input contribution `x @ kernel + bias` for (B, F) or (B, T, F) inputs."""
        projected: FloatArray = x @ self._kernel
        projected += self._input_bias
        return projected

    def project_known(self, known: FloatArray) -> tuple[FloatArray, FloatArray]:
        """`project` split for inputs whose first feature is learned only step by step.

        Args:
            known: the other features of every step, (T, F - 1).

        Returns:
            Their projection with the bias, (T, G), and the kernel row the first feature
            multiplies, (G,): a step's projection is the first plus the second times that feature.
        """
        projected: FloatArray = known @ self._kernel[1:]
        projected += self._input_bias
        return projected, self._kernel[0]

    def feedback_loop(self, state: Sequence[FloatArray], known: FloatArray) -> FeedbackLoop:
        """This cell stepped from one stream's `state` (left unchanged) on inputs whose first
        feature is fed back, the others being `known` (T, F - 1) for every step."""
        return FeedbackLoop(self, state, known)

    @abc.abstractmethod
    def recur(self, projected: FloatArray, state: Sequence[FloatArray]) -> list[FloatArray]:
        """One time step from projected inputs (B, G); returns the new state, h first."""

    def sequence(
        self, x: FloatArray, state: Sequence[FloatArray], return_sequences: bool
    ) -> tuple[FloatArray | None, list[FloatArray]]:
        """Run over x (B, T, F); returns h for every step (B, T, units) or None, final state."""
        # Projecting the whole window at once leaves only the recurrent product in the loop.
        projected = np.ascontiguousarray(np.swapaxes(self.project(x), 0, 1))
        steps = projected.shape[0]
        outputs = (
            np.empty((x.shape[0], steps, self.units), dtype=COMPUTE_DTYPE)
            if return_sequences
            else None
        )
        current = list(state)
        for t in range(steps):
            current = self.recur(projected[t], current)
            if outputs is not None:
                outputs[:, t] = current[0]
        return outputs, current


class FeedbackLoop:
    """A cell stepped one input at a time, where only the first feature is new at each step.

    The other features' share of the input projection is one matrix product for all steps up
    front; a step adds the fed-back feature's rank-one share and recurs.
    """

    def __init__(self, cell: Cell, state: Sequence[FloatArray], known: FloatArray) -> None:
        self.cell = cell
        self.state = list(state)
        self.known, self.fed_row = cell.project_known(known)
        self.steps = 0

    @property
    def h(self) -> FloatArray:
        """The cell's output (1, units) after the last step."""
        return self.state[0]

    def step(self, fed: float) -> None:
        projected = self.fed_row * fed
        projected += self.known[self.steps]
        self.steps += 1
        self.state = self.cell.recur(projected[None], self.state)


class _LSTMFeedbackLoop(FeedbackLoop):
    """`FeedbackLoop` of an LSTM with Keras' default activations, in preallocated buffers.

    One stream's step is a dozen tiny numpy calls, each costing more in overhead than in
    arithmetic, so the step is arranged to need as few as possible:
    - the fed-back feature rides in the recurrent product: h is stored as [h, fed] against the
      recurrent kernel with the feature's kernel row appended;
    - the three sigmoid gates take their 0.5 * x (sigmoid(x) = 0.5 * tanh(0.5 * x) + 0.5) from
      weights halved up front, exactly (halving is exact in binary floating point), so one
      tanh covers all four gates' pre-activations;
    - every intermediate is written into buffers made once.
    It computes what `LSTMCell.recur` computes, up to the order of the additions.
    """

    def __init__(self, cell: LSTMCell, state: Sequence[FloatArray], known: FloatArray) -> None:
        super().__init__(cell, state, known)
        u = cell.units
        half = np.ones(4 * u, dtype=COMPUTE_DTYPE)
        half[: 3 * u] = 0.5
        self.kernel = np.vstack([cell._recurrent_kernel * half, (self.fed_row * half)[None]])
        self.known = self.known * half
        self.hx = np.empty((1, u + 1), dtype=COMPUTE_DTYPE)
        self.hx[:, :u] = state[0]
        self._h = self.hx[:, :u]
        self.c = np.array(state[1], dtype=COMPUTE_DTYPE)
        self.z = np.empty((1, 4 * u), dtype=COMPUTE_DTYPE)
        self.tmp = np.empty((1, u), dtype=COMPUTE_DTYPE)
        z = self.z
        self.gates = z[:, : 3 * u]
        self.i, self.f, self.o, self.candidate = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
        self.state = [self._h, self.c]

    @property
    def h(self) -> FloatArray:
        return self._h

    def step(self, fed: float) -> None:
        self.hx[0, -1] = fed
        z, tmp, c = self.z, self.tmp, self.c
        np.matmul(self.hx, self.kernel, out=z)
        z += self.known[self.steps]
        self.steps += 1
        np.tanh(z, out=z)
        self.gates *= 0.5
        self.gates += 0.5
        c *= self.f
        np.multiply(self.i, self.candidate, out=tmp)
        c += tmp
        np.tanh(c, out=tmp)
        np.multiply(self.o, tmp, out=self._h)


class SimpleRNNCell(Cell):
    """`h = activation(x @ W + h @ U + b)`."""

    def _prepare(self, kernel: FloatArray, recurrent_kernel: FloatArray, bias: FloatArray) -> None:
        self._kernel, self._recurrent_kernel, self._input_bias = kernel, recurrent_kernel, bias

    def recur(self, projected: FloatArray, state: Sequence[FloatArray]) -> list[FloatArray]:
        z = state[0] @ self._recurrent_kernel
        z += projected
        return [self.activation(z)]


class LSTMCell(Cell):
    """Keras LSTM: gates i, f, c, o; `c = f * c + i * act(zc)`, `h = o * act(c)`."""

    state_count = 2
    gate_count = 4

    def _prepare(self, kernel: FloatArray, recurrent_kernel: FloatArray, bias: FloatArray) -> None:
        u = self.units
        # Keras order i, f, c, o -> i, f, o, c: one recurrent_activation call covers 3 gates.
        order = np.r_[0 : 2 * u, 3 * u : 4 * u, 2 * u : 3 * u]
        self._kernel = np.ascontiguousarray(kernel[:, order])
        self._recurrent_kernel = np.ascontiguousarray(recurrent_kernel[:, order])
        self._input_bias = bias[order]

    def feedback_loop(self, state: Sequence[FloatArray], known: FloatArray) -> FeedbackLoop:
        config = self.config
        if (config.activation, config.recurrent_activation) == ("tanh", "sigmoid"):
            return _LSTMFeedbackLoop(self, state, known)
        return FeedbackLoop(self, state, known)

    def recur(self, projected: FloatArray, state: Sequence[FloatArray]) -> list[FloatArray]:
        u = self.units
        h, c = state
        z = h @ self._recurrent_kernel
        z += projected
        gates = self.recurrent_activation(z[:, : 3 * u])
        c_new = gates[:, u : 2 * u] * c
        c_new += gates[:, :u] * self.activation(z[:, 3 * u :])
        return [gates[:, 2 * u :] * self.activation(c_new), c_new]


class GRUCell(Cell):
    """Keras GRU: gates z, r, h; `h = z * h + (1 - z) * hh`, reset applied after or before U."""

    gate_count = 3

    def _bias_shape(self) -> tuple[int, ...]:
        width = self.gate_count * self.units
        return (2, width) if self.config.reset_after else (width,)

    def _prepare(self, kernel: FloatArray, recurrent_kernel: FloatArray, bias: FloatArray) -> None:
        u = self.units
        self._kernel = kernel
        if self.config.reset_after:
            self._input_bias, self._recurrent_bias = bias[0], bias[1]
            self._recurrent_kernel = recurrent_kernel
        else:
            self._input_bias = bias
            self._recurrent_kernel = np.ascontiguousarray(recurrent_kernel[:, : 2 * u])
            self._candidate_kernel = np.ascontiguousarray(recurrent_kernel[:, 2 * u :])

    def recur(self, projected: FloatArray, state: Sequence[FloatArray]) -> list[FloatArray]:
        u = self.units
        h = state[0]
        inner = h @ self._recurrent_kernel
        if self.config.reset_after:
            inner += self._recurrent_bias
            inner[:, : 2 * u] += projected[:, : 2 * u]
            zr = self.recurrent_activation(inner[:, : 2 * u])
            r_h = zr[:, u:] * inner[:, 2 * u :]
        else:
            inner += projected[:, : 2 * u]
            zr = self.recurrent_activation(inner)
            r_h = (zr[:, u:] * h) @ self._candidate_kernel
        r_h += projected[:, 2 * u :]
        hh = self.activation(r_h)
        z = zr[:, :u]
        return [z * h + (1.0 - z) * hh]


CELL_TYPES: dict[str, type[Cell]] = {
    "simple_rnn": SimpleRNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
}


def make_cell(config: CellConfig, weights: Mapping[str, np.ndarray]) -> Cell:
    """Build the cell `config.kind` names from raw Keras weights."""
    if config.kind not in CELL_TYPES:
        raise NotImplementedError(
            f"Received an unsupported cell kind {config.kind!r}, expected one of "
            f"{sorted(CELL_TYPES)}."
        )
    return CELL_TYPES[config.kind](config, weights)
