"""Likelihood evaluation for any model with ``log_prob``.

:func:`evaluate_likelihood` runs a model's ``log_prob`` over a data split in
batches and reports the mean negative log-likelihood in nats per example and in
bits per dimension, each with its standard error over examples, together with
everything needed to read the number:

* the estimator, as the model states it (``model.likelihood_description(k)``):
  exact, a deterministic or stochastic bound, an unbiased estimate, or, for
  importance-sampled models (``model.importance_sampled``: the VAEs), the
  importance-weighted estimate of Burda et al. (2016) with ``k`` samples, a
  stochastic *lower* bound on log p(x) that tightens as ``k`` grows. ``k``
  (``iw_samples``) is chosen and passed for importance-sampled models only;
* the preprocessing, from ``model.input_mode``:

  - ``"binary"``: dynamic binarization, one Bernoulli draw per pixel with
    p = grey level, drawn once per image with the stated seed (not the fixed
    "static binarized MNIST" of many papers);
  - ``"dequantize"``: uniform dequantization y = (k + u) / 256, u ~ U[0, 1).
    The model's ``log_prob`` is a density on [0, 1]^D; each 8-bit image owns a
    cell of volume 256^-D, so the reported (discrete) value is
    ``NLL = -(log p(y) - D log 256)`` nats, an upper bound on the discrete NLL
    in expectation (Theis et al. 2016); bits/dim = NLL / (D log 2), with the
    offset the model states as ``log_prob_offset`` (0 where its ``log_prob``
    already includes -D log 256, as glow's and flow matching's do);
  - ``"unit"`` on 8-bit data: pixels k/255 as they are; the model's likelihood
    is over the 256 discrete levels, so this is the exact discrete likelihood
    (or its IWAE estimate);
  - ``"signed"``: x = 2 * x01 - 1; ``log_prob`` as the model returns it.

Everything random (binarization, dequantization, importance samples) is drawn
from a generator seeded with ``seed``, so a result repeats exactly.
Bits per dimension come from :func:`genlab.distributions.bits_per_dim`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from ..distributions import bits_per_dim

#: Importance samples used for importance-sampled models when none are asked for.
DEFAULT_IW_SAMPLES = 100


def is_importance_sampled(model) -> bool:
    """True when ``model.log_prob`` is an importance-weighted estimate over ``iw_samples`` draws."""
    return model.likelihood_kind != "none" and bool(model.importance_sampled)


def as_images01(data) -> tuple[Tensor, str, bool]:
    """An ImageDataset, a uint8 tensor or a float tensor in [0, 1] -> (float images in [0, 1], name, is_8bit)."""
    name = getattr(data, "name", "") or ""
    images = data.images if hasattr(data, "images") else data
    if not isinstance(images, Tensor):
        images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        return images.float() / 255.0, name, True
    if not images.is_floating_point():
        raise TypeError(f"expected images as uint8 (0..255) or floats in [0, 1], got {images.dtype}")
    on_grid = bool(torch.all(torch.abs(images * 255 - torch.round(images * 255)) < 1e-4)) if images.numel() else True
    return images.float(), name, on_grid


def log_prob_offset(model) -> float:
    """Nats to add to ``model.log_prob`` to get the discrete log-likelihood of 8-bit images."""
    return float(model.log_prob_offset)


def preprocessing_note(model, seed: int, eight_bit: bool = True) -> str:
    """The sentence stating how data were turned into the model's input."""
    mode = model.input_mode
    d = model.num_dims
    if mode == "binary":
        return (
            f"dynamic binarization (one Bernoulli draw per image, p = grey level per pixel, seed {seed}); "
            "not the static binarized MNIST of the literature"
        )
    if mode == "dequantize":
        offset = log_prob_offset(model)
        if offset == 0.0:
            cell = f"the model's log_prob already includes the cell volume -D log 256 (D = {d}), so nothing is added"
        else:
            cell = (
                "the model's continuous log-density log p(y) is converted to the discrete one by adding "
                f"{offset:.2f} nats (= -D log 256 with D = {d})"
            )
        return (
            f"uniform dequantization y = (k + u)/256, u ~ U[0,1) (seed {seed}); {cell}; "
            "reported NLL and bits/dim are discrete (an upper bound in expectation, Theis et al. 2016)"
        )
    if mode == "unit":
        if eight_bit:
            return (
                "8-bit pixels k/255 fed as they are; the model's likelihood is over "
                "the 256 levels: exact discrete likelihood"
            )
        return (
            "continuous inputs in [0, 1] fed as they are (not 8-bit): a continuous density, not a discrete likelihood"
        )
    if mode == "signed":
        return "inputs scaled to [-1, 1] (2x - 1); log_prob as returned by the model"
    return f"input_mode {mode!r}"


def impossible_likelihood(model, mean_nll: float, se: float, eight_bit: bool) -> str | None:
    """Why a mean NLL (nats per example) cannot be right, or None.

    On discrete data (binarized, or 8-bit under ``"dequantize"``/``"unit"``) every probability is at
    most 1, so the true NLL is >= 0, and so is the dequantized bound in expectation over u (Jensen).
    A mean more than three standard errors below 0 therefore comes from the estimator (an ODE solved
    too coarsely, a broken bound), not from a good model."""
    discrete = model.input_mode == "binary" or (eight_bit and model.input_mode in ("dequantize", "unit"))
    if not discrete or not mean_nll + 3 * (se if math.isfinite(se) else 0.0) < 0:
        return None
    return (
        f"mean NLL {mean_nll:.2f} +- {se:.2f} nats is below 0, impossible for discrete data "
        f"(every probability is <= 1): the estimator ({model.likelihood_description()}) is "
        "inaccurate here, e.g. an ODE solved too coarsely"
    )


def _resolve_k(model, iw_samples):
    """k for an importance-sampled model (default :data:`DEFAULT_IW_SAMPLES`), None for any other."""
    if is_importance_sampled(model):
        k = DEFAULT_IW_SAMPLES if iw_samples is None else int(iw_samples)
        if k < 1:
            raise ValueError(f"iw_samples must be >= 1, got {iw_samples}")
        return k
    if iw_samples is not None:
        raise ValueError(
            f"{type(model).__name__}.log_prob is not importance-sampled ({model.likelihood_description()}) "
            "and takes no iw_samples; leave iw_samples=None"
        )
    return None


def per_example_nll(
    model,
    data,
    *,
    iw_samples: int | None = None,
    batch_size: int = 256,
    max_examples: int | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "log-likelihood",
    prepared: bool = False,
) -> Tensor:
    """Discrete negative log-likelihood in nats of each example, float64 (N,).

    ``data``: an ImageDataset, uint8 (N, C, H, W) or floats in [0, 1]. The model's
    ``prepare`` (binarization / dequantization) and importance samples draw from
    a generator seeded with ``seed``; the ``log_prob_offset`` (-D log 256 for
    dequantized densities) is applied. ``iw_samples``: see :func:`evaluate_likelihood`.
    ``prepared=True``: ``data`` is already in the model's input space (the output of
    ``model.prepare``); it is scored as given and the generator serves only the
    importance samples (so that two models can score the very same tensor).
    """
    if model.likelihood_kind == "none":
        raise TypeError(f"{type(model).__name__} has no log_prob: likelihoods exist only for likelihood models")
    k = _resolve_k(model, iw_samples)
    images, _, _ = as_images01(data)
    if max_examples is not None:
        images = images[: int(max_examples)]
    n = len(images)
    if n == 0:
        raise ValueError("no examples to evaluate")
    want = tuple(model.config.image_shape)
    if tuple(images.shape[1:]) != want:
        raise ValueError(
            f"the model expects images of shape (N, {want[0]}, {want[1]}, {want[2]}), the data have "
            f"{tuple(images.shape)}"
        )
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    offset = log_prob_offset(model)
    device = model.device
    was_training = model.training
    model.eval()

    from tqdm.auto import tqdm

    nll = []
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)  # for models whose log_prob draws from the global RNG
            with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
                for start in range(0, n, batch_size):
                    x01 = images[start : start + batch_size]
                    x = (x01 if prepared else model.prepare(x01, generator=gen)).to(device)
                    lp = model.log_prob(x, iw_samples=k, generator=gen)
                    nll.append(-(lp.double().cpu() + offset))
                    bar.update(len(x01))
    finally:
        model.train(was_training)
    nll = torch.cat(nll)
    if not torch.isfinite(nll).all():
        raise FloatingPointError(f"log_prob returned {int((~torch.isfinite(nll)).sum())} non-finite values")
    return nll


def evaluate_likelihood(
    model,
    dataset,
    *,
    iw_samples: int | None = None,
    batch_size: int = 256,
    max_examples: int | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean negative log-likelihood of a data split under ``model``.

    Args:
        model: anything with ``log_prob(x)`` (nats per example), ``num_dims``,
            ``input_mode`` and ``prepare(x01, generator)`` (a genlab model).
        dataset: an :class:`genlab.data.ImageDataset`, a uint8 tensor
            (N, C, H, W), or a float tensor in [0, 1].
        iw_samples: importance samples k for importance-sampled models (default
            :data:`DEFAULT_IW_SAMPLES`); must be None for every other model.
        batch_size: examples per ``log_prob`` call.
        max_examples: evaluate only the first ``max_examples`` examples (in
            data-set order, so the subset repeats).
        seed: seeds binarization / dequantization / importance samples
            (ignored when ``generator`` is given).
        progress: show a tqdm progress bar.

    Returns:
        A JSON-ready dict: ``nll_nats``, ``nll_nats_se`` (standard error of the
        mean over examples), ``bits_per_dim``, ``bits_per_dim_se``,
        ``num_examples``, ``num_dims``, ``estimator`` (the model's
        ``likelihood_description(k)``), ``iw_samples`` (None unless
        importance-sampled), ``input_mode``, ``preprocessing`` (the sentence to
        print next to the number), ``log_prob_offset_nats``, ``seed``, ``data``.
    """
    k = _resolve_k(model, iw_samples) if model.likelihood_kind != "none" else None
    _, name, eight_bit = as_images01(dataset)
    nll = per_example_nll(
        model,
        dataset,
        iw_samples=k,
        batch_size=batch_size,
        max_examples=max_examples,
        seed=seed,
        generator=generator,
        progress=progress,
    )
    n = len(nll)
    d = model.num_dims
    mean = nll.mean().item()
    se = (nll.std(unbiased=True).item() / math.sqrt(n)) if n > 1 else float("nan")
    estimator = model.likelihood_description(k)
    problem = impossible_likelihood(model, mean, se, eight_bit)
    if problem:
        warnings.warn(problem, stacklevel=2)
    return {
        "nll_nats": mean,
        "nll_nats_se": se,
        "bits_per_dim": bits_per_dim(mean, d),
        "bits_per_dim_se": bits_per_dim(se, d),
        "num_examples": n,
        "num_dims": d,
        "estimator": estimator,
        "iw_samples": k,
        "input_mode": model.input_mode,
        "preprocessing": preprocessing_note(model, seed, eight_bit),
        "log_prob_offset_nats": log_prob_offset(model),
        "seed": seed if generator is None else None,
        "data": name,
        "problem": problem,
    }
