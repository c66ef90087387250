"""Train genlab's feature networks (used by FID/KID/precision-recall) and ship their weights.

    python scripts/train_feature_nets.py --data-dir ../shared/data            # all three
    python scripts/train_feature_nets.py --nets mnist --epochs 2

Writes ``src/genlab/metrics/weights/<name>.safetensors`` and records, in
``src/genlab/metrics/weights/feature_nets.json``, each file's SHA-256 (checked
when genlab loads it), its held-out accuracy and how it was trained.

Data used:

* ``mnist`` / ``fashion-mnist``: the 60,000 training images; accuracy on the 10,000 test images.
* ``cifar10``: only the 10,000 CIFAR-10 *test* images (as JPEGs) were available,
  so the net is trained on 9,000 of them (fixed seeded split) and its accuracy
  is measured on the other 1,000. It is a weak classifier: its features still
  separate image statistics, but do not read its FID like an Inception FID.

Re-runnable and seeded (CPU results repeat; thread scheduling can change the last bits).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from genlab import data  # noqa: E402
from genlab.io import atomic_write_json, save_tensors  # noqa: E402
from genlab.metrics.features import FEATURE_NETS, MANIFEST, WEIGHTS_DIR, SmallConvNet, sha256_file  # noqa: E402

DEFAULT_EPOCHS = {"mnist": 3, "fashion-mnist": 8, "cifar10": 30}


def load_splits(name: str, data_dir: str | None):
    if name == "cifar10":
        full = data.load("cifar10", "test", data_dir=data_dir)
        perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
        train, test = full.subset(perm[:9000]), full.subset(perm[9000:])
        note = "trained on 9,000 of the 10,000 CIFAR-10 test JPEGs; accuracy on the other 1,000 (seeded split)"
    else:
        train, test = data.load(name, "train", data_dir=data_dir), data.load(name, "test", data_dir=data_dir)
        note = f"trained on the {len(train):,} {name} training images; accuracy on the {len(test):,} test images"
    return train, test, note


def augment(x: torch.Tensor, g: torch.Generator, flip: bool) -> torch.Tensor:
    """Random shifts by up to 2 pixels (pad + crop) and, for natural images, horizontal flips."""
    n, c, h, w = x.shape
    p = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
    x = p[:, :, dy : dy + h, dx : dx + w]
    if flip:
        m = torch.rand(n, generator=g) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    return x


def accuracy(net, images_u8, labels, bs=1000) -> float:
    net.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(images_u8), bs):
            x = images_u8[i : i + bs].float() / 255
            correct += (net(x).argmax(1) == labels[i : i + bs]).sum().item()
    return correct / len(images_u8)


def train_one(name: str, data_dir: str | None, epochs: int, seed: int, batch_size: int = 128) -> dict:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train, test, note = load_splits(name, data_dir)
    c = FEATURE_NETS[name][0]
    if train.shape != FEATURE_NETS[name]:
        raise SystemExit(f"{name}: data shape {train.shape} != expected {FEATURE_NETS[name]}")
    net = SmallConvNet(in_channels=c, num_classes=10, width=16)
    steps = epochs * (len(train) // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    step = 0
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(train), generator=g)
        for i in range(0, len(train) - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            x = augment(train.images[idx].float() / 255, g, flip=(name == "cifar10"))
            loss = F.cross_entropy(net(x), train.labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(
                    f"  {name} epoch {epoch + 1}/{epochs} step {step}/{steps} loss "
                    f"{loss.item():.3f} ({time.time() - t0:.0f}s)",
                    flush=True,
                )
        acc = accuracy(net, test.images, test.labels)
        print(f"{name}: epoch {epoch + 1} held-out accuracy {acc:.4f} ({time.time() - t0:.0f}s)", flush=True)
    net.eval()
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = WEIGHTS_DIR / f"{name}.safetensors"
    save_tensors({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    path.chmod(0o644)  # package data: readable by everyone (atomic writes create 0600 files)
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "input_shape": list(FEATURE_NETS[name]),
        "feature_dim": 128,
        "feature_layer": "penultimate (ReLU(fc) on global-average-pooled conv features)",
        "num_classes": 10,
        "width": 16,
        "heldout_accuracy": round(acc, 4),
        "n_train": len(train),
        "n_heldout": len(test),
        "data": note,
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(time.time() - t0, 1),
        "torch_version": torch.__version__,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=list(FEATURE_NETS), choices=list(FEATURE_NETS))
    ap.add_argument(
        "--data-dir", default=None, help="folder with mnist/, fashion-mnist/, cifar10-test-jpeg/ (e.g. ../shared/data)"
    )
    ap.add_argument("--epochs", type=int, default=None, help=f"override the per-net defaults {DEFAULT_EPOCHS}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.nets:
        entry = train_one(name, args.data_dir, args.epochs or DEFAULT_EPOCHS[name], args.seed)
        manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
        manifest[name] = entry
        atomic_write_json(MANIFEST, dict(sorted(manifest.items())))
        MANIFEST.chmod(0o644)
        print(json.dumps({name: entry}, indent=2), flush=True)


if __name__ == "__main__":
    main()
