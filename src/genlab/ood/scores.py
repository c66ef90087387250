"""The four outlier scores, one per input, **higher = more anomalous**, in bits per dimension.

Every score is computed on one tensor: the inputs are turned into the model's input
space once (``model.prepare``: dynamic binarization, dequantization, ...) with a
generator seeded by ``seed``, and every term of every score describes that same
tensor: the model's NLL, the background model's NLL (likelihood ratio) and the
compressed length (complexity). Importance samples (importance-sampled models) come
from a separate generator per model, derived from the same seed, so a model that
draws more random numbers than another cannot change what the other one scores.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import torch
from torch import Tensor

from ..distributions import bits_per_dim
from ..metrics.likelihood import as_images01, per_example_nll

METHODS = ("likelihood", "likelihood-ratio", "typicality", "complexity")
#: Importance samples for importance-sampled models when scoring (cheaper than for reporting likelihoods).
DEFAULT_OOD_IW_SAMPLES = 10


def _iw(model, iw_samples):
    from ..metrics.likelihood import is_importance_sampled

    if not is_importance_sampled(model):
        return None
    return DEFAULT_OOD_IW_SAMPLES if iw_samples is None else iw_samples


def prepare_once(model, x, seed: int = 0) -> tuple[Tensor, Tensor, int]:
    """Inputs -> (images in [0, 1], the model's input tensor, a seed for importance sampling).

    ``x``: an ImageDataset, uint8 (N, C, H, W) or floats in [0, 1]. The model's
    ``prepare`` draws from a generator seeded with ``seed``; the returned seed is drawn
    from that generator afterwards, so importance samples never reuse the numbers that
    binarized or dequantized the inputs.
    """
    images, _, _ = as_images01(x)
    g = torch.Generator().manual_seed(int(seed))
    prepared = model.prepare(images, generator=g)
    is_seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return images, prepared, is_seed


def _nll_bits(model, prepared: Tensor, is_seed: int, iw_samples, batch_size: int, progress: bool = False) -> Tensor:
    """NLL in bits/dim of inputs already in the model's input space, float64 (N,)."""
    nll = per_example_nll(
        model,
        prepared,
        prepared=True,
        iw_samples=_iw(model, iw_samples),
        batch_size=batch_size,
        seed=is_seed,
        generator=torch.Generator().manual_seed(is_seed),
        progress=progress,
    )
    return bits_per_dim(nll, model.num_dims)


def nll_bits_per_dim(
    model, x, *, iw_samples: int | None = None, batch_size: int = 256, seed: int = 0, progress: bool = False
) -> Tensor:
    """Per-input discrete NLL in bits per dimension (float64, (N,)), preprocessed once with ``seed``."""
    _, prepared, is_seed = prepare_once(model, x, seed)
    return _nll_bits(model, prepared, is_seed, iw_samples, batch_size, progress)


def compressed_bits(x, compressor: str = "png", *, binary: bool = False) -> Tensor:
    """Code length in bits of each image under a lossless compressor ("png" or "zlib"), float64 (N,).

    ``x``: (N, C, H, W) uint8 or floats in [0, 1], coded as 8-bit images; with
    ``binary=True`` the images hold the two levels 0 and 1 and are coded at one bit per
    value (a bilevel PNG, or packed bits for zlib), the channels stacked vertically.
    """
    if compressor not in ("png", "zlib"):
        raise ValueError(f"unknown compressor {compressor!r}; use 'png' or 'zlib'")
    if binary:
        t = torch.as_tensor(x)
        if t.numel() and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError("binary=True needs images holding only 0 and 1")
        arrays = [img.reshape(-1, img.shape[-1]).astype(bool) for img in t.cpu().numpy()]  # (C*H, W) each
    else:
        images, _, _ = as_images01(x)
        u8 = torch.round(images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        arrays = [img[:, :, 0] if img.shape[2] == 1 else img for img in u8]
    out = []
    for arr in arrays:
        if compressor == "png":
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG", optimize=True, compress_level=9)
            out.append(8 * len(buf.getvalue()))
        else:
            out.append(8 * len(zlib.compress((np.packbits(arr, axis=-1) if binary else arr).tobytes(), 9)))
    return torch.tensor(out, dtype=torch.float64)


def scored_code_bits(model, images01: Tensor, prepared: Tensor, compressor: str = "png") -> Tensor:
    """L(x) of the complexity score: the compressed length in bits of the discrete image
    the model's NLL is about, (N,). For Bernoulli models (``input_mode == "binary"``) that
    is the binarized tensor ``prepared`` (one bit per pixel); for every other model the
    8-bit image (dequantized densities are converted to the 8-bit image's likelihood)."""
    if model.input_mode == "binary":
        return compressed_bits(prepared, compressor, binary=True)
    return compressed_bits(images01, compressor)


def training_entropy(
    model, train_data, *, iw_samples: int | None = None, max_examples: int = 5000, batch_size: int = 256, seed: int = 0
) -> float:
    """Entropy estimate for the typicality test: mean NLL (bits/dim) of up to ``max_examples`` training inputs."""
    images, _, _ = as_images01(train_data)
    return float(
        nll_bits_per_dim(model, images[:max_examples], iw_samples=iw_samples, batch_size=batch_size, seed=seed).mean()
    )


def score(model, x, method: str = "likelihood", **kwargs) -> Tensor:
    """Outlier scores of one method, one per input, higher = more anomalous (float64, (N,)).

    Args:
        model: a likelihood model (``log_prob``), trained on the in-distribution data.
        x: an ImageDataset, uint8 images (N, C, H, W) or floats in [0, 1].
        method: "likelihood", "likelihood-ratio", "typicality" or "complexity".
        **kwargs: as :func:`scores`.

    Units: bits per dimension for every method.
    """
    return scores(model, x, [method], **kwargs)[method]


def scores(  # noqa: C901
    model,
    x,
    methods,
    *,
    background=None,
    train_entropy: float | None = None,
    train_data=None,
    typicality_batch: int = 10,
    compressor: str = "png",
    iw_samples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Scores of several methods for the same inputs, ``{method: float64 (N,)}``, bits/dim.

    Args:
        background: for "likelihood-ratio", the background model (see
            :func:`genlab.ood.train_background`); it must preprocess like the model.
        train_entropy: for "typicality", the model's entropy estimate H in bits/dim
            (see :func:`training_entropy`); or give ``train_data`` to compute it.
        typicality_batch: M, the batch size of the typicality test.
        compressor: for "complexity": "png" (Pillow) or "zlib".
        iw_samples: importance samples for importance-sampled models (default 10; None for others).
        seed: seeds the one preprocessing draw and the importance samples.

    The inputs are preprocessed once and the model's NLL computed once:

    * likelihood: ``NLL(x)``;
    * likelihood-ratio: ``NLL_model(x) - NLL_background(x)`` on the same tensor x;
    * typicality: ``|mean of NLL over a batch of M - H|``, every input getting its batch's value;
    * complexity: ``NLL(x) - L(x) / D`` (see :func:`scored_code_bits`).
    """
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown OOD method {method!r}; choose one of: {', '.join(METHODS)}")
    if "likelihood-ratio" in methods:
        if background is None:
            raise ValueError(
                "method='likelihood-ratio' needs background=<a model trained on perturbed "
                "inputs>; see genlab.ood.train_background"
            )
        if background.num_dims != model.num_dims:
            raise ValueError(f"the background model has {background.num_dims} dimensions, the model {model.num_dims}")
        modes = (model.input_mode, background.input_mode)
        if modes[0] != modes[1]:
            raise ValueError(
                f"the model takes {modes[0]!r} inputs, the background model {modes[1]!r}: both must score the "
                "same tensor; train the background as the same kind of model (genlab.ood.train_background)"
            )
    if "typicality" in methods:
        if train_entropy is None:
            if train_data is None:
                raise ValueError("method='typicality' needs train_entropy= (bits/dim) or train_data= to estimate it")
            train_entropy = training_entropy(model, train_data, iw_samples=iw_samples, batch_size=batch_size, seed=seed)
        if int(typicality_batch) < 1:
            raise ValueError(f"typicality_batch must be >= 1, got {typicality_batch}")
    images01, prepared, is_seed = prepare_once(model, x, seed)
    nll = _nll_bits(model, prepared, is_seed, iw_samples, batch_size, progress)
    out: dict[str, Tensor] = {}
    for method in methods:
        if method == "likelihood":
            out[method] = nll
        elif method == "likelihood-ratio":
            out[method] = nll - _nll_bits(background, prepared, is_seed, iw_samples, batch_size)
        elif method == "typicality":
            m = int(typicality_batch)
            t = torch.empty_like(nll)
            for start in range(0, len(nll), m):
                t[start : start + m] = (nll[start : start + m].mean() - train_entropy).abs()
            out[method] = t
        else:  # complexity
            out[method] = nll - scored_code_bits(model, images01, prepared, compressor) / model.num_dims
    return out


__all__ = [
    "DEFAULT_OOD_IW_SAMPLES",
    "METHODS",
    "compressed_bits",
    "nll_bits_per_dim",
    "prepare_once",
    "score",
    "scored_code_bits",
    "scores",
    "training_entropy",
]
