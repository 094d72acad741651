"""Where a model's files live: MODEL_DIR/<model id>/ (model.keras, meta.json, the numpy export)."""

import shutil
from collections.abc import Iterable
from pathlib import Path


def model_path(model_dir: Path, model_id: int) -> Path:
    return Path(model_dir) / str(model_id)


def remove_model_files(model_dir: Path, model_ids: Iterable[int]) -> None:
    for model_id in model_ids:
        shutil.rmtree(model_path(model_dir, model_id), ignore_errors=True)
