"""A trained model on disk: model.keras, the numpy network export and meta.json, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.ml.training import TrainedModel

META_FORMAT_VERSION = 1
META_FILE = "meta.json"
KERAS_FILE = "model.keras"
NETWORK_DIR = "network"


def build_meta(trained: TrainedModel) -> dict[str, Any]:
    """Everything besides the weights that serving and the API need, as JSON-able data."""
    import keras  # deferred: only the training process writes artifacts
    import tensorflow as tf

    meta: dict[str, Any] = _json_safe(
        {
            "format_version": META_FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "spec": trained.spec.to_dict(),
            "features": trained.features.to_dict(),
            "scales": dict(trained.scales),
            "mase_scales": dict(trained.mase_scales),
            "conformal": {
                "unit": "series scale",
                "quantiles": trained.conformal,
            },
            "data_range": trained.data_range,
            # Profile models: per series, the regression profile serving evaluates with numpy.
            "profiles": {name: profile.to_dict() for name, profile in trained.profiles.items()},
            "metrics": trained.metrics,
            "history": trained.history,
            "best_epoch": trained.best_epoch,
            "versions": {
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
            },
            "files": {"keras": KERAS_FILE, "network": NETWORK_DIR},
        }
    )
    return meta


def _json_safe(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN/inf to None (PostgreSQL JSON rejects NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def save_artifacts(trained: TrainedModel, directory: str | Path) -> Path:
    """Write the model into `directory`, which must not exist yet.

    Everything goes into a temporary directory beside it that is renamed into place at the end,
    so a crash leaves either no model or a complete one (plus, at worst, a hidden temporary
    directory that `directory.parent` cleanup may remove).

    Raises:
        FileExistsError: `directory` already exists (models are immutable).
    """
    from app.ml.engine import NumpyNetwork

    target = Path(directory)
    if target.exists():
        raise FileExistsError(f"Model directory {target} already exists; expected a new path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        trained.network.save(staging / KERAS_FILE)
        NumpyNetwork.from_keras(trained.network).save(staging / NETWORK_DIR)
        meta_path = staging / META_FILE
        with meta_path.open("w") as f:
            json.dump(build_meta(trained), f, indent=2, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_meta(directory: str | Path) -> dict[str, Any]:
    """Read meta.json of a saved model (no TensorFlow needed)."""
    path = Path(directory) / META_FILE
    with path.open() as f:
        meta: dict[str, Any] = json.load(f)
    if meta.get("format_version") != META_FORMAT_VERSION:
        raise ValueError(
            f"Model metadata {path} has format_version {meta.get('format_version')!r}, expected "
            f"{META_FORMAT_VERSION}."
        )
    return meta
