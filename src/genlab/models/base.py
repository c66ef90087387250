"""The contract every genlab model follows: one signature per method, declared
attributes for what callers would otherwise guess.

A model is an ``nn.Module`` that

* lists its optimisation steps with :meth:`GenerativeModel.train_steps` (a VAE has
  one; a GAN has a discriminator step and a generator step). Models never call
  ``backward()`` or ``optimizer.step()``: the Trainer does, one step at a time,
  with every parameter outside the step frozen;
* maps data in [0, 1] to its own input space with :meth:`prepare` (dynamic
  binarisation, dequantisation or [-1, 1] scaling, see ``genlab.data.transforms``);
* declares ``data_kind`` ("image" (C, H, W), "sequence" (C, 1, T) or "points" (D,)),
  ``likelihood_kind`` ("exact", "bound" or "none") and ``importance_sampled`` (whether
  ``log_prob`` averages ``iw_samples`` importance weights), and names its likelihood
  estimator with :meth:`likelihood_description`;
* provides what it can of :data:`CONTRACT_METHODS` (``sample``, ``log_prob``,
  ``latent``, ``encode``, ``decode``, ``reconstruct``, ``translate``,
  ``discriminate``) with exactly the signatures below. A model may add its own
  keyword-only arguments with defaults after the contract's (e.g. ``method=`` of
  the autoregressive samplers); callers never need them. :attr:`capabilities`
  lists what a model really provides, found from the methods it overrides.

Callers (cli, app, viz, metrics, ood) decide from ``capabilities``, ``data_kind``,
``likelihood_kind``, ``importance_sampled`` and ``config.num_classes`` alone, never from a model's name or
class. ``tests/test_contract.py`` checks every registered model against this file.

Weights are saved as safetensors and the config as JSON: nothing is pickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..config import ModelConfig, to_dict

Batch = dict  # {"x": Tensor (B, ...) in the model's input space, "y": LongTensor (B,) or None}


@dataclass
class TrainStep:
    """One optimisation step of an iteration.

    ``loss(batch)`` returns a dict with a scalar ``"loss"`` (what is minimised)
    and any other scalars to log. The Trainer gives each step its own optimiser
    over the parameters of ``modules``, with the learning rate and betas of the
    train config (``train.step_lr[name]``/``train.step_betas[name]`` where set,
    else ``train.lr``/``train.betas``). ``new_batch`` asks for a fresh batch before the step
    (e.g. several discriminator steps per generator step). Steps that share a
    name share one optimiser and must update the same parameters; learning-rate
    schedules advance once per iteration.
    """

    name: str
    modules: Sequence[nn.Module]
    loss: Callable[[Batch], dict]
    new_batch: bool = False

    def parameters(self) -> list[nn.Parameter]:
        """The parameters this step updates: those of its modules, each once."""
        seen: dict[int, nn.Parameter] = {}
        for m in self.modules:
            for p in m.parameters():
                seen.setdefault(id(p), p)
        return list(seen.values())


#: What ``data_kind`` may be: images (C, H, W), sequences (C, 1, T) such as audio, points (D,).
DATA_KINDS = ("image", "sequence", "points")
#: What ``likelihood_kind`` may be: ``log_prob`` is exact log p(x), a lower bound (or an
#: importance-sampled estimate of one), or absent.
LIKELIHOOD_KINDS = ("exact", "bound", "none")
#: The optional methods of the contract; :attr:`GenerativeModel.capabilities` says which a model has.
CONTRACT_METHODS = (
    "sample",
    "log_prob",
    "latent",
    "encode",
    "decode",
    "reconstruct",
    "translate",
    "discriminate",
    "complete",
)


class GenerativeModel(nn.Module):
    """Base class: holds the config, declares the contract and implements save/load."""

    config_class: type[ModelConfig] = ModelConfig
    #: How data in [0, 1] is fed to the model: "binary", "dequantize", "signed" or "unit".
    input_mode: str = "unit"
    #: "image", "sequence" or "points" (:data:`DATA_KINDS`); a property where the config decides.
    data_kind: str = "image"
    #: "exact", "bound" or "none" (:data:`LIKELIHOOD_KINDS`): what :meth:`log_prob` returns.
    likelihood_kind: str = "none"
    #: True when :meth:`log_prob` is an importance-weighted estimate over ``iw_samples`` draws
    #: (IWAE); only then do callers choose ``iw_samples``. Deterministic bounds, exact
    #: likelihoods and other stochastic estimates (diffusion bounds, Hutchinson traces) are False.
    importance_sampled: bool = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    # ---------------------------------------------------------------- contract
    def train_steps(self) -> list[TrainStep]:
        """The optimisation steps of one training iteration, in order (one for a VAE; D then G for a GAN)."""
        raise NotImplementedError

    def prepare(self, x01: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Data in [0, 1] -> the model's input space (see ``genlab.data.transforms``)."""
        from ..data import transforms

        if self.input_mode == "binary":
            return transforms.binarize(x01, generator=generator)
        if self.input_mode == "dequantize":
            return transforms.dequantize(x01, generator=generator)
        if self.input_mode == "signed":
            return transforms.to_signed(x01)
        if self.input_mode == "unit":
            return x01
        raise ValueError(f"unknown input_mode {self.input_mode!r}; use binary, dequantize, signed or unit")

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n samples: images (n, C, H, W) in [0, 1], sequences (n, C, 1, T), points (n, D).
        ``labels`` (n values, or one for all) for class-conditional models."""
        raise NotImplementedError(f"{type(self).__name__} does not sample")

    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """log p(x) in nats per example, (N,), for x in the model's input space (after
        :meth:`prepare`): exact, or a lower bound estimated with ``iw_samples`` importance
        samples (None: the model's own default; exact models ignore it), see
        ``likelihood_kind``. Randomness comes from ``generator``."""
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    def likelihood_description(self, iw_samples: int | None = None) -> str:
        """One phrase (no final period) naming what :meth:`log_prob` computes, for reports:
        the estimator, and ``iw_samples`` (the k used, None: the model's default) for
        importance-sampled models. Models whose estimator is neither exact nor IWAE say so."""
        if self.likelihood_kind == "none":
            return "no likelihood"
        if self.importance_sampled:
            k = "the model's default number of" if iw_samples is None else f"k = {int(iw_samples)}"
            return (
                f"importance-weighted estimate (IWAE, Burda et al. 2016) with {k} "
                "samples: a stochastic lower bound on log p(x)"
            )
        if self.likelihood_kind == "exact":
            return "the model's exact log p(x)"
        return "a lower bound on log p(x) (the model's log_prob)"

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws from the prior, (n, *latent_shape)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent prior")

    def encode(self, x: Tensor) -> Tensor:
        """x (N, ...) in the model's input space -> one code per input, (N, *latent_shape)."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder")

    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Codes (N, *latent_shape) -> data in [0, 1] (the mean for likelihood decoders; a
        draw from ``generator`` where the decoder has no mean)."""
        raise NotImplementedError(f"{type(self).__name__} has no decoder")

    def reconstruct(self, x: Tensor) -> Tensor:
        """decode(encode(x)) in [0, 1], under inference mode; x in the model's input space.
        (A decoder that samples draws from the global RNG here.)"""
        if not {"encode", "decode"} <= self.capabilities:
            raise NotImplementedError(f"{type(self).__name__} has no encoder and decoder to reconstruct with")
        with torch.inference_mode():
            return self.decode(self.encode(x))

    def translate(self, x: Tensor, direction: str) -> Tensor:
        """Images (N, C, H, W) in [0, 1] of one domain -> the other domain's, in [0, 1];
        ``direction`` "a2b" or "b2a". A translator's samples stack both domains along
        channels; ``domain_channels`` is one domain's C."""
        raise NotImplementedError(f"{type(self).__name__} does not translate")

    def discriminate(self, x: Tensor, *, labels: Tensor | None = None) -> Tensor:
        """Raw critic scores (N,) (logits for the log-loss objectives) on x in the model's
        input space: adversarial models only."""
        raise NotImplementedError(f"{type(self).__name__} has no discriminator")

    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        *,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Keep ``x`` (N, ...) in [0, 1] where ``observed_mask`` (broadcastable to x) is 1 and
        draw the rest from the model given what is kept: autoregressive models, in their
        order (pixels after a missing one do not inform it). Returns data in [0, 1]."""
        raise NotImplementedError(f"{type(self).__name__} does not complete partial inputs")

    def begin_iteration(self, step: int) -> None:
        """Called by the Trainer before every training iteration; ``step`` is 0-based and
        checkpointed, so a resumed run sees the same values. No-op by default."""

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one code of :meth:`latent`, :meth:`encode` and :meth:`decode`."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space")

    @property
    def capabilities(self) -> frozenset[str]:
        """The contract methods this model provides: those its class overrides, plus
        "reconstruct" when it has both "encode" and "decode"."""
        return capabilities_of(type(self))

    # ---------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (the CPU for a model without any)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def num_dims(self) -> int:
        """D, the number of values in one example (C * H * W): the denominator of bits per dimension."""
        c, h, w = self.config.image_shape
        return c * h * w

    @property
    def log_prob_offset(self) -> float:
        """Nats to add to :meth:`log_prob` for (a bound on) the discrete log-likelihood of
        8-bit data: -D log 256 for a density on dequantised data, 0 otherwise."""
        return -self.num_dims * math.log(256) if self.input_mode == "dequantize" else 0.0

    def check_labels(self, labels: Tensor | None, n: int) -> Tensor | None:
        """Validate class labels for a conditional model; None for an unconditional one."""
        k = self.config.num_classes
        if labels is None:
            if k > 0:
                raise ValueError(
                    f"this model is class-conditional ({k} classes): pass labels= with {n} values in 0..{k - 1}"
                )
            return None
        if k == 0:
            raise ValueError("labels were given, but this model is unconditional (model.num_classes=0)")
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device).reshape(-1)
        if labels.numel() == 1 and n > 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for {n} samples")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(
                f"labels must be in 0..{k - 1}, got values from {int(labels.min())} to {int(labels.max())}"
            )
        return labels

    def check_images(self, x: Tensor) -> None:
        """Raise a clear error when ``x`` is not a batch of this model's image shape."""
        want = tuple(self.config.image_shape)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"expected images of shape (N, {want[0]}, {want[1]}, {want[2]}), got {tuple(x.shape)}")

    # ---------------------------------------------------------------- persistence
    def upgrade_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved by an older genlab version -> weights this model loads (drops the keys
        :func:`genlab.compat.retired_state_keys` names, with a ``DeprecationWarning``)."""
        from ..compat import deprecate, retired_state_keys

        retired = [k for k in retired_state_keys(type(self)) if k in state]
        if retired:
            deprecate(f"{type(self).__name__} weights with {retired} (genlab 0.1.0): dropped on loading")
        return {k: v for k, v in state.items() if k not in retired}

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically."""
        from ..io import atomic_write_json, make_dirs, save_tensors
        from ..registry import name_of

        directory = make_dirs(directory)
        save_tensors(self.state_dict(), directory / "model.safetensors")
        atomic_write_json(directory / "config.json", config_document(name_of(self), self.config))
        return directory


def capabilities_of(cls: type) -> frozenset[str]:
    """:attr:`GenerativeModel.capabilities` of a model class (see there)."""
    caps = {m for m in CONTRACT_METHODS if getattr(cls, m) is not getattr(GenerativeModel, m)}
    if {"encode", "decode"} <= caps:
        caps.add("reconstruct")
    return frozenset(caps)


def config_document(model_name: str, model_config: ModelConfig, **sections) -> dict:
    """The JSON document stored as ``config.json`` (model part plus optional train/data)."""
    from .. import __version__

    doc = {"genlab_version": __version__, "model_name": model_name, "model": to_dict(model_config)}
    for k, v in sections.items():
        doc[k] = to_dict(v)
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
