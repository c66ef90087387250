"""Line plots drawn with matplotlib (Agg backend, no display needed), written as PNG.

Figures are rendered in memory and written atomically, so a failed plot never leaves
half a file behind.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np

from ..train.checkpoint import atomic_write_bytes


def _pyplot():
    """matplotlib.pyplot on the Agg backend (set before pyplot is first imported)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG (atomically) and close it."""
    plt = _pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC", size: int = 480) -> Path:
    """ROC curves ``{label: (fpr, tpr)}`` (both in [0, 1], same length) with the chance diagonal.

    ``size``: width of the PNG in pixels (the height grows with the legend). Returns ``path``.
    """
    plt = _pyplot()
    dpi = 100
    fig, ax = plt.subplots(figsize=(size / dpi, size / dpi + 0.2 * len(curves)), dpi=dpi)
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=1, linestyle="--", label="chance")
    for label, (fpr, tpr) in curves.items():
        ax.plot(np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float), linewidth=2, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (inliers flagged)",
           ylabel="true positive rate (outliers flagged)", title=title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


__all__ = ["plot_roc", "save_figure"]
