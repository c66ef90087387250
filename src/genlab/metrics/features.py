"""Feature networks for sample-quality metrics (FID, KID, precision/recall, ...).

genlab ships three small classifiers, trained by ``scripts/train_feature_nets.py``
(re-runnable; it records test accuracy in ``weights/feature_nets.json``):

==============  ===========  ==================================================
name            input        trained on
==============  ===========  ==================================================
"mnist"         1 x 28 x 28  MNIST train (60,000), tested on MNIST test
"fashion-mnist" 1 x 28 x 28  Fashion-MNIST train (60,000), tested on its test
"cifar10"       3 x 32 x 32  9,000 of the 10,000 CIFAR-10 *test* JPEGs (the
                             only CIFAR-10 images available when they were
                             trained); accuracy is on the other 1,000
==============  ===========  ==================================================

The feature of an image is the network's penultimate layer, a 128-d vector
(after a ReLU). Features from these nets are comparable only with features from
the same net: FID numbers computed here are *not* comparable with published
Inception FIDs. ``"inception"`` (2048-d pool features of the FID Inception-v3)
is available through the optional ``torch-fidelity`` package when its weights
can be obtained; otherwise asking for it raises :class:`FeatureNetError` with
instructions.

Weights are safetensors files inside the package; their SHA-256 is checked at
load time against ``weights/feature_nets.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GenlabError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "feature_nets.json"

#: name -> (channels, height, width) of the input each shipped network expects.
FEATURE_NETS = {
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}
FEATURE_DIM = 128

#: Data set name -> the feature net trained on the same kind of images.
_DATA_TO_NET = {
    "mnist": "mnist",
    "mnist-5k": "mnist",
    "digits": "mnist",
    "fashion-mnist": "fashion-mnist",
    "cifar10": "cifar10",
}


class FeatureNetError(GenlabError, ValueError):
    """A feature network that is unknown, unavailable, corrupt, or given images it does not fit."""


class SmallConvNet(nn.Module):
    """A small classifier whose penultimate layer is the feature.

    Input: (N, C, H, W) in [0, 1]. ``features(x)`` -> (N, 128) (non-negative,
    after a ReLU); ``forward(x)`` -> (N, num_classes) logits.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, feature_dim: int = FEATURE_DIM):
        super().__init__()
        w = width

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(in_channels, w, 1),
            *block(w, 2 * w, 2),
            *block(2 * w, 2 * w, 1),
            *block(2 * w, 4 * w, 2),
            *block(4 * w, 4 * w, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * w, feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.fc(self.body((x - 0.5) / 0.5)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))


class FeatureNet(nn.Module):
    """A frozen feature extractor with a declared input shape.

    ``features(x01)``: (N, C, H, W) floats in [0, 1] -> (N, dim) float64 numpy-ready tensor.
    ``logits(x01)``: class logits (for the classifier score), when the net has a head.
    """

    def __init__(self, name: str, net: nn.Module, input_shape: tuple[int, int, int], dim: int, sha256: str = ""):
        super().__init__()
        self.name = name
        self.net = net.eval()
        self.input_shape = tuple(input_shape)
        self.dim = dim
        self.sha256 = sha256
        for p in self.net.parameters():
            p.requires_grad_(False)

    def check_input(self, x: Tensor) -> None:
        """Raise FeatureNetError, saying how to fix it, unless ``x`` is a batch (N, C, H, W) of the input shape."""
        c, h, w = self.input_shape
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise FeatureNetError(
                f"feature network {self.name!r} expects images of shape (N, {c}, {h}, {w}) in [0, 1], "
                f"got {tuple(x.shape)}; resize/convert the images (e.g. genlab.data.load(..., image_size=({h}, {w}), "
                f"channels={c})) or choose another feature network ({', '.join(list(FEATURE_NETS) + ['inception'])})"
            )

    @torch.inference_mode()
    def features(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """The feature vectors (N, F) of images ``x`` (N, C, H, W) in [0, 1], computed ``batch_size`` at a time."""
        self.check_input(x)
        dev = next(self.net.parameters()).device
        out = [
            self.net.features(x[i : i + batch_size].float().to(dev)).double().cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.dim, dtype=torch.float64)

    @torch.inference_mode()
    def logits(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """The classifier head's logits (N, classes) of images ``x`` (N, C, H, W) in [0, 1]."""
        self.check_input(x)
        if not hasattr(self.net, "head"):
            raise FeatureNetError(f"feature network {self.name!r} has no classifier head")
        dev = next(self.net.parameters()).device
        out = [self.net(x[i : i + batch_size].float().to(dev)).double().cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest() -> dict:
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def _load_shipped(name: str, device) -> FeatureNet:
    from safetensors.torch import load_file

    path = weights_path(name)
    entry = read_manifest().get(name)
    if not path.is_file() or entry is None:
        raise FeatureNetError(
            f"the weights of feature network {name!r} are missing ({path}); "
            f"run `python scripts/train_feature_nets.py --nets {name}` to train them"
        )
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise FeatureNetError(
            f"SHA-256 mismatch for {path}: expected {entry['sha256']}, got {digest}. "
            f"The file is corrupt or was replaced; reinstall genlab or re-run scripts/train_feature_nets.py"
        )
    c = FEATURE_NETS[name][0]
    net = SmallConvNet(in_channels=c, num_classes=entry.get("num_classes", 10), width=entry.get("width", 16))
    net.load_state_dict(load_file(str(path)))
    return FeatureNet(name, net, FEATURE_NETS[name], FEATURE_DIM, digest).to(device)


class _InceptionWrapper(nn.Module):
    def __init__(self, extractor):
        super().__init__()
        self.extractor = extractor

    def features(self, x01: Tensor) -> Tensor:
        if x01.shape[1] == 1:
            x01 = x01.expand(-1, 3, -1, -1)
        x = torch.round(x01.clamp(0, 1) * 255).to(torch.uint8)
        return self.extractor(x)[0]


def _load_inception(device) -> FeatureNet:
    try:
        import torch_fidelity  # noqa: F401
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise FeatureNetError(
            "the 'inception' feature network needs the optional torch-fidelity package "
            "(pip install torch-fidelity) and its Inception-v3 weights (downloaded on first use); "
            "use one of genlab's own feature networks instead: " + ", ".join(FEATURE_NETS)
        ) from None
    try:
        import os

        # a local copy of the weights (offline machines): GENLAB_INCEPTION_WEIGHTS=/path/pt_inception-2015-12-05.pth
        ext = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], os.environ.get("GENLAB_INCEPTION_WEIGHTS"))
    except Exception as e:  # weights not downloadable (offline) or incompatible version
        raise FeatureNetError(
            f"torch-fidelity is installed but its Inception-v3 weights could not be loaded: {e}"
        ) from None
    # Inception works on any size: it resizes to 299x299 internally; accept 1 or 3 channels.
    fn = FeatureNet("inception", _InceptionWrapper(ext), (3, 299, 299), 2048)
    fn.check_input = lambda x: _check_any_image(x)  # type: ignore[method-assign]
    return fn.to(device)


def _check_any_image(x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise FeatureNetError(
            f"feature network 'inception' expects images (N, 1 or 3, H, W) in [0, 1], got {tuple(x.shape)}"
        )


_CACHE: dict[tuple[str, str], FeatureNet] = {}


def get_feature_net(name: str, device: str | torch.device = "cpu") -> FeatureNet:
    """The feature network ``name`` ("mnist", "fashion-mnist", "cifar10" or "inception"), frozen, in eval mode."""
    key = (name, str(device))
    if key in _CACHE:
        return _CACHE[key]
    if name in FEATURE_NETS:
        net = _load_shipped(name, device)
    elif name == "inception":
        net = _load_inception(device)
    else:
        raise FeatureNetError(
            f"unknown feature network {name!r}; choose one of: {', '.join(list(FEATURE_NETS) + ['inception'])}"
        )
    _CACHE[key] = net
    return net


def auto_feature_net(image_shape: tuple[int, int, int], data_name: str | None = None) -> str:
    """Choose a feature network from the data set's name, else from the image shape.

    Named data sets map to the net trained on the same kind of images; otherwise
    1x28x28 -> "mnist" and 3x32x32 -> "cifar10". Any other shape is an error
    that lists the networks and their inputs.
    """
    shape = tuple(image_shape)
    if data_name:
        net = _DATA_TO_NET.get(data_name.strip().lower())
        if net is not None and FEATURE_NETS[net] == shape:
            return net
    for net, s in FEATURE_NETS.items():
        if s == shape:
            return net
    inputs = "; ".join(f"{n}: {s[0]}x{s[1]}x{s[2]}" for n, s in FEATURE_NETS.items())
    raise FeatureNetError(
        f"no feature network fits images of shape {shape}; genlab's networks take {inputs} "
        f"('inception' takes any RGB size with torch-fidelity installed). Resize the data or pass feature_net="
    )
