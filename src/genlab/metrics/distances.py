"""Sample-quality estimators on feature arrays of real and generated images.

All metrics take feature arrays ``(N, d)`` (numpy or torch; computed in float64):

* :func:`frechet_distance` / :func:`fid_from_features`: the Frechet distance
  between Gaussians fitted to the two feature sets (Heusel et al. 2017),
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``. The trace of the
  matrix square root is computed from the eigenvalues of the symmetric PSD
  matrix ``S1^1/2 S2 S1^1/2`` (same eigenvalues as ``S1 S2``), which avoids the
  complex parts and instabilities of a general ``sqrtm``. FID is biased for
  small N: below 2,000 samples a warning recommends KID.
* :func:`kid`: the kernel inception distance (Binkowski et al. 2018), the
  unbiased MMD^2 estimate with the polynomial kernel ``(x.y / d + 1)^3``,
  averaged over random subsets, with its population standard deviation over
  subsets (ddof = 0, as torch-fidelity and torchmetrics).
* :func:`precision_recall`: improved precision and recall (Kynkaanniemi et al.
  2019): a sample is "in" a set's manifold if it falls inside the closed k-NN
  ball (distance <= radius) of some point of that set.
* :func:`density_coverage`: density and coverage (Naeem et al. 2020), with open
  balls (distance < radius) as their reference code (the ``prdc`` package).
* :func:`classifier_score`: an Inception-Score-style ``exp E[KL(p(y|x) || p(y))]``
  on the softmax of genlab's own classifier (not comparable with published IS).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

#: Below this many samples FID is strongly biased; KID is recommended instead.
MIN_FID_SAMPLES = 2000


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, d), got shape {x.shape}")
    return x


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]} (use the same feature network for both sets)"
        )


# ------------------------------------------------------------------ FID


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), covariance (d, d)) of features (N, d), unbiased covariance (N - 1)."""
    f = _np(features)
    if len(f) < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^1/2) = sum_i sqrt(lambda_i) with lambda_i the eigenvalues of the
    symmetric PSD matrix S1^1/2 S2 S1^1/2 (negative round-off clipped to 0).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


def fid_from_features(real, fake, *, warn: bool = True) -> float:
    """FID between two feature sets (N, d) and (M, d)."""
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    if warn and min(len(a), len(b)) < MIN_FID_SAMPLES:
        warnings.warn(
            f"FID from {min(len(a), len(b))} samples (< {MIN_FID_SAMPLES}) is strongly biased upwards and unstable; "
            "compare models with KID (unbiased) instead, or use more samples",
            stacklevel=2,
        )
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


# ------------------------------------------------------------------ KID


def _poly_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> float:
    """Unbiased MMD^2 with the polynomial kernel (gamma = 1/d by default)."""
    d = x.shape[1]
    gamma = 1.0 / d if gamma is None else gamma
    m, n = len(x), len(y)
    kxx = _poly_kernel(x, x, degree, gamma, coef0)
    kyy = _poly_kernel(y, y, degree, gamma, coef0)
    kxy = _poly_kernel(x, y, degree, gamma, coef0)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(
    real, fake, *, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3, seed: int = 0
) -> tuple[float, float]:
    """Kernel inception distance: (mean, std) of the unbiased MMD^2 over random subsets.

    Each subset draws ``min(subset_size, N, M)`` vectors from each set without
    replacement (seeded). The mean is an unbiased estimate: ~0 (and can be
    negative) for two samples of one distribution. The std is the population
    standard deviation of the ``num_subsets`` values (ddof = 0), as torch-fidelity
    and torchmetrics report it; it is the spread of one subset's value, not the
    standard error of the mean (divide by sqrt(num_subsets) for that).
    """
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    s = min(subset_size, len(a), len(b))
    if s < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    vals = np.array(
        [
            mmd2_unbiased(a[rng.choice(len(a), s, replace=False)], b[rng.choice(len(b), s, replace=False)], degree)
            for _ in range(num_subsets)
        ]
    )
    return float(vals.mean()), float(vals.std(ddof=0))


# ------------------------------------------------------------------ k-NN metrics


def _cdist(a: np.ndarray, b: np.ndarray, block: int = 2048) -> np.ndarray:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return torch.cat([torch.cdist(ta[i : i + block], tb) for i in range(0, len(ta), block)]).numpy()


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(features) <= k:
        raise ValueError(f"need more than k = {k} points for k-NN radii, got {len(features)}")
    d = _cdist(features, features)
    # the 0th smallest is the point itself (distance 0)
    return np.partition(d, k, axis=1)[:, k]


def precision_recall(real, fake, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019), from (N, d) and (M, d) features.

    precision: fraction of fake points inside the k-NN ball of at least one real point;
    recall: fraction of real points inside the k-NN ball of at least one fake point.
    The balls are closed (distance <= the k-th neighbour's), as in the paper's definition.
    """
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    ra, rb = knn_radii(a, k), knn_radii(b, k)
    d = _cdist(a, b)  # (N_real, N_fake)
    precision = float((d <= ra[:, None]).any(0).mean())
    recall = float((d <= rb[None, :]).any(1).mean())
    return precision, recall


def density_coverage(real, fake, *, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), with k-NN balls around the N real points.

    r_i is the distance from real_i to its k-th nearest real neighbour; with M fakes,
    density = (1 / (k M)) sum_j #{i: d(fake_j, real_i) < r_i} (about 1 when the two
    distributions match, can exceed 1); coverage = fraction of real points with
    min_j d(real_i, fake_j) < r_i. The balls are open (strict <), as in the
    authors' reference code (the ``prdc`` package), so fakes that copy the reals
    give density exactly 1 (closed balls would count the k-th neighbour too: (k + 1) / k).
    """
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    ra = knn_radii(a, k)
    inside = _cdist(a, b) < ra[:, None]
    density = float(inside.sum() / (k * len(b)))
    coverage = float(inside.any(1).mean())
    return density, coverage


def classifier_score(logits, *, splits: int = 10) -> tuple[float, float]:
    """Inception-Score-style exp(E_x KL(p(y|x) || p(y))) from class logits (N, K): (mean, std over splits)."""
    lg = torch.as_tensor(np.asarray(logits) if not isinstance(logits, Tensor) else logits).double()
    logp = torch.log_softmax(lg, 1)
    scores = []
    for part in torch.tensor_split(logp, splits):
        if len(part) == 0:
            continue
        log_py = torch.logsumexp(part, 0) - math.log(len(part))
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(kl.exp().item())
    s = np.array(scores)
    return float(s.mean()), float(s.std(ddof=1) if len(s) > 1 else 0.0)
