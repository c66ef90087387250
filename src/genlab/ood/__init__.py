"""Outlier (out-of-distribution) detection with generative models.

Deep generative models often give *higher* likelihood to inputs from another
data set than to their own test data (Nalisnick et al. 2019, "Do Deep
Generative Models Know What They Don't Know?": a model of Fashion-MNIST
prefers MNIST). :func:`score` implements the plain likelihood score and three
corrections, all returning one score per input, **higher = more anomalous**,
in bits per dimension:

* ``"likelihood"``: negative log-likelihood.
* ``"likelihood-ratio"`` (Ren et al. 2019, "Likelihood Ratios for
  Out-of-Distribution Detection"): NLL under the model minus NLL under a
  *background* model trained on randomly perturbed inputs
  (:func:`train_background`), which captures population-level statistics such
  as the number of background pixels.
* ``"typicality"`` (Nalisnick et al. 2019, "Detecting Out-of-Distribution
  Inputs to Deep Generative Models Using Typicality"): a batch test,
  ``| mean NLL of a batch of M inputs - H |`` with H the model's entropy
  estimated as the mean NLL of training data; every input gets its batch's
  score (inputs are batched in the order given).
* ``"complexity"`` (Serra et al. 2020, "Input Complexity and
  Out-of-Distribution Detection with Likelihood-based Generative Models"):
  NLL in bits minus the code length in bits, under a lossless compressor (PNG
  via Pillow, or zlib), of the image the model scores (the binarized image for
  Bernoulli models, the 8-bit image otherwise), per dimension.

Modules: :mod:`.scores` (the scores), :mod:`.background` (the likelihood
ratio's background model), :mod:`.outliers` (outlier sets), :mod:`.report`
(AUROC/AUPR/FPR95, tables, ROC plots: :func:`evaluate_ood`).
"""

from ..viz.plots import plot_roc
from .background import perturb, train_background
from .outliers import outlier_set
from .report import detection_metrics, evaluate_ood, fpr_at_tpr, markdown_table, roc_points
from .scores import (
    DEFAULT_OOD_IW_SAMPLES,
    METHODS,
    compressed_bits,
    nll_bits_per_dim,
    prepare_once,
    score,
    scored_code_bits,
    scores,
    training_entropy,
)

__all__ = [
    "DEFAULT_OOD_IW_SAMPLES",
    "METHODS",
    "compressed_bits",
    "detection_metrics",
    "evaluate_ood",
    "fpr_at_tpr",
    "markdown_table",
    "nll_bits_per_dim",
    "outlier_set",
    "perturb",
    "plot_roc",
    "prepare_once",
    "roc_points",
    "score",
    "scored_code_bits",
    "scores",
    "train_background",
    "training_entropy",
]
