"""`auto`: train a few candidate specs within a time budget and keep the best by validation MASE.

The search knows a trained model only by its metrics and is handed the function that trains one,
so that `training` calls it without the two importing each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from app.ml.data import TrainingDataError
from app.ml.spec import DEFAULT_AUTO_BUDGET_S, ModelSpec


class Scored(Protocol):
    """A trained model as the search sees it: its metrics (`training.TrainedModel`)."""

    metrics: dict[str, Any]


Trained = TypeVar("Trained", bound=Scored)

# Tried in this order until the budget runs out: the default recipe first (a stream model, the
# best measured on electricity demand), the window model beside it, then one change at a time
# along the axes that mattered elsewhere.
CANDIDATES: tuple[dict[str, Any], ...] = (
    {},
    {"stateful": False},
    {"cell": "lstm"},
    {"units": 32},
    {"bidirectional": True},
    {"stateful": False, "deseasonalize": "none", "units": 64},
    {"stateful": False, "layers": 2, "units": 32},
)


# With covariates offered and none chosen by the spec, the default without them comes third:
# `auto` drops them if validation says so.
WITHOUT_COVARIATES: dict[str, Any] = {"covariates": []}


def candidate_specs(spec: ModelSpec, covariates: bool = False) -> list[tuple[dict[str, Any], ModelSpec]]:
    """The searched specs: the user's fixed fields (horizon, fractions, seed, ...) with each change;
    `covariates`: the series offer covariates."""
    base = spec.model_dump(exclude={"auto", "budget_s", *set().union(*CANDIDATES)})
    changes = list(CANDIDATES)
    if covariates and spec.covariates is None:
        changes.insert(2, WITHOUT_COVARIATES)
    return [(change, ModelSpec(**{**base, **change})) for change in changes]


def validation_mase(trained: Scored) -> float:
    return float(trained.metrics["validation"]["full_horizon"]["model"]["mase"])


def search(
    spec: ModelSpec, fit: Callable[[ModelSpec], Trained], *, covariates: bool = False
) -> Trained:
    """Fit candidates while the budget lasts; the best by validation MASE, with every score in
    `metrics["auto"]`.

    A candidate starts only when the mean time of those before it still fits the budget; the first
    always runs. Candidates the data cannot train are recorded with their error and skipped.
    """
    budget_s = spec.budget_s if spec.budget_s is not None else DEFAULT_AUTO_BUDGET_S
    start = time.monotonic()
    records: list[dict[str, Any]] = []
    best: Trained | None = None
    best_index = -1
    first_error: TrainingDataError | None = None
    for change, candidate in candidate_specs(spec, covariates):
        elapsed_s = time.monotonic() - start
        if records and elapsed_s + elapsed_s / len(records) > budget_s:
            break
        began = time.monotonic()
        try:
            trained = fit(candidate)
        except TrainingDataError as error:
            first_error = first_error or error
            records.append({"spec": change, "validation_mase": None, "seconds": 0.0, "error": str(error)})
            continue
        score = validation_mase(trained)
        records.append(
            {"spec": change, "validation_mase": score, "seconds": round(time.monotonic() - began, 2)}
        )
        if best is None or score < validation_mase(best):
            best, best_index = trained, len(records) - 1
    if best is None:
        assert first_error is not None
        raise first_error
    for i, record in enumerate(records):
        record["chosen"] = i == best_index
    best.metrics["auto"] = records
    return best
