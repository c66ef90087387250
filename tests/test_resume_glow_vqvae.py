"""A run of glow (actnorm initialised from its first batch), vqvae (its two training
stages switch at iteration 3) or transformer (dropout draws from the global RNG) stopped
at iteration 4 and resumed to 8 ends bit-identical to a run straight to 8: the actnorm
flag, the stage and the RNG states live in the saved state."""

from __future__ import annotations

import pytest
import torch

from genlab import registry
from genlab.config import TrainConfig
from genlab.train import Trainer

CONFIGS = {
    "glow": dict(image_shape=(1, 8, 8), num_scales=2, steps_per_scale=2, hidden_channels=8),
    "transformer": dict(image_shape=(1, 8, 8), d_model=8, num_blocks=1, num_heads=2, dropout=0.2),
    "vqvae": dict(
        image_shape=(1, 8, 8),
        hidden_channels=8,
        residual_blocks=1,
        num_codes=4,
        code_dim=3,
        prior_start=3,
        freeze_autoencoder=True,
        prior_channels=8,
        prior_blocks=1,
    ),
}


class Data:
    images = torch.randint(0, 256, (40, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    labels = None


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stopped_and_resumed_run_is_bit_identical(name, tmp_path):
    cfg = TrainConfig(
        steps=8, batch_size=8, lr=1e-2, log_every=0, sample_every=0, checkpoint_every=0, progress=False, device="cpu"
    )

    def run(directory, steps, restore=False):
        torch.manual_seed(0)
        model = registry.build(name, **CONFIGS[name])
        t = Trainer(model, Data(), cfg, directory)
        if restore:
            torch.manual_seed(99)  # a fresh process: other initial weights, another RNG state
            assert t.restore() is not None
        t.fit(steps)
        return model

    full = run(tmp_path / "full", 8)
    run(tmp_path / "part", 4)
    resumed = run(tmp_path / "part", 8, restore=True)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
