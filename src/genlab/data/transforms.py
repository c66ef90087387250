"""Value handling for image data: the one place where pixel scales are stated.

Conventions used throughout genlab:

* Stored images are ``torch.uint8`` tensors with values 0..255 (see
  :class:`genlab.data.ImageDataset`).
* Models receive ``float32`` tensors in ``[0, 1]``, pixel value ``k`` mapped to
  ``k / 255`` (:func:`to_float`).
* Models that want ``[-1, 1]`` (e.g. GANs with a tanh output) use
  :func:`to_signed` / :func:`from_signed`.
* Likelihood models of discrete pixels use either :func:`binarize` (Bernoulli
  likelihoods) or :func:`dequantize` (continuous densities).

All randomness goes through an optional :class:`torch.Generator`; without one
the global torch RNG is used. Every function works on any shape, e.g. a batch
``(B, C, H, W)`` or one image ``(C, H, W)``, and returns a new tensor.
"""

from __future__ import annotations

import torch

__all__ = ["to_float", "to_uint8", "binarize", "dequantize", "to_signed", "from_signed"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images with values 0..255 -> float32 in ``[0, 1]`` (``k -> k / 255``)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects a torch.uint8 tensor, got {images.dtype}")
    return images.to(torch.float32) / 255.0


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """float images in ``[0, 1]`` -> uint8 0..255 (inverse of :func:`to_float`).

    Values outside ``[0, 1]`` (e.g. raw model samples) are clamped first, then
    ``round(x * 255)``.
    """
    return torch.round(x01.detach().clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def binarize(x01: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: a fresh Bernoulli draw per pixel with ``p = x01``.

    Args:
        x01: grey levels in ``[0, 1]``, any shape.
        generator: optional RNG for reproducible draws.

    Returns:
        A tensor of the same shape and dtype with values in ``{0., 1.}``;
        ``E[binarize(x)] = x``. Call it anew every epoch (this is *not* the
        fixed "static binarized MNIST" draw used by some papers; say so next to
        any likelihood you report).
    """
    if x01.numel() and (x01.min() < 0 or x01.max() > 1):
        raise ValueError("binarize expects values in [0, 1]")
    return torch.bernoulli(x01, generator=generator)


def dequantize(x01: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization of 8-bit images: ``y = (k + u) / 256``, ``u ~ U[0, 1)``.

    Here ``k = round(255 * x01)`` is the original 0..255 pixel value, so
    ``y`` lies in ``[k / 256, (k + 1) / 256)``: ``floor(256 * y) == k`` exactly,
    and ``y`` lies in ``[0, 1)``.

    Likelihoods: a density ``p`` fitted to ``y`` lives on ``[0, 1]^D`` where
    each discrete image owns a cell of volume ``256^-D``. Hence
    ``log P(k) >= E_u[log p(y)] - D * log(256)`` (Theis et al., 2016): subtract
    ``D * log(256)`` from the continuous log-likelihood (in nats) to get a
    bound on the discrete one, and report
    ``bits/dim = (-E[log p(y)] + D * log(256)) / (D * log(2))``.

    Args:
        x01: images in ``[0, 1]`` whose values are multiples of ``1/255``
            (as returned by :func:`to_float`), any shape, floating dtype.
        generator: optional RNG for reproducible noise.

    Returns:
        A tensor of the same shape and dtype with values in ``[0, 1)``.
    """
    if not x01.is_floating_point():
        raise TypeError("dequantize expects a floating tensor in [0, 1]; use to_float first")
    k = torch.round(x01.clamp(0.0, 1.0) * 255.0)
    u = torch.rand(x01.shape, generator=generator, dtype=x01.dtype, device=x01.device)
    y = (k + u) / 256.0
    # (k + u) can round up to k + 1 in floating point when u is close to 1;
    # keep y strictly inside its cell.
    upper = torch.nextafter((k + 1.0) / 256.0, torch.zeros_like(y))
    return torch.minimum(y, upper)


def to_signed(x01: torch.Tensor) -> torch.Tensor:
    """``[0, 1] -> [-1, 1]``: ``2 * x - 1``."""
    return x01 * 2.0 - 1.0


def from_signed(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1] -> [0, 1]``: ``(x + 1) / 2`` (inverse of :func:`to_signed`).

    No clamping: model outputs may leave the range; use :func:`to_uint8`
    (which clamps) to turn them into displayable images.
    """
    return (x + 1.0) / 2.0
