"""Which positions train, validate and test a model, and how stateful batches are cut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from app.ml.data import Split

# "selection" and "calibration" are the validation part's two halves; "calibration_tail" is the
# end of the training part that also calibrates when the second half is short.
Part = Literal["train", "validation", "selection", "calibration", "calibration_tail", "test"]


def part_bounds(split: Split, part: Part) -> tuple[int, int]:
    """Half-open range of positions whose *targets* belong to `part`."""
    if part == "train":
        return 0, split.val_start
    if part == "validation":
        return split.val_start, split.test_start
    if part == "selection":
        return split.val_start, split.calibration_start
    if part == "calibration":
        return split.calibration_start, split.test_start
    if part == "calibration_tail":
        return max(0, split.val_start - split.calibration_tail), split.val_start
    return split.test_start, split.n


def window_ends(
    segments: list[tuple[int, int]],
    split: Split,
    part: Part,
    *,
    window: int,
    horizon: int,
    every: int = 1,
) -> np.ndarray:
    """Forecast origins (last observed position) whose window and targets lie in one segment.

    All `horizon` targets fall inside `part`; the inputs may reach back into earlier parts, which
    is what a forecast at that time could see. With `every` > 1 origins are spaced `every` steps
    apart starting at the beginning of the part (rolling-origin evaluation).
    """
    lo, hi = part_bounds(split, part)
    first_origin = lo - 1
    ends = []
    for start, stop in segments:
        # origin e needs e - window + 1 >= start and e + horizon <= stop - 1 and targets in part.
        e_min = max(start + window - 1, first_origin)
        e_max = min(stop, hi) - 1 - horizon
        if e_max < e_min:
            continue
        if every > 1:
            e_min += (first_origin - e_min) % every
        ends.append(np.arange(e_min, e_max + 1, every))
    return np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)


def masked_window_ends(
    values: np.ndarray,
    split: Split,
    part: Part,
    *,
    window: int,
    horizon: int,
    every: int = 1,
) -> np.ndarray:
    """Forecast origins of a series with regular closed hours: windows may span missing readings.

    An origin is an observed reading with at least one observed target inside `part`; missing
    inputs and targets are masked downstream. With `every` > 1, the last such origin of each block
    of `every` steps from the start of the part (one per day: the day's last open reading).
    """
    lo, hi = part_bounds(split, part)
    first_origin = lo - 1
    e_min = max(window - 1, first_origin)
    e_max = min(len(values), hi) - 1 - horizon
    if e_max < e_min:
        return np.zeros(0, dtype=np.int64)
    present = np.isfinite(values)
    counts = np.concatenate([[0], np.cumsum(present)])
    ends = np.arange(e_min, e_max + 1)
    observed_targets = counts[ends + 1 + horizon] - counts[ends + 1]
    ends = ends[present[ends] & (observed_targets > 0)]
    if every > 1 and len(ends):
        block = (ends - first_origin) // every
        ends = ends[np.concatenate([block[1:] != block[:-1], [True]])]
    origins: npt.NDArray[np.int64] = ends.astype(np.int64)
    return origins


# A stream model's epoch is cut into at least this many batches, so that the state is carried
# from batch to batch many times per epoch; series too short for that train on one lane.
MIN_STATEFUL_BATCHES = 32


@dataclass(frozen=True)
class StatefulLayout:
    """How a stream model's training pieces are cut into chunks and laid into lanes.

    Each piece (a run of usable readings) is cut into `chunk`-step chunks; its last chunk may be
    shorter and is padded (padding weighs nothing), so no reading is dropped. The chunks, in
    order, are dealt into `lanes` contiguous lanes: lane s of batch b+1 continues lane s of
    batch b, and a lane's state is reset wherever it starts a new piece (`reset`).

    Attributes:
        starts: (n_batches, lanes) global position where each chunk starts, -1 for padding.
        lengths: (n_batches, lanes) readings in each chunk (0 for padding).
        reset: (n_batches, lanes) True where the lane's state must start from zero.
    """

    starts: np.ndarray
    lengths: np.ndarray
    reset: np.ndarray

    @property
    def lanes(self) -> int:
        return int(self.starts.shape[1])

    @property
    def batches(self) -> int:
        return int(self.starts.shape[0])


def stateful_layout(pieces: list[tuple[int, int]], chunk: int, max_lanes: int) -> StatefulLayout:
    """Lay `pieces` ([start, stop) global positions) into lanes of `chunk`-step chunks.

    The number of lanes is the largest (up to `max_lanes`) that still gives every epoch at least
    `MIN_STATEFUL_BATCHES` batches.
    """
    starts, lengths, first = [], [], []
    for a, b in pieces:
        for c in range(a, b, chunk):
            starts.append(c)
            lengths.append(min(chunk, b - c))
            first.append(c == a)
    n_chunks = len(starts)
    if n_chunks == 0:
        return StatefulLayout(*(np.zeros((0, 1), dtype=t) for t in (np.int64, np.int64, bool)))
    lanes = int(np.clip(n_chunks // MIN_STATEFUL_BATCHES, 1, max_lanes))
    per_lane = -(-n_chunks // lanes)
    pad = lanes * per_lane - n_chunks
    # Chunk i goes to lane i // per_lane, batch i % per_lane.
    grid_starts = np.array(starts + [-1] * pad, dtype=np.int64).reshape(lanes, per_lane).T
    grid_lengths = np.array(lengths + [0] * pad, dtype=np.int64).reshape(lanes, per_lane).T
    grid_first = np.array(first + [True] * pad, dtype=bool).reshape(lanes, per_lane).T
    grid_first[0, :] = True  # every lane begins an epoch from zero state
    return StatefulLayout(starts=grid_starts, lengths=grid_lengths, reset=grid_first)


def stateful_batches(
    inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray, layout: StatefulLayout, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays for `fit(..., batch_size=layout.lanes, shuffle=False)` of a stateful network.

    Args:
        inputs: per-position inputs (N, F).
        targets: per-position targets (N, H), NaN where a target is unknown.
        weights: per-position weight (N,): 0 where the reading is not to be learnt.
    Returns:
        x (batches * lanes, chunk, F), y (..., chunk, H) with NaN replaced by 0, and the
        per-step sample weights (..., chunk): 0 for padding and where any target is unknown.
    """
    starts = layout.starts.reshape(-1)
    lengths = layout.lengths.reshape(-1)
    steps = np.arange(chunk)[None, :]
    inside = steps < lengths[:, None]
    index = np.where(inside, starts[:, None] + steps, 0)
    x = np.where(inside[..., None], inputs[index], 0.0).astype(np.float32)
    y = targets[index]
    known = inside & ~np.isnan(y).any(axis=-1) & (weights[index] > 0)
    return x, np.nan_to_num(y, nan=0.0).astype(np.float32), known.astype(np.float32)
