"""Which positions train, validate and test a model, and how stateful batches are cut."""

from __future__ import annotations

from typing import Literal

import numpy as np

from app.ml.data import Split

Part = Literal["train", "validation", "test"]


def part_bounds(split: Split, part: Part) -> tuple[int, int]:
    """Half-open range of positions whose *targets* belong to `part`."""
    if part == "train":
        return 0, split.val_start
    if part == "validation":
        return split.val_start, split.test_start
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


def stateful_batch_starts(n_steps: int, batch_size: int, chunk: int) -> np.ndarray:
    """Start positions (n_batches, batch_size) of stateful training chunks.

    The stream is cut into `batch_size` contiguous lanes; lane s of batch b+1 starts where lane s
    of batch b stopped, so the state a layer carries from one batch to the next belongs to the
    readings that come next. The tail that does not fill a whole batch is dropped.
    """
    n_batches = n_steps // (batch_size * chunk)
    lane_steps = n_batches * chunk
    return (np.arange(batch_size)[None, :] * lane_steps) + (np.arange(n_batches)[:, None] * chunk)


def stateful_batches(
    inputs: np.ndarray, targets: np.ndarray, batch_size: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays for `fit(..., batch_size=batch_size, shuffle=False)` of a stateful network.

    Args:
        inputs: per-step inputs (L, F) of the training stream.
        targets: per-step targets (L, H), NaN where a target is unknown.
    Returns:
        x (n_batches * batch_size, chunk, F), y (..., chunk, H) with NaN replaced by 0, and the
        per-step sample weights (..., chunk): 0 where any target is unknown.
    """
    starts = stateful_batch_starts(len(inputs), batch_size, chunk).reshape(-1)
    index = starts[:, None] + np.arange(chunk)[None, :]
    y = targets[index]
    known = ~np.isnan(y).any(axis=-1)
    return inputs[index], np.nan_to_num(y, nan=0.0), known.astype(np.float32)
