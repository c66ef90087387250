"""Metrics: likelihoods (:mod:`.likelihood`), sample quality (:mod:`.quality`) and the
feature networks they use (:mod:`.features`). Outlier detection lives in :mod:`genlab.ood`.

>>> from genlab.metrics import evaluate_likelihood, evaluate, write_report
"""

from __future__ import annotations

_EXPORTS = {
    "evaluate_likelihood": "likelihood",
    "per_example_nll": "likelihood",
    "evaluate": "quality",
    "write_report": "quality",
    "fid_from_features": "quality",
    "frechet_distance": "quality",
    "kid": "quality",
    "precision_recall": "quality",
    "density_coverage": "quality",
    "classifier_score": "quality",
    "reference_features": "quality",
    "get_feature_net": "features",
    "auto_feature_net": "features",
    "FeatureNetError": "features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # imported on first use: scipy and the feature networks stay out of `import genlab`
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'genlab.metrics' has no attribute {name!r}")
