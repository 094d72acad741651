"""Loaded forecasters, kept per process (LRU) so a request never reads model files again.

Entries are keyed by model id and the time the model became ready: a model deleted and its id
never reused, or its files rewritten under a new ready time, can never be served stale.
"""

import logging
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

from app.errors import Unavailable
from app.ml.forecaster import Forecaster
from app.model_files import model_path
from app.observability.metrics import MODEL_CACHE_HITS, MODEL_CACHE_MISSES

logger = logging.getLogger("statecast.api")


class ForecasterCache:
    def __init__(self, model_dir: Path, max_models: int) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be a positive integer, got {max_models}")
        self.model_dir = model_dir
        self.max_models = max_models
        self._entries: OrderedDict[int, tuple[datetime | None, Forecaster]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, model_id: int, ready_at: datetime | None) -> Forecaster:
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None and entry[0] == ready_at:
                self._entries.move_to_end(model_id)
                self.hits += 1
                MODEL_CACHE_HITS.inc()
                return entry[1]
        try:
            forecaster = Forecaster.load(model_path(self.model_dir, model_id))
        except Exception as exc:  # missing, truncated or foreign files: all mean "cannot serve"
            logger.error("model files unreadable", exc_info=exc, extra={
                "action": "model_load_failed", "model_id": model_id})
            raise Unavailable(
                f"Model {model_id}'s files are missing or unreadable on this server; "
                "an operator must restore them (or retrain the model)", model_id=model_id,
            ) from None
        with self._lock:
            self.misses += 1
            MODEL_CACHE_MISSES.inc()
            self._entries[model_id] = (ready_at, forecaster)
            self._entries.move_to_end(model_id)
            while len(self._entries) > self.max_models:
                self._entries.popitem(last=False)
        return forecaster

    def evict(self, model_id: int) -> None:
        with self._lock:
            self._entries.pop(model_id, None)

    def __len__(self) -> int:
        return len(self._entries)
