"""Judge every shipped model (``genlab/pretrained/``) with an independent MNIST classifier.

The judge is a small CNN (conv32-pool-conv64-pool-fc128-fc10, about 94k parameters)
that this script trains itself on the 60,000 MNIST training digits, half of every
batch dynamically binarised (pixel ~ Bernoulli(grey level)) so that it reads binary
and grey digits alike, and with outlier exposure (junk made from the batch: uniform
noise, pixel- and patch-shuffled digits, trained towards uniform probabilities) so
that it is not confident about images that are no digit (without it, it called
100% of uniform-noise images a digit with p >= 0.9; with it, 0%). No shipped model
was trained with it or with any network derived from it. Its weights are cached in
``runs/judge/`` under the hash of its recipe (deterministic: seed 0, one thread,
2 epochs of Adam, about 1.5 CPU-minutes).

What is measured follows each model's capabilities, data and card (not its name):

* unconditional MNIST samplers: N samples drawn as ``genlab sample -n N --seed 0``
  draws and shows them (``render_samples``, then the PNG's 8-bit rounding): the share
  the judge classifies with confidence >= 0.9, and each digit's share among those
  (the smallest one tells a missing mode); the same for real test digits as reference;
* class-conditional MNIST samplers: samples with labels 0..9 repeated (the default of
  ``genlab sample``): the share the judge reads as the label asked for;
* MNIST models with an encoder trained adversarially (ALI/BiGAN: ``reconstruct`` and
  ``discriminate``): the share of reconstructions G(E(x)) of test digits keeping their digit;
* translators between MNIST domains (``translate``, e.g. ``unpaired:mnist,mnist+invert``):
  the share of translated test digits keeping their digit, both ways, the judge reading
  each output after undoing its domain's transform (1 - x for ``+invert``);
* 2-D latent image models (the Frey-face VAE): the ``genlab manifold --n 12`` grid
  (Kingma & Welling 2014, Fig. 4), 144 decoded images; the mean over test images of
  the distance to the nearest manifold image, against the same for 144 random
  training images (seed 0);
* point models on ring8: mode coverage (``train_pretrained.ring_coverage``);
* anything else (e.g. wavenet-sines): not judged; the card's numbers are shown.

    OMP_NUM_THREADS=1 python scripts/check_pretrained.py --no-write       # all models, print the table
    python scripts/check_pretrained.py --only vae-mnist --only dcgan-mnist  # some; writes card["judged"]

The exit status is 1 when any check fails its target.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

#: The judge's confidence threshold: a sample is "confident" when the judge's top class has at least this probability.
CONFIDENCE = 0.9

#: Everything that determines the judge's weights; its hash names the cached weights.
JUDGE_RECIPE = {
    "version": 1,
    "data": "mnist train, 60000 digits, grey levels k/255",
    "arch": "conv3x3(1->32)-relu-maxpool2-conv3x3(32->64)-relu-maxpool2-maxpool2-fc(576->128)-relu-fc(128->10)",
    "channels": [32, 64],
    "hidden": 128,
    "epochs": 2,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 2e-3,
    "lr_schedule": "cosine to 0",
    "binarize_share": 0.5,
    "outliers": "uniform noise, pixel-shuffled and 7x7-patch-shuffled digits, trained towards uniform probabilities",
    "outlier_share": 0.25,
    "outlier_weight": 0.5,
    "seed": 0,
}

#: Targets. Unconditional samplers: the share of confident samples (by registry model name where a
#: family differs: a VAE's mean images are blurrier) and the smallest digit's share among them.
SAMPLE_TARGET = {"vae": 0.70}
SAMPLE_TARGET_DEFAULT = 0.85
SMALLEST_DIGIT = 0.03
CONDITIONAL_TARGET = 0.90
RECONSTRUCTION_TARGET = 0.90
TRANSLATION_TARGET = 0.95
RING_NEAR_TARGET = 0.90
SIM_TO_REAL_GAIN_TARGET = 0.20  # mean over the seeds, in accuracy on the real-style test digits


# --------------------------------------------------------------------------- pure metrics


def confident_shares(probs, threshold: float = CONFIDENCE) -> dict:
    """How many of the judged images the judge is sure about, and which digits those are.

    ``probs``: (N, K) class probabilities. Returns ``{"n", "confident_count", "confident"
    (share of the N with max probability >= threshold), "shares" (K values: each class's
    share among the confident ones, all 0 when none is confident), "smallest_share",
    "smallest_class"}``."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.dim() != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must be (N, K) with N >= 1, got {tuple(p.shape)}")
    conf, pred = p.max(1)
    keep = conf >= threshold
    count = int(keep.sum())
    counts = torch.bincount(pred[keep], minlength=p.shape[1]).double()
    shares = counts / count if count else torch.zeros(p.shape[1], dtype=torch.float64)
    return {
        "n": int(p.shape[0]),
        "confident_count": count,
        "confident": count / p.shape[0],
        "shares": [float(s) for s in shares],
        "smallest_share": float(shares.min()),
        "smallest_class": int(shares.argmin()),
    }


def label_agreement(probs, labels) -> float:
    """The share of rows whose most probable class is the given label. ``probs``: (N, K); ``labels``: (N,)."""
    p = torch.as_tensor(probs)
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if p.dim() != 2 or p.shape[0] != y.numel() or p.shape[0] == 0:
        raise ValueError(f"need probs (N, K) and N labels, N >= 1; got {tuple(p.shape)} and {y.numel()} labels")
    return float((p.argmax(1) == y).double().mean())


def nearest_distances(queries, refs) -> Tensor:
    """For each query, the Euclidean distance to its nearest reference (both flattened
    per item; float64, computed exactly, not through the |a|^2 + |b|^2 - 2ab shortcut)."""
    q = torch.as_tensor(queries, dtype=torch.float64).flatten(1)
    r = torch.as_tensor(refs, dtype=torch.float64).flatten(1)
    if q.shape[1] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(
            f"queries {tuple(q.shape)} and refs {tuple(r.shape)} must be non-empty with the same item size"
        )
    return torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist").min(1).values


def nearest_mean_distance(queries, refs) -> float:
    """The mean over ``queries`` of the distance to the nearest of ``refs``."""
    return float(nearest_distances(queries, refs).mean())


def as_shown(x: Tensor) -> Tensor:
    """Images in [0, 1] as a PNG of genlab shows them (``viz.images.to_pil``): clamped and
    rounded to 8 bits, back in [0, 1]."""
    return (x.detach().float().cpu().clamp(0, 1) * 255).round() / 255


def grid_cells(grid: Tensor, rows: int, cols: int, h: int, w: int, padding: int = 0) -> Tensor:
    """The images of a ``viz.images.make_grid`` grid (C, H', W'), row by row: (rows * cols, C, h, w)."""
    out = [
        grid[
            :,
            padding + r * (h + padding) : padding + r * (h + padding) + h,
            padding + c * (w + padding) : padding + c * (w + padding) + w,
        ]
        for r in range(rows)
        for c in range(cols)
    ]
    return torch.stack(out)


# --------------------------------------------------------------------------- the judge


class Judge(nn.Module):
    """conv3x3-relu-pool, conv3x3-relu-pool, pool, fc-relu, fc: images (N, 1, 28, 28) in [0, 1] -> logits (N, 10)."""

    def __init__(self, channels=(32, 64), hidden: int = 128, classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 3 * 3, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14x14
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 7x7
        h = F.max_pool2d(h, 2)  # 3x3
        return self.fc2(F.relu(self.fc1(h.flatten(1))))


def recipe_hash(recipe: dict = JUDGE_RECIPE) -> str:
    """sha256 of the recipe's canonical JSON."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def train_judge(
    images: Tensor,
    labels: Tensor,
    *,
    channels=(32, 64),
    hidden: int = 128,
    epochs: int = 2,
    batch_size: int = 128,
    lr: float = 1e-3,
    binarize_share: float = 0.5,
    outlier_share: float = 0.0,
    outlier_weight: float = 0.5,
    seed: int = 0,
    max_steps: int | None = None,
    log_every: int = 0,
) -> tuple[Judge, dict]:
    """Train a :class:`Judge` on uint8 images (N, 1, 28, 28) and labels (N,): Adam, cosine decay to 0,
    shuffled with ``seed``; the first ``binarize_share`` of each batch is binarised afresh.
    Deterministic for a given seed (on one thread). Returns (the judge in eval mode, a log with
    the steps, the mean digit cross-entropy of the first and last tenth of the steps and the CPU seconds).

    ``outlier_share``: outlier exposure (Hendrycks et al., 2019): that many junk images per digit
    (:func:`outliers`) are trained towards the uniform distribution with weight ``outlier_weight``,
    so that the judge is not confident about images that are no digit."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Judge(channels, hidden, int(labels.max()) + 1 if len(labels) else 10)
    n = len(images)
    per_epoch = math.ceil(n / batch_size)
    total = per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    losses, step, t0 = [], 0, time.process_time()
    net.train()
    while step < total:
        perm = torch.randperm(n, generator=g)
        for idx in perm.split(batch_size):
            if step >= total:
                break
            x = images[idx].float() / 255
            k = int(round(binarize_share * len(idx)))
            if k:
                x[:k] = torch.bernoulli(x[:k], generator=g)
            digits = loss = F.cross_entropy(net(x), labels[idx].long())
            m = int(round(outlier_share * len(idx)))
            if m:  # outlier exposure: junk made from the batch is pushed towards the uniform distribution
                loss = digits + outlier_weight * -F.log_softmax(net(outliers(x[:m], g)), 1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(digits.item())
            step += 1
            if log_every and step % log_every == 0:
                print(f"  judge step {step}/{total}: loss {sum(losses[-log_every:]) / log_every:.4f}", flush=True)
    tenth = max(1, len(losses) // 10)
    log = {
        "steps": step,
        "first_loss": sum(losses[:tenth]) / tenth,
        "last_loss": sum(losses[-tenth:]) / tenth,
        "cpu_seconds": round(time.process_time() - t0, 1),
    }
    return net.eval(), log


def outliers(x: Tensor, g: torch.Generator) -> Tensor:
    """Junk images as many as ``x`` (N, 1, 28, 28): a third uniform noise, a third the digits with
    their pixels shuffled (the same ink, no shape), a third with their 7x7 patches shuffled
    (strokes in the wrong places)."""
    n = len(x)
    k1, k2 = n // 3, 2 * n // 3
    noise = torch.rand(k1, *x.shape[1:], generator=g)
    a = x[k1:k2].flatten(1)
    pixels = a.gather(1, torch.rand(a.shape, generator=g).argsort(1)).view(-1, *x.shape[1:])
    b = x[k2:]
    patches = b.reshape(len(b), 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(len(b), 16, 49)
    perm = torch.rand(len(b), 16, generator=g).argsort(1)
    patches = patches.gather(1, perm[:, :, None].expand(-1, -1, 49))
    shuffled = patches.reshape(len(b), 4, 4, 7, 7).permute(0, 1, 3, 2, 4).reshape(len(b), 1, 28, 28)
    return torch.cat([noise, pixels, shuffled])


@torch.inference_mode()
def judge_probs(judge: nn.Module, x01: Tensor, batch_size: int = 500) -> Tensor:
    """The judge's class probabilities (N, 10) of images (N, 1, 28, 28) in [0, 1]."""
    judge.eval()
    if len(x01) == 0:
        return torch.zeros(0, 10)
    return torch.cat([F.softmax(judge(b.float()), 1) for b in x01.split(batch_size)])


def judge_path(recipe: dict = JUDGE_RECIPE) -> Path:
    return ROOT / "runs" / "judge" / f"judge-{recipe_hash(recipe)[:16]}.safetensors"


def get_judge(data_dir: str, retrain: bool = False, recipe: dict = JUDGE_RECIPE) -> tuple[Judge, dict]:
    """The judge of ``recipe``: loaded from ``runs/judge/`` or trained on MNIST's training split (and cached)."""
    from genlab import data as gdata
    from genlab.errors import GenlabError
    from genlab.io import atomic_write_json, load_tensors, make_dirs, save_tensors

    file = judge_path(recipe)
    if file.is_file() and not retrain:
        net = Judge(recipe["channels"], recipe["hidden"])
        try:
            net.load_state_dict(load_tensors(file))
            log = (
                json.loads(file.with_suffix(".json").read_text()).get("training", {})
                if file.with_suffix(".json").is_file()
                else {}
            )
            return net.eval(), {**log, "cached": str(file.relative_to(ROOT))}
        except (GenlabError, RuntimeError, ValueError) as e:
            print(f"cannot read the cached judge ({e}); training it again", flush=True)
    train = gdata.load("mnist", "train", data_dir)
    print(f"training the judge on {len(train)} MNIST digits ({recipe['epochs']} epochs)...", flush=True)
    net, log = train_judge(
        train.images,
        train.labels,
        channels=recipe["channels"],
        hidden=recipe["hidden"],
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        lr=recipe["lr"],
        binarize_share=recipe["binarize_share"],
        outlier_share=recipe["outlier_share"],
        outlier_weight=recipe["outlier_weight"],
        seed=recipe["seed"],
        log_every=500,
    )
    make_dirs(file.parent)
    save_tensors(net.state_dict(), file)
    atomic_write_json(
        file.with_suffix(".json"),
        {"recipe": recipe, "recipe_sha256": recipe_hash(recipe), "training": log, "torch": torch.__version__},
    )
    return net, {**log, "trained_now": True}


def judge_report(judge: nn.Module, test_images: Tensor, test_labels: Tensor, threshold: float = CONFIDENCE) -> dict:
    """The judge's accuracy on grey and on binarised (seed 0) test digits, the share of real test
    digits it is confident about, and (a sanity check) its confident share on 1,000 uniform-noise images."""
    x = test_images.float() / 255
    xb = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    p, pb = judge_probs(judge, x), judge_probs(judge, xb)
    noise = torch.rand(1000, *x.shape[1:], generator=torch.Generator().manual_seed(0))
    return {
        "recipe_sha256": recipe_hash(),
        "parameters": sum(q.numel() for q in judge.parameters()),
        "test_digits": len(x),
        "accuracy_grey": label_agreement(p, test_labels),
        "accuracy_binarized": label_agreement(pb, test_labels),
        "real_confident": confident_shares(p, threshold)["confident"],
        "real_binarized_confident": confident_shares(pb, threshold)["confident"],
        "noise_confident": confident_shares(judge_probs(judge, noise), threshold)["confident"],
        "threshold": threshold,
    }


# --------------------------------------------------------------------------- what the user sees


def shown_samples(model, n: int, seed: int = 0) -> tuple[Tensor, Tensor | None]:
    """``genlab sample -n n --seed seed``: render_samples with a fresh generator (class-conditional
    models: labels 0, 1, ..., k-1, 0, ...), rounded to the PNG's 8 bits. Returns (images, labels)."""
    from genlab.viz.samples import render_samples

    r = render_samples(model, n, generator=torch.Generator().manual_seed(seed))
    return as_shown(r.samples), r.labels


def manifold_images(model, n: int = 12, dims=(0, 1)) -> Tensor:
    """The n * n images of ``genlab manifold --n n`` (``viz.latent.manifold_grid``), as its PNG shows them."""
    from genlab.viz.latent import manifold_grid

    grid = manifold_grid(model, n=n, dims=tuple(dims))
    _, h, w = model.config.image_shape
    return as_shown(grid_cells(grid, n, n, h, w, padding=0))


# --------------------------------------------------------------------------- checks


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def sample_row(probs: Tensor, target: float | None) -> dict:
    s = confident_shares(probs)
    ok = None if target is None else (s["confident"] >= target and s["smallest_share"] >= SMALLEST_DIGIT)
    return {
        "numbers": f"{pct(s['confident'])} confident; smallest digit {s['smallest_class']}: {pct(s['smallest_share'])}",
        "target": f">= {100 * target:.0f}% confident, each digit >= {100 * SMALLEST_DIGIT:.0f}%"
        if target is not None
        else "",
        "pass": ok,
        "measured": {**s, "threshold": CONFIDENCE},
    }


def check_samples(model, judge, n: int, kind: str) -> dict:
    x, _ = shown_samples(model, n)
    row = sample_row(judge_probs(judge, x), SAMPLE_TARGET.get(kind, SAMPLE_TARGET_DEFAULT))
    row["measured"]["rendering"] = "genlab sample --seed 0: render_samples, 8-bit PNG levels"
    return row


def check_conditional(model, judge, n: int) -> dict:
    x, labels = shown_samples(model, n)
    p = judge_probs(judge, x)
    asked = label_agreement(p, labels)
    s = confident_shares(p)
    return {
        "numbers": f"{pct(asked)} judged as asked ({pct(s['confident'])} confident)",
        "target": f">= {100 * CONDITIONAL_TARGET:.0f}% as asked",
        "pass": asked >= CONDITIONAL_TARGET,
        "measured": {"as_asked": asked, "confident": s["confident"], "labels": "0..9 repeated"},
    }


def check_reconstruction(model, judge, test, n: int) -> dict:
    x01, y = test.images[:n].float() / 255, test.labels[:n]
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        rec = torch.cat([model.reconstruct(model.prepare(b, generator=g)).float() for b in x01.split(250)])
    kept = label_agreement(judge_probs(judge, as_shown(rec)), y)
    return {
        "numbers": f"{pct(kept)} of reconstructions keep their digit",
        "target": f">= {100 * RECONSTRUCTION_TARGET:.0f}%",
        "pass": kept >= RECONSTRUCTION_TARGET,
        "measured": {"kept": kept, "test_digits": len(y), "how": "G(E(x)) of the first test digits"},
    }


def mnist_domain(text: str) -> str | None | bool:
    """The transform of an MNIST translation domain (None: plain), or False when the judge cannot read it."""
    from genlab.data.unpaired import BLENDS, parse_domain

    name, t = parse_domain(text)
    return t if name.lower() == "mnist" and t not in BLENDS else False


def check_translation(model, judge, data_name: str, data_dir: str, n: int) -> dict:
    from genlab.data.unpaired import load_unpaired, parse_spec, untransform

    dom_a, dom_b, seed = parse_spec(data_name.partition(":")[2])
    t_a, t_b = mnist_domain(dom_a), mnist_domain(dom_b)
    test = load_unpaired(dom_a, dom_b, "test", data_dir, seed=seed)  # as train_pretrained.translation_kept loads it
    n = min(n, len(test))
    a, ya = test.a.images[:n].float() / 255, test.a.labels[:n]
    b, yb = test.b.images[:n].float() / 255, test.b.labels[:n]
    ga = as_shown(torch.cat([model.translate(c, "a2b") for c in a.split(250)]))
    fb = as_shown(torch.cat([model.translate(c, "b2a") for c in b.split(250)]))
    a2b = label_agreement(judge_probs(judge, untransform(ga, t_b)), ya)
    b2a = label_agreement(judge_probs(judge, untransform(fb, t_a)), yb)
    ok = min(a2b, b2a) >= TRANSLATION_TARGET
    return {
        "numbers": f"digit kept {pct(a2b)} (a2b) / {pct(b2a)} (b2a)",
        "target": f">= {100 * TRANSLATION_TARGET:.0f}% both ways",
        "pass": ok,
        "measured": {
            "a2b_kept": a2b,
            "b2a_kept": b2a,
            "test_digits_per_direction": n,
            "how": f"judge on each output with its domain's transform undone ({dom_b} -> mnist, {dom_a} -> mnist)",
        },
    }


def check_sim_to_real(model, judge, card: dict, data_dir: str, n: int) -> dict:
    """A translator from clean MNIST to a blended (MNIST-M-style) domain: the benchmark's gain
    over its seeds from the card, and the judge on F(b), the real-style test digits made clean."""
    from genlab.data.unpaired import load_domain

    s2r = card["measured"]["sim_to_real"]
    gain = s2r["summary"]["gain"]
    test = load_domain("mnist+mnistm", "test", data_dir, seed=0)
    n = min(n, len(test))
    b = test.images[:n].float() / 255
    fb = as_shown(torch.cat([model.translate(c, "b2a") for c in b.split(250)]))
    kept = label_agreement(judge_probs(judge, fb.mean(1, keepdim=True)), test.labels[:n])
    seeds = len(s2r["per_seed"])
    return {
        "numbers": f"gain {100 * gain['mean']:+.1f} points (sd {100 * gain['std']:.1f}, {seeds} seeds); the judge "
        f"reads {pct(kept)} of F(real-style) as their digit",
        "target": f"mean gain >= +{100 * SIM_TO_REAL_GAIN_TARGET:.0f} points",
        "pass": gain["mean"] >= SIM_TO_REAL_GAIN_TARGET,
        "measured": {
            "gain_mean": gain["mean"],
            "gain_std": gain["std"],
            "seeds": seeds,
            "judge_reads_f_b": kept,
            "test_digits": n,
            "how": "gain: benchmarks/sim_to_real.py (card); F(b): the judge on its mean channel",
        },
    }


def check_manifold(model, data_name: str, data_dir: str, grid: int = 12) -> dict:
    from genlab import data as gdata

    _, h, w = model.config.image_shape
    test = gdata.load(data_name, "test", data_dir, image_size=(h, w), channels=model.config.image_shape[0])
    train = gdata.load(data_name, "train", data_dir, image_size=(h, w), channels=model.config.image_shape[0])
    faces = manifold_images(model, grid)
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: grid * grid]
    q = test.images.float() / 255
    d_manifold = nearest_mean_distance(q, faces)
    d_random = nearest_mean_distance(q, train.images[pick].float() / 255)
    return {
        "numbers": f"nearest manifold image {d_manifold:.3f} vs nearest of {grid * grid} "
        f"random training images {d_random:.3f}",
        "target": "manifold <= random",
        "pass": d_manifold <= d_random,
        "measured": {
            "manifold_mean_distance": d_manifold,
            "random_train_mean_distance": d_random,
            "grid": f"{grid}x{grid}",
            "test_images": len(q),
            "distance": "Euclidean over pixels in [0, 1]",
        },
    }


def check_ring(model) -> dict:
    from train_pretrained import ring_coverage

    r = ring_coverage(model)
    ok = r["modes_covered"] == r["num_modes"] and r["high_quality"] >= RING_NEAR_TARGET
    return {
        "numbers": f"{r['modes_covered']}/{r['num_modes']} modes, {pct(r['high_quality'])} near a mode",
        "target": f"all modes, >= {100 * RING_NEAR_TARGET:.0f}% near one",
        "pass": ok,
        "measured": r,
    }


def plan(model, data_name: str) -> list[str]:
    """The checks that apply to ``model`` trained on ``data_name``, from its capabilities and data."""
    caps = model.capabilities
    if model.data_kind == "points":
        return ["ring"] if data_name == "ring8" else []
    if model.data_kind != "image":
        return []
    if "translate" in caps:
        if not data_name.startswith("unpaired:"):
            return []
        from genlab.data.unpaired import parse_spec

        a, b, _ = parse_spec(data_name.partition(":")[2])
        if a == "mnist" and b == "mnist+mnistm":
            return ["sim_to_real"]
        return ["translation"] if mnist_domain(a) is not False and mnist_domain(b) is not False else []
    checks = []
    if "decode" in caps and _latent_shape(model) == (2,):
        checks.append("manifold")
    if data_name == "mnist" and tuple(model.config.image_shape) == (1, 28, 28):
        if {"reconstruct", "discriminate"} <= caps:  # an adversarially learnt encoder: does G(E(x)) keep the digit?
            checks.append("reconstruction")
        if "sample" in caps:
            checks.append("conditional" if model.config.num_classes > 0 else "samples")
    return checks


def _latent_shape(model):
    try:
        return tuple(model.latent_shape)
    except (NotImplementedError, AttributeError):
        return None


def is_autoregressive(model) -> bool:
    return "complete" in model.capabilities  # pixel-by-pixel samplers


# --------------------------------------------------------------------------- driver


def check_model(name: str, judge, data_dir: str, samples: int, ar_samples: int, mnist_test) -> list[dict]:
    import genlab
    from genlab import pretrained

    card = pretrained.card(name)
    model = genlab.load(f"pretrained:{name}")
    doc = json.loads((pretrained.path(name) / "config.json").read_text())
    data_name = (card.get("data") or {}).get("name") or (doc.get("data") or {}).get("name") or ""
    kind = card.get("model") or doc.get("model_name")
    n = ar_samples if is_autoregressive(model) else samples
    rows = []
    for check in plan(model, data_name) or ["none"]:
        t0 = time.process_time()
        try:
            if check == "samples":
                row = check_samples(model, judge, n, kind)
            elif check == "conditional":
                row = check_conditional(model, judge, n)
            elif check == "reconstruction":
                row = check_reconstruction(model, judge, mnist_test, samples)
            elif check == "translation":
                row = check_translation(model, judge, data_name, data_dir, samples)
            elif check == "sim_to_real":
                row = check_sim_to_real(model, judge, card, data_dir, samples)
            elif check == "manifold":
                row = check_manifold(model, data_name, data_dir)
            elif check == "ring":
                row = check_ring(model)
            else:
                row = {
                    "numbers": f"not judged ({model.data_kind} data: {data_name})",
                    "target": "",
                    "pass": None,
                    "measured": {},
                }
        except Exception as e:  # one broken model must not hide the others
            traceback.print_exc()
            row = {"numbers": f"ERROR: {type(e).__name__}: {e}", "target": "", "pass": False, "measured": {}}
        row.update(
            model=name,
            check=check,
            cpu_seconds=round(time.process_time() - t0, 1),
            n={
                "samples": n,
                "conditional": n,
                "reconstruction": samples,
                "translation": samples,
                "sim_to_real": samples,
                "manifold": 144,
                "ring": 2000,
            }.get(check, ""),
            headline=card.get("headline", ""),
            train_cpu_minutes=(card.get("training") or {}).get("cpu_minutes"),
        )
        rows.append(row)
    return rows


def reference_rows(judge, mnist_test, n: int) -> list[dict]:
    x = mnist_test.images[:n].float() / 255
    xb = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    out = []
    for label, imgs in (("real test digits (grey)", x), ("real test digits (binarised)", xb)):
        row = sample_row(judge_probs(judge, imgs), SAMPLE_TARGET_DEFAULT)
        row.update(
            model=f"*{label}*", check="reference", n=len(x), headline="", train_cpu_minutes=None, cpu_seconds=0.0
        )
        out.append(row)
    return out


def markdown(rows: list[dict]) -> str:
    """The table: one row per check; ``card``: the card's headline (NLL, FID); train CPU min: the card's
    ``training.cpu_minutes``; check CPU s: what this check took."""
    lines = [
        "| model | check | n | judged | target | result | card | train CPU min | check CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res = {True: "PASS", False: "**FAIL**", None: "-"}[r["pass"]]
        cpu = "" if r["train_cpu_minutes"] is None else f"{r['train_cpu_minutes']:.1f}"
        lines.append(
            f"| {r['model']} | {r['check']} | {r['n']} | {r['numbers']} | {r['target']} | {res} | "
            f"{r['headline']} | {cpu} | {r['cpu_seconds']:.0f} |"
        )
    return "\n".join(lines)


def write_judged(name: str, rows: list[dict], judge_info: dict) -> None:
    from genlab import pretrained
    from genlab.io import atomic_write_json

    file = pretrained.path(name) / "card.json"
    card = json.loads(file.read_text())
    passes = [r["pass"] for r in rows if r["pass"] is not None]
    card["judged"] = {
        "script": "scripts/check_pretrained.py",
        "date": time.strftime("%Y-%m-%d"),
        "judge": {
            k: judge_info[k]
            for k in (
                "recipe_sha256",
                "parameters",
                "accuracy_grey",
                "accuracy_binarized",
                "real_confident",
                "noise_confident",
                "threshold",
            )
        },
        "checks": [{k: r[k] for k in ("check", "n", "numbers", "target", "pass", "measured")} for r in rows],
        "pass": all(passes) if passes else None,
    }
    atomic_write_json(file, card)


def default_data_dir() -> str:
    return os.environ.get("GENLAB_SHARED_DATA") or str(ROOT.parent / "shared" / "data")


def main(argv=None) -> int:
    from genlab import data as gdata
    from genlab import pretrained

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="check this shipped model only (repeatable)"
    )
    ap.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="shared data folder (default: $GENLAB_SHARED_DATA, else ../shared/data)",
    )
    ap.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="samples per sampler, test digits per reconstruction/translation check",
    )
    ap.add_argument(
        "--ar-samples", type=int, default=None, help="samples of pixel-by-pixel samplers (default: --samples)"
    )
    ap.add_argument("--retrain-judge", action="store_true", help="train the judge even when its cached weights exist")
    ap.add_argument("--no-write", action="store_true", help="do not write the numbers into the cards (card['judged'])")
    ap.add_argument("--table-out", metavar="FILE", help="also write the markdown table to FILE")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only or pretrained.names()
    unknown = [n for n in names if n not in pretrained.names()]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; shipped: {', '.join(pretrained.names())}")
    ar = args.samples if args.ar_samples is None else args.ar_samples
    cpu0, wall0 = time.process_time(), time.perf_counter()

    judge, log = get_judge(args.data_dir, retrain=args.retrain_judge)
    test = gdata.load("mnist", "test", args.data_dir)
    info = judge_report(judge, test.images, test.labels)
    from train_pretrained import machine

    m = machine()
    judge_source = (
        "trained now in " + str(log["cpu_seconds"]) + " CPU s"
        if log.get("trained_now")
        else "cached: " + log.get("cached", "")
    )
    head = [
        f"Machine: {m['cpu']} ({m['cpus']} CPUs), torch {m['torch']}, "
        f"{torch.get_num_threads()} thread; genlab {m['genlab']}.",
        f"Judge: {info['parameters']} parameters, recipe sha256 {info['recipe_sha256'][:16]} "
        f"({judge_source}); "
        f"test accuracy {pct(info['accuracy_grey'])} grey, {pct(info['accuracy_binarized'])} binarised; "
        f"confident (p >= {CONFIDENCE}) on {pct(info['real_confident'])} of real test digits "
        f"({pct(info['real_binarized_confident'])} binarised), on {pct(info['noise_confident'])} of uniform noise.",
        f"Samples: {args.samples} per model ({ar} for pixel-by-pixel samplers), seed 0, as `genlab sample` shows them.",
    ]
    print("\n".join(head), flush=True)

    rows = reference_rows(judge, test, args.samples)
    for name in names:
        t0 = time.process_time()
        try:
            got = check_model(name, judge, args.data_dir, args.samples, ar, test)
        except Exception as e:  # the model or its card does not load: report it, check the others
            traceback.print_exc()
            got = [
                {
                    "model": name,
                    "check": "load",
                    "n": "",
                    "numbers": f"ERROR: {type(e).__name__}: {e}",
                    "target": "",
                    "pass": False,
                    "measured": {},
                    "headline": "",
                    "train_cpu_minutes": None,
                    "cpu_seconds": round(time.process_time() - t0, 1),
                }
            ]
        rows.extend(got)
        for r in got:
            print(
                f"{name} [{r['check']}]: {r['numbers']} -> {({True: 'PASS', False: 'FAIL', None: '-'})[r['pass']]} "
                f"({time.process_time() - t0:.0f} CPU s)",
                flush=True,
            )
        if not args.no_write:
            write_judged(name, got, info)
    table = markdown(rows)
    cpu, wall = (time.process_time() - cpu0) / 60, (time.perf_counter() - wall0) / 60
    tail = f"Checked {len(names)} models in {cpu:.1f} CPU-minutes ({wall:.1f} wall-minutes)."
    print("\n" + table + "\n\n" + tail)
    if args.table_out:
        Path(args.table_out).write_text("\n".join(head) + "\n\n" + table + "\n\n" + tail + "\n")
    return 1 if any(r["pass"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
