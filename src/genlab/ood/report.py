"""Detection metrics and reports: AUROC, AUPR and FPR at 95% TPR with the outliers as the
positive class, a markdown table, a JSON report and one ROC plot per outlier set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..metrics.likelihood import as_images01
from ..viz.plots import plot_roc
from .scores import METHODS, _iw, scores, training_entropy


def fpr_at_tpr(in_scores, out_scores, percent: int = 95) -> float:
    """Fraction of inliers flagged (score >= t) at the highest threshold t that still flags
    at least ``percent``% of the outliers. Exact on tied scores: t is the k-th largest
    outlier score with k = ceil(percent * n_out / 100), counted in integers."""
    a = np.asarray(in_scores, dtype=np.float64).ravel()
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    k = -(-int(percent) * len(b) // 100)  # the fewest outliers that make up percent% of them
    t = np.sort(b)[len(b) - k]  # the k-th largest: every higher threshold flags fewer than k
    return float(np.mean(a >= t))


def detection_metrics(in_scores, out_scores) -> dict[str, float]:
    """AUROC, AUPR and FPR at 95% TPR, outliers as the positive class (higher score = outlier).

    * ``auroc``: probability that a random outlier scores higher than a random inlier (ties count half);
    * ``aupr``: average precision for finding the outliers;
    * ``fpr95``: fraction of inliers flagged at the highest threshold that still flags 95% of the
      outliers (:func:`fpr_at_tpr`).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    a = np.asarray(in_scores, dtype=np.float64).ravel()
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("need at least one inlier and one outlier score")
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    s = np.r_[a, b]
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": fpr_at_tpr(a, b, 95),
    }


def roc_points(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (fpr, tpr), outliers positive, from (0, 0) to (1, 1)."""
    from sklearn.metrics import roc_curve

    a, b = np.asarray(in_scores, np.float64).ravel(), np.asarray(out_scores, np.float64).ravel()
    fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])
    return fpr, tpr


def markdown_table(results: Mapping[str, Mapping[str, Mapping[str, float]]], title: str | None = None) -> str:
    """{outlier set: {method: {auroc, aupr, fpr95}}} -> a markdown table."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| outlier set | method | AUROC | AUPR | FPR@95%TPR |", "|---|---|---|---|---|"]
    for name, per_method in results.items():
        for method, r in per_method.items():
            lines.append(f"| {name} | {method} | {r['auroc']:.3f} | {r['aupr']:.3f} | {r['fpr95']:.3f} |")
    return "\n".join(lines) + "\n"


def evaluate_ood(
    model,
    in_data,
    out_sets: Mapping[str, Any],
    methods: Sequence[str] = ("likelihood", "typicality", "complexity"),
    *,
    background=None,
    train_data=None,
    train_entropy: float | None = None,
    typicality_batch: int = 10,
    compressor: str = "png",
    iw_samples: int | None = None,
    max_examples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score in-distribution data and each outlier set with each method.

    Args:
        model: the in-distribution likelihood model.
        in_data: in-distribution test inputs (ImageDataset, uint8 or [0, 1] floats).
        out_sets: {name: inputs} of outlier sets (see :func:`outlier_set`).
        methods: any of :data:`METHODS`. "likelihood-ratio" needs ``background``;
            "typicality" needs ``train_entropy`` or ``train_data``.
        max_examples: use at most this many inputs of each set (the first ones).
        out_dir: when given, writes ``ood.json``, ``ood.md`` and one ROC PNG per outlier set.
        progress: show a progress bar per scored set.

    Returns:
        ``{"results": {set: {method: {"auroc", "aupr", "fpr95"}}}, "mean_scores":
        {set: {method: mean}}, "n_in", "n_out": {set: n}, "settings", "markdown"}``.
        Outliers are the positive class.
    """
    for mth in methods:
        if mth not in METHODS:
            raise ValueError(f"unknown OOD method {mth!r}; choose from {', '.join(METHODS)}")
    if "typicality" in methods and train_entropy is None:
        if train_data is None:
            raise ValueError("the typicality method needs train_entropy= or train_data=")
        train_entropy = training_entropy(model, train_data, iw_samples=iw_samples, batch_size=batch_size, seed=seed)

    def _cap(d):
        images, _, _ = as_images01(d)
        return images[:max_examples] if max_examples is not None else images

    kw = dict(
        background=background,
        train_entropy=train_entropy,
        typicality_batch=typicality_batch,
        compressor=compressor,
        iw_samples=iw_samples,
        batch_size=batch_size,
        seed=seed,
    )
    x_in = _cap(in_data)
    in_scores = scores(model, x_in, list(methods), progress=progress, **kw)
    results: dict[str, dict[str, dict[str, float]]] = {}
    means: dict[str, dict[str, float]] = {"in-distribution": {m: float(s.mean()) for m, s in in_scores.items()}}
    n_out = {}
    curves: dict[str, dict[str, tuple]] = {}
    for name, data in out_sets.items():
        x_out = _cap(data)
        if tuple(x_out.shape[1:]) != tuple(x_in.shape[1:]):
            raise ValueError(
                f"outlier set {name!r} has shape {tuple(x_out.shape[1:])}, the in-distribution data "
                f"{tuple(x_in.shape[1:])}; use genlab.ood.outlier_set to convert it"
            )
        n_out[name] = len(x_out)
        results[name], means[name], curves[name] = {}, {}, {}
        out_scores = scores(model, x_out, list(methods), progress=progress, **kw)
        for mth in methods:
            s_out = out_scores[mth]
            results[name][mth] = detection_metrics(in_scores[mth].numpy(), s_out.numpy())
            means[name][mth] = float(s_out.mean())
            curves[name][mth] = roc_points(in_scores[mth].numpy(), s_out.numpy())
    report = {
        "results": results,
        "mean_scores": means,
        "n_in": len(x_in),
        "n_out": n_out,
        "settings": {
            "methods": list(methods),
            "positive_class": "outliers (higher score = more anomalous)",
            "units": "bits per dimension",
            "iw_samples": _iw(model, iw_samples),
            "typicality_batch": typicality_batch if "typicality" in methods else None,
            "train_entropy_bits_per_dim": train_entropy,
            "compressor": compressor if "complexity" in methods else None,
            "seed": seed,
        },
    }
    report["markdown"] = markdown_table(results)
    if out_dir is not None:
        import json

        from ..io import atomic_write_bytes, atomic_write_json

        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "ood.json", json.loads(json.dumps(report)))
        atomic_write_bytes(out_dir / "ood.md", report["markdown"].encode())
        report["plots"] = []
        for name, per in curves.items():
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            p = plot_roc(
                {f"{m} (AUROC {results[name][m]['auroc']:.3f})": c for m, c in per.items()},
                out_dir / f"roc-{safe}.png",
                title=f"ROC: in-distribution vs {name}",
            )
            report["plots"].append(str(p))
    return report


__all__ = ["detection_metrics", "evaluate_ood", "fpr_at_tpr", "markdown_table", "roc_points"]
