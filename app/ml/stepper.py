"""A stateful network stepped one input at a time, where only the first feature is fed back.

A stream rollout feeds each forecast back as the next reading: the first input feature (the
reading's change) is known only after the step before it, while the others (calendar terms)
are known for every step up front. The bottom cell's `FeedbackLoop` takes their share of the
input projection in one matrix product for the whole rollout, so a step costs the cell's own
arithmetic: no per-step checks, concatenation or reshaping, which cost more than the arithmetic
for one stream of a small network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.ml.cells import Cell, FloatArray


class Stepper:
    """One stream's network state, advanced a step at a time; the caller's copy is left alone.

    Args:
        cells: the recurrent cells, bottom first.
        head: the layers above the top cell (Dense), applied to its h.
        state: per cell h (and c), each (1, units), as `NumpyNetwork` lays state out.
        known: every step's inputs but the first feature, (T, F - 1).
    """

    def __init__(
        self,
        cells: Sequence[Cell],
        head: Sequence[Callable[[FloatArray], FloatArray]],
        state: Sequence[FloatArray],
        known: FloatArray,
    ) -> None:
        self._head = list(head)
        bottom = cells[0]
        self._loop = bottom.feedback_loop(state[: bottom.state_count], known)
        self._steps_known = len(known)
        self._upper: list[tuple[Cell, list[FloatArray]]] = []
        offset = bottom.state_count
        for cell in cells[1:]:
            self._upper.append((cell, list(state[offset : offset + cell.state_count])))
            offset += cell.state_count
        self._steps = 0

    def output(self) -> FloatArray:
        """The outputs (out,) that the last step made (before any: the ones the state holds)."""
        h = self._upper[-1][1][0] if self._upper else self._loop.h
        for layer in self._head:
            h = layer(h)
        out: FloatArray = h[0]
        return out

    def step(self, fed: float) -> None:
        """Advance one step whose first input feature is `fed`."""
        if self._steps >= self._steps_known:
            raise ValueError(f"Received a step beyond the {self._steps_known} steps whose inputs are known.")
        self._steps += 1
        self._loop.step(fed)
        h = self._loop.h
        for index, (cell, state) in enumerate(self._upper):
            state = cell.recur(cell.project(h), state)
            self._upper[index] = (cell, state)
            h = state[0]
