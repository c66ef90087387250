"""Figures with axes (matplotlib, object API only: no pyplot, no global state, safe
from several threads). Each function returns a ``matplotlib.figure.Figure``;
:func:`png_bytes` renders one to PNG bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np


def _figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (``dpi`` dots per inch of the figure's size in inches)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC", size: int = 480):
    """ROC curves ``{label: (fpr, tpr)}`` (both in [0, 1], same length) over the chance
    diagonal; ``size``: the width in pixels at 100 dpi (the height grows with the legend)."""
    fig = _figure(size / 100, size / 100 + 0.2 * len(curves))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=1, linestyle="--", label="chance")
    for label, (fpr, tpr) in curves.items():
        ax.plot(np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float), linewidth=2, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (inliers flagged)")
    ax.set_ylabel("true positive rate (outliers flagged)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC", size: int = 480) -> Path:
    """:func:`roc_figure` written atomically as a PNG at ``path``; returns ``path``."""
    from ..train.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, png_bytes(roc_figure(curves, title, size)))
    return Path(path)
