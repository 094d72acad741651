"""Processes that end with the process that started them.

Checked by polling the parent's pid rather than with Linux's PR_SET_PDEATHSIG: it works on
every platform, and needs no `preexec_fn`, which is unsafe in a process with threads (the
supervisor starts workers from its watcher thread).
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("statecast.worker")
PARENT_CHECK_INTERVAL_S = 0.5


def watch_parent(parent_pid: int, on_gone: Callable[[], None], message: str,
                 log: dict[str, Any]) -> None:
    """Call `on_gone` (in a daemon thread) once this process's parent is no longer
    `parent_pid`: the parent died and the process was re-parented, even before this call."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_INTERVAL_S)
        logger.warning(message, extra={"action": "orphan_exit", "parent_pid": parent_pid, **log})
        on_gone()

    threading.Thread(target=watch, name="statecast-parent-watch", daemon=True).start()
