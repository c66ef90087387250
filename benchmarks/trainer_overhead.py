"""Trainer overhead: images/s of genlab's Trainer vs a plain hand-written PyTorch loop.

Same network (``--network``: the registry's "vae" at its defaults on 1x28x28, the MLP
VAE of ``mnist-10min`` or the default "pixelcnn"; a small conv VAE defined here when the
registry has none), same batch (128), same Adam hyperparameters, same number
of steps, same uint8 data in memory, same per-epoch shuffling and preprocessing.
The Trainer runs with logging, samples and periodic checkpoints off (log_every
huge); its timing *includes* the one final checkpoint it always writes, which is
also shown on its own. Runs alternate (plain, trainer, plain, ...) and the median
of the repeats is reported, so background load hits both alike. Each loop runs in a
fresh process: the Trainer's process-wide settings (glibc malloc, ``train.tune_malloc``)
would otherwise speed up the plain loop too. Two more arms: the Trainer
with ``train.tune_malloc=false``, and with ``train.fused_adam=false`` (torch's default
Adam, a Python loop over the tensors on CPU, as in the plain loop).

    python benchmarks/trainer_overhead.py [--steps 40] [--repeats 5] [--device cpu] [--threads N]
        [--network vae|vae-mlp|pixelcnn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn

import harness
from genlab.config import ModelConfig, TrainConfig
from genlab.models.base import GenerativeModel, TrainStep


class SmallConvVAE(GenerativeModel):
    """Fallback network: conv encoder -> Gaussian z -> conv decoder, Bernoulli likelihood."""

    input_mode = "unit"

    def __init__(self, config: ModelConfig, latent: int = 16):
        super().__init__(config)
        c, h, w = config.image_shape
        self.enc = nn.Sequential(
            nn.Conv2d(c, 32, 4, 2, 1),
            nn.ELU(),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.ELU(),
            nn.Flatten(),
            nn.Linear(64 * (h // 4) * (w // 4), 2 * latent),
        )
        self.dec = nn.Sequential(
            nn.Linear(latent, 64 * (h // 4) * (w // 4)),
            nn.Unflatten(1, (64, h // 4, w // 4)),
            nn.ELU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ELU(),
            nn.ConvTranspose2d(32, c, 4, 2, 1),
        )

    def loss(self, batch):
        x = batch["x"]
        mu, logvar = self.enc(x).chunk(2, 1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = -nn.functional.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return {"loss": (kl - recon).mean()}

    def train_steps(self):
        return [TrainStep("vae", [self], self.loss)]


#: --network -> (registry name, model fields): the default conv VAE, the MLP VAE of the
#: ``mnist-10min`` preset, and the default PixelCNN
NETWORKS = {
    "vae": ("vae", {}),
    "vae-mlp": ("vae", {"encoder": "mlp", "decoder": "mlp", "mlp_hidden": (512, 512), "latent_dim": 32}),
    "pixelcnn": ("pixelcnn", {}),
}


def build_model(shape, network="vae"):
    name, fields = NETWORKS[network]
    try:
        from genlab import registry

        return registry.build(name, image_shape=shape, **fields), f"genlab {name} {fields or '(registry defaults)'}"
    except Exception:
        return SmallConvVAE(ModelConfig(image_shape=shape)), "SmallConvVAE (defined in this script)"


class Data:
    def __init__(self, n, shape):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        self.labels = None
        self.num_classes = 0
        self.shape = shape


def plain_loop(model, data, steps, batch, lr, device):
    """What one would write by hand: shuffle per epoch, uint8 -> [0, 1], prepare, Adam."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    (step,) = model.train_steps()  # the one optimisation step of a likelihood model: its loss
    gen = torch.Generator().manual_seed(0)
    images = data.images
    n = images.shape[0]
    perm, pos = torch.randperm(n, generator=gen), 0
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + batch]
        pos += batch
        x = model.prepare(images[idx].to(device).float().div_(255.0))
        loss = step.loss({"x": x, "y": None})["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def trainer_run(model, data, steps, batch, lr, device, run_dir, **fields):
    from genlab.train import Trainer

    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        log_every=10**9,
        sample_every=0,
        checkpoint_every=0,
        progress=False,
        device=device,
        **fields,
    )
    t = Trainer(model, data, cfg, run_dir)
    sync(t.device)
    t0 = time.perf_counter()
    ck = [0.0]
    orig = t.save_checkpoint

    def timed_save():
        sync(t.device)
        s = time.perf_counter()
        orig()
        ck[0] = time.perf_counter() - s

    t.save_checkpoint = timed_save
    t.fit()
    sync(t.device)
    return time.perf_counter() - t0, ck[0], t.threads


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


#: The loops compared, each in a fresh process (glibc's malloc settings are process-wide):
#: name -> TrainConfig fields of the Trainer (None: the plain loop).
ARMS = {
    "plain": None,
    "trainer": {},
    "trainer, tune_malloc off": {"tune_malloc": False},
    "trainer, fused_adam off": {"fused_adam": False},
}


def run_arm(arm: str, a) -> dict:
    """Seconds of ``a.steps`` steps of ``arm`` in this process, after a 3-step warm-up of the same loop."""
    shape = (1, 28, 28)
    data = Data(4096, shape)
    fields = ARMS[arm]
    timings = []
    for steps in (3, a.steps):  # warm-up (allocator, kernels, lazy imports), then the timed run
        torch.manual_seed(0)
        model = build_model(shape, a.network)[0]
        if fields is None:
            timings.append((plain_loop(model, data, steps, a.batch, 1e-3, a.device), 0.0, torch.get_num_threads()))
        else:
            with tempfile.TemporaryDirectory() as d:
                timings.append(trainer_run(model, data, steps, a.batch, 1e-3, a.device, d, **fields))
    seconds, ckpt, threads = timings[-1]
    return {"seconds": seconds, "checkpoint": ckpt, "threads": threads}


def build_parser():
    p = harness.parser(__doc__, threads=0, device="cpu")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument(
        "--network", choices=sorted(NETWORKS), default="vae", help="the network both loops train (default vae)"
    )
    p.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)  # internal: one loop in this process
    return p


def main(argv=None):
    a, machine = harness.start(build_parser(), argv)
    if a.arm:
        print("RESULT " + json.dumps(run_arm(a.arm, a)), flush=True)
        return 0
    results = {arm: [] for arm in ARMS}
    flags = [
        "--steps",
        str(a.steps),
        "--batch",
        str(a.batch),
        "--device",
        a.device,
        "--threads",
        str(a.threads),
        "--network",
        a.network,
    ]
    for _ in range(a.repeats):  # alternating, so that background load hits every loop alike
        for arm in ARMS:
            out = subprocess.run(
                [sys.executable, __file__, "--arm", arm, *flags], capture_output=True, text=True, check=True
            ).stdout
            results[arm].append(json.loads(out.split("RESULT ", 1)[1]))

    imgs = a.steps * a.batch
    med = {arm: statistics.median(r["seconds"] for r in rs) for arm, rs in results.items()}
    tp = med["plain"]
    print(
        f"network: {build_model((1, 28, 28), a.network)[1]}; input (1, 28, 28); batch {a.batch}; {a.steps} steps x "
        f"{a.repeats} repeats (median), each loop in a fresh process; device {a.device}"
    )
    table = harness.Table(["loop", "threads", "images/s", "s/step", "ratio"])
    for arm, rs in results.items():
        t = med[arm]
        label = (
            "plain PyTorch loop"
            if arm == "plain"
            else f"genlab Trainer{'' if arm == 'trainer' else ', ' + arm.split(', ')[1]} (incl. final ckpt)"
        )
        table.add(label, rs[0]["threads"], f"{imgs / t:.0f}", f"{t / a.steps:.4f}", f"{tp / t:.3f}")
    tc = statistics.median(r["checkpoint"] for r in results["trainer"])
    tt = med["trainer"] - tc
    table.add(
        "genlab Trainer (excl. final ckpt)",
        results["trainer"][0]["threads"],
        f"{imgs / tt:.0f}",
        f"{tt / a.steps:.4f}",
        f"{tp / tt:.3f}",
    )
    table.finish(machine, f"final checkpoint write: {tc * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
