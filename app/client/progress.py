"""A progress bar for plain terminals, written to stderr so stdout stays clean for data."""

import sys
import time
from typing import TextIO

BAR_WIDTH_CHARS = 30
# Redraws faster than a person reads only cost time; logs (not a terminal) get fewer lines.
TTY_REDRAW_S = 0.1
LOG_LINE_S = 5.0


class ProgressBar:
    """`label [#########.........]  30% suffix`, redrawn in place on a terminal.

    Where the stream is not a terminal (a log file, CI) it writes whole lines, at most one every
    few seconds, and always the last state on `close()`.
    """

    def __init__(self, total: float, *, label: str = "", stream: TextIO | None = None) -> None:
        self.total = max(float(total), 1e-12)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = self.stream.isatty()
        self.done = 0.0
        self.suffix = ""
        self._drawn_at_s = -float("inf")
        self._last_line = ""

    def update(self, done: float, suffix: str = "", *, total: float | None = None) -> None:
        if total is not None:
            self.total = max(float(total), 1e-12)
        self.done = min(max(float(done), 0.0), self.total)
        self.suffix = suffix
        now_s = time.monotonic()
        if now_s - self._drawn_at_s >= (TTY_REDRAW_S if self.is_tty else LOG_LINE_S):
            self._draw()
            self._drawn_at_s = now_s

    def render(self) -> str:
        fraction = self.done / self.total
        filled = round(fraction * BAR_WIDTH_CHARS)
        bar = "#" * filled + "." * (BAR_WIDTH_CHARS - filled)
        parts = [self.label, f"[{bar}]", f"{100 * fraction:3.0f}%", self.suffix]
        return " ".join(p for p in parts if p)

    def interrupt(self, line: str) -> None:
        """Write a line of its own (a warning) and redraw the bar below it."""
        if self.is_tty:
            self.stream.write("\r" + " " * len(self._last_line) + "\r")
        self.stream.write(line + "\n")
        self._last_line = ""
        self._draw()
        self._drawn_at_s = time.monotonic()

    def close(self) -> None:
        self._draw()
        if self.is_tty:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        line = self.render()
        if self.is_tty:
            # Pad to wipe what a longer previous line left behind.
            self.stream.write("\r" + line.ljust(len(self._last_line)))
        elif line != self._last_line:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_line = line


def format_duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `1h02m`; `?` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    whole_s = round(seconds)
    if whole_s < 60:
        return f"{whole_s}s"
    if whole_s < 3600:
        return f"{whole_s // 60}m{whole_s % 60:02d}s"
    return f"{whole_s // 3600}h{whole_s % 3600 // 60:02d}m"


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
