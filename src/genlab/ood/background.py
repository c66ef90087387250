"""The background model of the likelihood-ratio score (Ren et al. 2019, "Likelihood Ratios
for Out-of-Distribution Detection"): the same kind of model trained on inputs whose pixels
were replaced by uniform noise at random, so that it captures population-level statistics
(e.g. how many background pixels an image has) and not the semantic content.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def perturb(images_u8: Tensor, mutation_rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Replace each pixel (all channels of it) with a uniform random value in 0..255 with probability
    ``mutation_rate``."""
    if not 0.0 <= mutation_rate <= 1.0:
        raise ValueError(f"mutation_rate must be in [0, 1], got {mutation_rate}")
    n, c, h, w = images_u8.shape
    mask = torch.rand(n, 1, h, w, generator=generator) < mutation_rate
    noise = torch.randint(0, 256, images_u8.shape, generator=generator, dtype=torch.uint8)
    return torch.where(mask, noise, images_u8)


def train_background(
    model_name_or_config,
    dataset,
    mutation_rate: float = 0.2,
    steps: int = 2000,
    *,
    seed: int = 0,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    out_dir: str | Path | None = None,
    progress: bool = True,
):
    """Train the background model of the likelihood-ratio method on perturbed inputs.

    Args:
        model_name_or_config: a registered model name ("vae"), a
            :class:`genlab.config.RunConfig`, or a model instance (a fresh model
            with the same config is trained).
        dataset: the in-distribution training set (ImageDataset, uint8 images).
        mutation_rate: probability of replacing each pixel by uniform noise
            (Ren et al. use 0.1 to 0.3; perturbed once, seeded).
        steps: optimisation steps.
        weight_decay: L2 regularisation (Ren et al. also use it).
        out_dir: the run directory (default: a temporary one).

    Returns:
        The trained background model (eval mode), loaded with ``genlab.load``.
    """
    import dataclasses
    import tempfile

    from .. import registry
    from ..config import DataConfig, RunConfig
    from ..data import ImageDataset
    from ..loading import load
    from ..models.base import GenerativeModel

    spec = model_name_or_config
    if isinstance(spec, RunConfig):
        rc = spec
    elif isinstance(spec, str):
        config_cls, _ = registry.get(spec)
        rc = RunConfig(model_name=spec, model=config_cls(image_shape=tuple(dataset.shape)))
    elif isinstance(spec, GenerativeModel):
        rc = RunConfig(model_name=registry.name_of(spec), model=spec.config)
    else:
        raise TypeError("model_name_or_config must be a model name, a RunConfig or a genlab model")
    rc = dataclasses.replace(
        rc,
        train=dataclasses.replace(
            rc.train,
            steps=int(steps),
            seed=seed,
            batch_size=batch_size,
            weight_decay=weight_decay,
            progress=progress,
            sample_every=0,
            checkpoint_every=max(int(steps), 1),
        ),
        data=DataConfig(name=f"{getattr(dataset, 'name', 'data')}-perturbed{mutation_rate}", split="train"),
    )
    noisy = ImageDataset(
        perturb(dataset.images, mutation_rate, torch.Generator().manual_seed(seed)),
        dataset.labels,
        num_classes=dataset.num_classes if dataset.labels is not None else None,
        name=rc.data.name,
    )
    from ..train import train

    run_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="genlab-background-"))
    run_dir = train(rc, out_dir=str(run_dir), dataset=noisy)
    return load(run_dir)


__all__ = ["perturb", "train_background"]
