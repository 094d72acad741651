"""`statecast serve` under uvicorn: one API process, or several on one port.

Several processes are uvicorn's own `workers`: the parent binds the port once and spawns the
processes, restarts one that dies, and stops them all on SIGTERM. A spawned process builds its
application from the environment (`app_factory`), so every setting reaches it as a `STATECAST_`
variable. Several processes add up their Prometheus counters only in multiprocess mode; when the
operator has not chosen a folder for it, `statecast serve` makes a fresh one for the run.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.logs import configure_logging

logger = logging.getLogger("statecast.serving")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
APP_FACTORY = "app.serving:app_factory"
HTTP_PROTOCOL = "app.http_protocol:GuardedHttpToolsProtocol"


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the `STATECAST_` variables that make another process read the same ones."""
    return {f"STATECAST_{name.upper()}": str(value)
            for name, value in settings.model_dump(mode="json").items() if value is not None}


def app_factory() -> FastAPI:
    """The application of one API process, built from its environment (uvicorn calls this)."""
    from app.main import create_app

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


@contextmanager
def multiprocess_metrics(processes: int) -> Iterator[None]:
    """A fresh multiprocess-metrics folder for several processes, unless one is set already."""
    if processes == 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="statecast-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def run_api(settings: Settings) -> None:
    """Serve the API on `settings.host:port` in `settings.api_processes` processes until stopped."""
    import uvicorn

    # Spawned API processes (and the app factory in this one) read their settings from here.
    os.environ.update(settings_env(settings))
    get_settings.cache_clear()
    uvicorn.run(APP_FACTORY, factory=True, workers=settings.api_processes,
                host=settings.host, port=settings.port, log_level=settings.log_level,
                # log_config=None: uvicorn's lines go through the service's logging (JSON by
                # default) instead of the plain-text handlers it would install.
                access_log=False, log_config=None, http=HTTP_PROTOCOL)
