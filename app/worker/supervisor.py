"""`statecast serve`'s embedded workers, watched and restarted when they die."""

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger("statecast.supervisor")
# A worker that died is restarted after this long, doubling for each death in a row up to the
# cap; one that then runs for RESTART_RESET_S counts as healthy again.
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 60.0
RESTART_RESET_S = 60.0
CHECK_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 15.0


@dataclass
class Slot:
    """One worker the supervisor keeps alive."""

    process: subprocess.Popen[bytes] | None
    started: float
    restarts: int = 0
    backoff_s: float = RESTART_FIRST_S
    restart_at: float | None = None


class Supervisor:
    """Keeps `count` processes of `argv` running; a dead one is reaped and restarted with backoff."""

    def __init__(self, argv: Sequence[str], count: int, *, env: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.argv = list(argv)
        self.env = env
        self.clock = clock
        self.slots = [Slot(process=None, started=0.0) for _ in range(count)]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, name="statecast-supervisor",
                                        daemon=True)
        self._thread.start()

    def _spawn(self, slot: Slot) -> None:
        slot.process = subprocess.Popen(self.argv, env=self.env)
        slot.started = self.clock()
        slot.restart_at = None

    def check(self) -> None:
        """One round: reap dead workers (no zombies) and restart those whose backoff is over."""
        now = self.clock()
        for index, slot in enumerate(self.slots):
            if slot.restart_at is not None:
                if now >= slot.restart_at and not self._stopping.is_set():
                    slot.restarts += 1
                    self._spawn(slot)
                    logger.warning("worker restarted", extra={
                        "action": "worker_restart", "slot": index, "restarts": slot.restarts,
                        "pid": slot.process.pid if slot.process else None})
                continue
            if slot.process is None:
                continue
            code = slot.process.poll()  # reaps it
            if code is None:
                if now - slot.started >= RESTART_RESET_S:
                    slot.backoff_s = RESTART_FIRST_S
                continue
            slot.restart_at = now + slot.backoff_s
            logger.error("worker died; restarting it", extra={
                "action": "worker_died", "slot": index, "exit_code": code,
                "pid": slot.process.pid, "restart_in_s": slot.backoff_s})
            slot.backoff_s = min(slot.backoff_s * 2, RESTART_MAX_S)

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_INTERVAL_S):
            self.check()

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [slot.process for slot in self.slots if slot.process is not None]

    def stop(self) -> None:
        """Stop watching, then SIGTERM every worker and wait (SIGKILL after STOP_TIMEOUT_S)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
