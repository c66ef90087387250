"""The ``genlab`` command line: a thin layer over the Python API.

Every subcommand maps its flags onto config fields or function arguments and
makes one call into the library; nothing here computes anything itself.

    genlab train vae                          # embedded mnist-5k, a few CPU minutes
    genlab train vae --data frey-face --data-dir ../shared/data --set model.latent_dim=2
    genlab resume runs/vae-mnist-5k --steps 4000
    genlab sample runs/vae-mnist-5k -n 64
    genlab interpolate runs/vae-mnist-5k
    genlab manifold runs/vae-mnist-5k
    genlab eval runs/vae-mnist-5k --data mnist --split test --iw-samples 1000
    genlab report runs/vae-mnist-5k            # runs/vae-mnist-5k/report.html
    genlab serve runs/vae-mnist-5k runs/pixelcnn-mnist-5k
    genlab sample pretrained:vq-transformer-mnist -n 64  # a model shipped with genlab (`genlab models`)
    genlab serve                                    # the explorer over every shipped model

Every command that takes a run folder also takes ``pretrained:NAME``: the model is read
from the package and what the command writes goes to ``./pretrained-NAME/``.
"""

from __future__ import annotations

import argparse
import os
import sys

from .train.cpu import openmp_defaults

if "torch" not in sys.modules:  # the genlab command: libgomp reads its settings once, when torch is imported
    openmp_defaults(os.environ)

from .commands import (  # noqa: E402  (the subcommands, one function each)
    cmd_complete,
    cmd_datasets,
    cmd_eval,
    cmd_interpolate,
    cmd_manifold,
    cmd_models,
    cmd_ood,
    cmd_reconstruct,
    cmd_report,
    cmd_resume,
    cmd_sample,
    cmd_serve,
    cmd_train,
    cmd_translate,
    cmd_traverse,
)
from .errors import GenlabError  # noqa: E402

# ----------------------------------------------------------------------------- helpers


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``genlab sample: error: ...``) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_in(low: int, high: int, allowed: str | None = None):
    """An argparse type: a whole number from ``low`` to ``high``; the error names the range (``allowed``)."""
    allowed = allowed or f"{low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


# The bounds of every size-like option: what a command draws, encodes or writes grows with them
# (the pictures are also capped in pixels: genlab.viz.images.MAX_PIXELS).
_count = _int_in(1, 10**9)  # caps and batch sizes: any positive number
_samples = _int_in(1, 10_000)  # samples drawn into one picture or file
_scale = _int_in(1, 16)  # pixel upscaling of a picture
_port = _int_in(0, 65535, "0 (any free port) to 65535")
_seed = _int_in(0, 2**63 - 1, "0 <= seed < 2**63")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as ``genlab: warning: <message>``, without the source line that raised them."""
    return f"genlab: warning: {message}\n"


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genlab", description="Deep generative modeling: train, sample, evaluate, explore.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (see `genlab models`)")
    t.add_argument("model", help="registry name, e.g. vae")
    t.add_argument(
        "--data",
        help="data set name (`genlab datasets`), folder:<path>, npz:<path> or unpaired:<A>,<B>; "
        "default: the model's own (`genlab models`)",
    )
    t.add_argument(
        "--preset", help="a named preset of the model's settings, e.g. paper (`genlab models MODEL` lists them)"
    )
    t.add_argument("--data-dir", help="folder holding local copies of data sets, as <dir>/<name>/<original files>")
    t.add_argument("--steps", type=int, help="stop after this many optimisation steps (total)")
    t.add_argument("--seed", type=_seed, help="random seed, 0 <= seed < 2**63 (default 0)")
    t.add_argument("--out", help="run directory (default runs/<model>-<data>)")
    t.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="set any config field, e.g. model.latent_dim=2 (repeatable)"
    )
    t.add_argument("--no-report", action="store_true", help="do not write RUN/report.html at the end")
    t.add_argument(
        "--print-config",
        action="store_true",
        help="print every resolved setting and where it came from (default, preset, flag, --set), then exit",
    )
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("resume", help="continue a run exactly where it stopped")
    r.add_argument("run")
    r.add_argument("--steps", type=int, required=True, help="total number of steps to reach")
    r.add_argument(
        "--max-seconds",
        type=float,
        help="new wall-clock budget of the whole run, in seconds (train.max_seconds; the time spent so far counts)",
    )
    r.add_argument("--no-report", action="store_true", help="do not write RUN/report.html at the end")
    r.set_defaults(func=cmd_resume)

    def run_cmd(name, help, func, out_help):
        s = sub.add_parser(name, help=help)
        s.add_argument(
            "run", help="run directory, a folder written by model.save, or pretrained:NAME (`genlab models`)"
        )
        s.add_argument("--out", help=out_help)
        s.add_argument("--seed", type=_seed, default=0)
        s.set_defaults(func=func)
        return s

    s = run_cmd(
        "sample",
        "draw samples: an image grid, waveforms (or a WAV file) or a scatter of points",
        cmd_sample,
        "picture (.png, .jpg, .jpeg), or .wav for sequence models, their waveforms beside it as .png "
        "(default RUN/samples.png, RUN/samples.wav for sequences)",
    )
    s.add_argument(
        "-n",
        type=_samples,
        default=None,
        help="number of samples, 1 to 10000 (default 64 images, 8 sequences, 1000 points; "
        "a translator's (A, B) pair is 2 images)",
    )
    s.add_argument("--labels", help="class labels for a conditional model, e.g. 0,1,2 (repeated to fill n)")
    s.add_argument("--scale", type=_scale, default=2, help="pixel upscaling of the PNG, 1 to 16")
    s.add_argument(
        "--rate", type=_int_in(1000, 192_000), default=8000, help="sample rate of the WAV written for sequence models"
    )

    s = run_cmd(
        "interpolate",
        "GIF of a smooth walk through latent space",
        cmd_interpolate,
        "GIF path (default RUN/interpolation.gif)",
    )
    s.add_argument("--points", type=_int_in(2, 64), default=4, help="latent points visited in a loop, 2 to 64")
    s.add_argument("--frames", type=_int_in(1, 256), default=16, help="frames between two points, 1 to 256")
    s.add_argument("--method", choices=["slerp", "lerp"], default="slerp")
    s.add_argument("--data", help="data set whose test images are encoded (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--labels", help="class label of the walk for a conditional GAN")
    s.add_argument("--scale", type=_scale, default=2)

    s = run_cmd(
        "manifold",
        "the 2-D latent manifold figure",
        cmd_manifold,
        "picture: .png, .jpg or .jpeg (default RUN/manifold.png)",
    )
    s.add_argument("--n", type=_int_in(2, 100), default=20, help="grid points per axis, 2 to 100")
    s.add_argument("--dims", type=int, nargs=2, default=[0, 1], help="the two latent dimensions to vary")
    s.add_argument("--scale", type=_scale, default=2)

    s = run_cmd(
        "reconstruct",
        "test images next to their reconstructions (latent-variable models)",
        cmd_reconstruct,
        "picture: .png, .jpg or .jpeg (default RUN/reconstructions.png)",
    )
    s.add_argument("-n", type=_int_in(1, 1024), default=32, help="test images, 1 to 1024")
    s.add_argument("--data", help="data set (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--scale", type=_scale, default=2)

    s = run_cmd(
        "traverse",
        "vary one latent dimension at a time around an encoded test image",
        cmd_traverse,
        "picture: .png, .jpg or .jpeg (default RUN/traversal.png)",
    )
    s.add_argument("--dims", type=_int_in(1, 100), default=10, help="how many latent dimensions (rows), 1 to 100")
    s.add_argument("--span", type=float, default=3.0, help="offsets from -span to +span (standard deviations)")
    s.add_argument("--steps", type=_int_in(1, 64), default=9, help="images per row, 1 to 64")
    s.add_argument("--data", help="data set (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--scale", type=_scale, default=2)

    s = run_cmd(
        "eval",
        "likelihood and sample-quality metrics; JSON on stdout, eval.json + eval.md in the run",
        cmd_eval,
        "folder for eval.json and eval.md (default RUN)",
    )
    s.add_argument("--data", help="data set (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--split", default="test")
    s.add_argument(
        "--iw-samples",
        type=_int_in(1, 10_000),
        default=None,
        help="importance samples for importance-sampled models (the VAEs; default 100)",
    )
    s.add_argument(
        "--samples",
        type=_int_in(0, 50_000),
        default=2000,
        help="samples drawn for FID/KID/precision-recall, 0 to 50000 (0: skip them)",
    )
    s.add_argument("--feature-net", help="mnist, fashion-mnist, cifar10 or inception (default: chosen from the data)")
    s.add_argument("--max-examples", type=_count, default=None, help="cap on test examples")
    s.add_argument("--batch-size", type=_int_in(1, 65536), default=256)

    s = sub.add_parser("ood", help="outlier detection: AUROC/AUPR/FPR95 per detector and outlier set, JSON on stdout")
    s.add_argument("run", help="run directory (or pretrained:NAME) of the model trained on the in-distribution data")
    s.add_argument("--in", dest="in_data", help="in-distribution data set (default: the run's); its test split is used")
    s.add_argument(
        "--out",
        dest="out_sets",
        action="append",
        required=True,
        metavar="OUTLIERS",
        help="outlier set (repeatable): a data set name, folder:<path>, noise, constant, inverted, flipped",
    )
    s.add_argument("--report-dir", help="folder for ood.json, ood.md and ROC plots (default RUN/ood)")
    s.add_argument("--seed", type=_seed, default=0)
    s.set_defaults(func=cmd_ood)
    s.add_argument(
        "--methods",
        default="likelihood,typicality,complexity",
        help="comma-separated: likelihood, likelihood-ratio, typicality, complexity",
    )
    s.add_argument("--background", help="run dir of the background model for likelihood-ratio")
    s.add_argument("--data-dir")
    s.add_argument("--iw-samples", type=_int_in(1, 10_000), default=None)
    s.add_argument("--max-examples", type=_count, default=1000)

    s = run_cmd(
        "complete",
        "complete an image from its top rows (autoregressive models)",
        cmd_complete,
        "picture: .png, .jpg or .jpeg (default RUN/completion.png)",
    )
    s.add_argument("--image", required=True)
    s.add_argument("--rows", type=int, required=True, help="rows observed from the top")
    s.add_argument("-n", type=_int_in(1, 256), default=8, help="completions drawn, 1 to 256")
    s.add_argument("--labels", help="class label(s) for a conditional model")
    s.add_argument("--scale", type=_scale, default=4)

    s = sub.add_parser("serve", help="the web explorer: a local page to sample, walk the latent space and score images")
    s.add_argument(
        "run",
        nargs="*",
        help="run directories, folders written by model.save or pretrained:NAME; several: one tab "
        "each; none: every pretrained model shipped with genlab (`genlab models`)",
    )
    s.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--device", default="cpu", help="torch device of the model (default cpu)")
    s.add_argument(
        "--reference-examples",
        type=_int_in(0, 10_000),
        default=100,
        help="held-out images of the run's data set an uploaded image is compared with (0: none)",
    )
    s.add_argument(
        "--data-dir",
        help="folder holding the runs' data sets (<name>/<files>, as shared/data): test images for "
        "the examples, the outlier scores and the projection",
    )
    s.add_argument("--verbose", action="store_true", help="Gradio's startup messages and request errors")
    s.set_defaults(func=cmd_serve)

    s = run_cmd(
        "translate",
        "translate images between domains (cyclegan): inputs, translations, reconstructions",
        cmd_translate,
        "picture: .png, .jpg or .jpeg (default RUN/translation-<direction>.png)",
    )
    s.add_argument(
        "--direction", choices=["a2b", "b2a"], required=True, help="a2b applies G: A -> B, b2a applies F: B -> A"
    )
    src = s.add_mutually_exclusive_group()
    src.add_argument("--image", help="an image file to translate")
    src.add_argument(
        "--data",
        help="a domain, <data set>[+invert|+rot90|+rot270|+flip] (default: the run's domain A for a2b, B for b2a)",
    )
    s.add_argument("--data-dir")
    s.add_argument("--split", default="test")
    s.add_argument("-n", type=_int_in(1, 1024), default=8, help="images drawn from --data, 1 to 1024")
    s.add_argument("--scale", type=_scale, default=3)

    s = run_cmd(
        "report",
        "one self-contained HTML page about a run: config, curves, samples, latent views, eval",
        cmd_report,
        "HTML path (default RUN/report.html)",
    )
    s.add_argument("--fast", action="store_true", help="skip the parts a probe call predicts take more than 5 s")
    s.add_argument("--device", default="cpu")

    s = sub.add_parser(
        "models",
        help="list the models; with a name: its presets (values, source, published results), or a shipped model's card",
    )
    s.add_argument(
        "model",
        nargs="?",
        help="a registry name, e.g. pixelcnn: its presets in full; a shipped model, e.g. flow-matching-mnist: its card",
    )
    s.set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list the named data sets").set_defaults(func=cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning  # the message alone, no source line
    try:
        args.func(args)
    # OSError: a file system refusal genlab did not word itself; NotImplementedError: a contract method the
    # model lacks (genlab.models.base words it: "PixelCNN has no latent space"), where a command did not check first
    except (GenlabError, ValueError, OSError, NotImplementedError) as e:
        print(f"genlab {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact (genlab resume RUN --steps N continues)", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous
    return 0


if __name__ == "__main__":
    sys.exit(main())
