"""Draw a forecast with its intervals over recent history into an image (matplotlib, lazily)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Bands are drawn widest first with one light shade, so narrower ones come out darker.
BAND_ALPHA = 0.18
FIGURE_SIZE_IN = (11.0, 4.5)
DPI = 110


def plot_forecast(path: Path, title: str, history: Sequence[dict[str, Any]],
                  points: Sequence[dict[str, Any]], levels: Sequence[int]) -> None:
    """Write `path` (PNG, SVG or PDF by its suffix): history, forecast mean and its bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    figure, axes = plt.subplots(figsize=FIGURE_SIZE_IN, dpi=DPI)
    try:
        if history:
            ts = pd.to_datetime([r["ts"] for r in history])
            axes.plot(ts, [r["value"] for r in history], color="#334155", lw=1.0, label="history")
        if points:
            ts = pd.to_datetime([p["ts"] for p in points])
            for level in sorted(levels, reverse=True):
                if points[0].get(f"lower_{level}") is None:
                    continue
                axes.fill_between(ts, [p[f"lower_{level}"] for p in points],
                                  [p[f"upper_{level}"] for p in points], color="#2563eb",
                                  alpha=BAND_ALPHA, lw=0, label=f"{level}% interval")
            axes.plot(ts, [p["mean"] for p in points], color="#2563eb", lw=1.6, label="forecast")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", frameon=False, ncols=4)
        figure.autofmt_xdate()
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)  # the README writes under data/
        figure.savefig(path)
    finally:
        plt.close(figure)
