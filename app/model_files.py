"""Where a model's files live: MODEL_DIR/<model id>/ (model.keras, meta.json, the numpy export)."""

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def model_path(model_dir: Path, model_id: int) -> Path:
    return Path(model_dir) / str(model_id)


def attempt_path(model_dir: Path, model_id: int, attempt: int) -> Path:
    """Where one training attempt writes its model before it may claim MODEL_DIR/<id>/.

    Each attempt has its own, so an orphaned attempt can never collide with the current one;
    hidden, so listings of the folder show models only.
    """
    return Path(model_dir) / f".{model_id}.attempt-{attempt}"


def install_attempt(model_dir: Path, model_id: int, attempt: int) -> Path:
    """Move an attempt's complete model into place; call only while holding the job's fence.

    A complete model already in place (an earlier attempt installed it, then died before
    recording it) is kept and this attempt's copy dropped: both come from the same spec and
    data. A partial one (no meta.json) is replaced.
    """
    target = model_path(model_dir, model_id)
    staged = attempt_path(model_dir, model_id, attempt)
    if (target / "meta.json").exists():
        shutil.rmtree(staged, ignore_errors=True)
        return target
    if target.exists():
        shutil.rmtree(target)
    os.rename(staged, target)
    return target


def remove_model_files(model_dir: Path, model_ids: Iterable[int]) -> None:
    for model_id in model_ids:
        shutil.rmtree(model_path(model_dir, model_id), ignore_errors=True)
        for staged in Path(model_dir).glob(f".{model_id}.attempt-*"):
            shutil.rmtree(staged, ignore_errors=True)
