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
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import DEFAULT_DATA
from .errors import GenlabError


# ----------------------------------------------------------------------------- helpers


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``genlab sample: error: ...``) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 (any free one) to 65535, got {value}")
    return value


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as ``genlab: warning: <message>``, without the source line that raised them."""
    return f"genlab: warning: {message}\n"


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _labels(text: str | None, n: int):
    if text is None:
        return None
    import torch

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GenlabError(f"--labels must be comma-separated integers like 0,1,2, got {text!r}") from None
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        values = [values[i % len(values)] for i in range(n)]
    return torch.tensor(values)


def _out_path(args, run: Path, default_name: str) -> Path:
    return Path(args.out) if args.out else run / default_name


def _load(run: str):
    import genlab

    return genlab.load(run)


def _data_for(model, name: str, split: str, data_dir: str | None, run: Path | None = None):
    """Load a data set shaped like the model's input (resized / converted if needed)."""
    from . import data

    c, h, w = model.config.image_shape
    return data.load(name, split=split, data_dir=data_dir, image_size=(h, w), channels=c)


def _test_images(model, run: Path, args, n: int, g):
    """n random test images of the run's data set (or --data), in [0, 1] and in the model's input space."""
    import torch

    d = _run_config(run)
    ds = _data_for(model, args.data or d.get("name", DEFAULT_DATA), "test", args.data_dir or d.get("data_dir"))
    idx = torch.randperm(len(ds), generator=g)[:n]
    x01 = ds.images[idx].float() / 255
    return x01, model.prepare(x01, generator=g)


def _run_config(run: Path):
    """The data section of a run's config.json (None for a bare saved model)."""
    from .io import read_json

    doc = read_json(run / "config.json")
    return doc.get("data") or {}


# ----------------------------------------------------------------------------- commands


def cmd_train(args) -> None:
    from .train import train

    sets = list(args.set or [])  # the model's defaults and presets come first (genlab.registry.build_run_config)
    if args.data_dir:
        sets.append(f"data.data_dir={json.dumps(str(args.data_dir))}")
    if args.steps is not None:
        sets.append(f"train.steps={args.steps}")
    if args.seed is not None:
        sets.append(f"train.seed={args.seed}")
    run = train(args.model, out_dir=args.out, data=args.data, preset=args.preset, overrides=sets)
    _report_after_training(run, args)
    print(run)


def cmd_resume(args) -> None:
    from .train import resume

    run = resume(Path(args.run), steps=args.steps, max_seconds=args.max_seconds)
    _report_after_training(run, args)
    print(run)


def _report_after_training(run: Path, args) -> None:
    if not args.no_report:
        from .report import after_training

        after_training(run)


def cmd_report(args) -> None:
    from .report import write_report

    print(write_report(args.run, args.out, fast=args.fast, seed=args.seed, device=args.device))


def cmd_sample(args) -> None:
    from .viz.samples import default_count, render_samples

    run = Path(args.run)
    model = _load(args.run)
    n = default_count(model) if args.n is None else args.n
    shown = render_samples(model, n, generator=_generator(args.seed), labels=_labels(args.labels, n), real=_run_config(run).get("name"))
    path = _out_path(args, run, "samples.wav" if shown.kind == "sequence" else "samples.png")
    print(shown.save(path, scale=args.scale, rate=args.rate))


def cmd_interpolate(args) -> None:
    import torch

    from .viz import latent

    run = Path(args.run)
    model = _load(args.run)
    path = _out_path(args, run, "interpolation.gif")
    g = _generator(args.seed)
    if "encode" in model.capabilities:  # latent-variable model: walk between encoded test images
        _, x = _test_images(model, run, args, args.points, g)
        with torch.inference_mode():
            z = model.encode(x.to(model.device)).float().cpu()  # VAE: the posterior mean; ALI: E(x)
        frames = latent.loop_frames(model, z, steps_per_leg=args.frames, method=args.method)
        latent.save_interpolation_gif(frames, path, scale=args.scale)
    elif "latent" in model.capabilities:  # GAN: walk between random codes
        from .viz.gan import gan_walk_gif

        gan_walk_gif(model, path, points=args.points, steps=args.frames, method=args.method, generator=g,
                     labels=_labels(args.labels, 1), scale=args.scale)
    else:
        raise GenlabError(f"{type(model).__name__} has no latent space to walk through")
    print(path)


def cmd_manifold(args) -> None:
    from .viz import latent
    from .viz.images import save_png

    model = _load(args.run)
    image = latent.manifold_grid(model, n=args.n, dims=tuple(args.dims))
    path = _out_path(args, Path(args.run), "manifold.png")
    save_png(image, path, scale=args.scale)
    print(path)


def cmd_reconstruct(args) -> None:
    import torch

    from .viz.images import make_grid, save_png

    run = Path(args.run)
    model = _load(args.run)
    if "reconstruct" not in model.capabilities:
        raise GenlabError(f"{type(model).__name__} has no encoder to reconstruct with")
    x01, x = _test_images(model, run, args, args.n, _generator(args.seed))
    rec = model.reconstruct(x.to(model.device)).float().cpu()
    pairs = torch.stack([x01, rec], 1).flatten(0, 1)  # originals and reconstructions side by side
    path = _out_path(args, run, "reconstructions.png")
    save_png(make_grid(pairs, nrow=2 * max(1, int(args.n**0.5))), path, scale=args.scale)
    print(path)


def cmd_traverse(args) -> None:
    from .viz import latent
    from .viz.images import save_png

    run = Path(args.run)
    model = _load(args.run)
    _, x = _test_images(model, run, args, 1, _generator(args.seed))
    image = latent.traversal_grid(model, x, dims=args.dims, span=args.span, steps=args.steps)
    path = _out_path(args, run, "traversal.png")
    save_png(image, path, scale=args.scale)
    print(path)


def cmd_eval(args) -> None:
    from .metrics.quality import evaluate, write_report

    run = Path(args.run)
    model = _load(args.run)
    d = _run_config(run)
    name = args.data or d.get("name", DEFAULT_DATA)
    ds = _data_for(model, name, args.split, args.data_dir or d.get("data_dir"))
    result = evaluate(
        model, ds, n_samples=args.samples, iw_samples=args.iw_samples, max_examples=args.max_examples,
        batch_size=args.batch_size, seed=args.seed, split=args.split, feature_net=args.feature_net,
    )
    write_report(result, Path(args.out) if args.out else run)
    print(json.dumps(result, indent=2))


def cmd_ood(args) -> None:
    from . import ood

    run = Path(args.run)
    model = _load(args.run)
    d = _run_config(run)
    data_dir = args.data_dir or d.get("data_dir")
    name = args.in_data or d.get("name", DEFAULT_DATA)
    test = _data_for(model, name, "test", data_dir)
    if args.max_examples:
        test = test.subset(range(min(args.max_examples, len(test))))
    outs = {spec: ood.outlier_set(spec, test, n=len(test), data_dir=data_dir, seed=args.seed) for spec in args.out_sets}
    background = _load(args.background) if args.background else None
    methods = [m for m in args.methods.split(",") if m]
    if "likelihood-ratio" in methods and background is None:
        raise GenlabError("the likelihood-ratio method needs --background RUN (a model trained on perturbed inputs, "
                          "see genlab.ood.train_background)")
    train = _data_for(model, name, "train", data_dir) if "typicality" in methods else None
    result = ood.evaluate_ood(
        model, test, outs, methods, background=background, train_data=train, iw_samples=args.iw_samples,
        seed=args.seed, out_dir=Path(args.report_dir) if args.report_dir else run / "ood",
    )
    print(json.dumps(result, indent=2))


def cmd_complete(args) -> None:
    import torch

    from .viz.images import load_image, save_png

    model = _load(args.run)
    c, h, w = model.config.image_shape
    x01 = load_image(args.image, channels=c, size=(h, w)).unsqueeze(0).expand(args.n, -1, -1, -1)
    if not 0 < args.rows < h:
        raise GenlabError(f"--rows must be between 1 and {h - 1} for {h}-row images, got {args.rows}")
    mask = torch.zeros(h, w)
    mask[: args.rows] = 1  # observed: the top rows; the rest is sampled in raster order
    out = model.complete(x01.contiguous(), mask, generator=_generator(args.seed), labels=_labels(args.labels, args.n))
    path = _out_path(args, Path(args.run), "completion.png")
    save_png(torch.cat([x01[:1], out.float()]), path, scale=args.scale)
    print(path)


def cmd_serve(args) -> None:
    from .app import serve

    serve(args.run, host=args.host, port=args.port, device=args.device, reference_examples=args.reference_examples,
          verbose=args.verbose)


def cmd_translate(args) -> None:
    from .viz.images import save_png
    from .viz.translation import translation_grid, translation_inputs

    run = Path(args.run)
    model = _load(args.run)
    if "translate" not in model.capabilities:
        raise GenlabError(f"{type(model).__name__} does not translate between domains; train cyclegan")
    x01 = translation_inputs(model, args.direction, image=args.image, domain=args.data, run_data=_run_config(run).get("name"),
                             split=args.split, data_dir=args.data_dir or _run_config(run).get("data_dir"), n=args.n,
                             generator=_generator(args.seed))
    path = _out_path(args, run, f"translation-{args.direction}.png")
    save_png(translation_grid(model, x01, args.direction), path, scale=args.scale)
    print(path)


def cmd_models(args) -> None:
    from . import registry
    from .presets import describe

    if args.model:
        return print(describe(registry.entry(args.model).presets) or f"{args.model} has no presets")
    for name in registry.MODELS:
        e = registry.entry(name)
        doc = sys.modules[e.model_class.__module__].__doc__ or ""
        first = " ".join(doc.strip().split("\n\n")[0].split())  # the module docstring's first paragraph
        print(f"{name:16s} {first[:100] + ('...' if len(first) > 100 else '')}")
        presets = [p + (f" (used with {', '.join(e.presets[p].data)})" if e.presets[p].data else "") for p in e.presets]
        print(f"{'':16s} data: {e.default_data}" + (f"; presets: {', '.join(presets)}" if presets else ""))


def cmd_datasets(args) -> None:
    from . import data

    for name, desc in data.DATASETS.items():
        print(f"{name:16s} {desc}")


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genlab", description="Deep generative modeling: train, sample, evaluate, explore.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (see `genlab models`)")
    t.add_argument("model", help="registry name, e.g. vae")
    t.add_argument("--data", help="data set name (`genlab datasets`), folder:<path>, npz:<path> or unpaired:<A>,<B>; "
                   "default: the model's own (`genlab models`)")
    t.add_argument("--preset", help="a named preset of the model's settings, e.g. paper (`genlab models MODEL` lists them)")
    t.add_argument("--data-dir", help="folder holding local copies of data sets, as <dir>/<name>/<original files>")
    t.add_argument("--steps", type=int, help="stop after this many optimisation steps (total)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--out", help="run directory (default runs/<model>-<data>)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any config field, e.g. model.latent_dim=2 (repeatable)")
    t.add_argument("--no-report", action="store_true", help="do not write RUN/report.html at the end")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("resume", help="continue a run exactly where it stopped")
    r.add_argument("run")
    r.add_argument("--steps", type=int, required=True, help="total number of steps to reach")
    r.add_argument("--max-seconds", type=float, help="new wall-clock budget of the whole run, in seconds (train.max_seconds; the time spent so far counts)")
    r.add_argument("--no-report", action="store_true", help="do not write RUN/report.html at the end")
    r.set_defaults(func=cmd_resume)

    def run_cmd(name, help, func, out_help):
        s = sub.add_parser(name, help=help)
        s.add_argument("run", help="run directory (or a folder written by model.save)")
        s.add_argument("--out", help=out_help)
        s.add_argument("--seed", type=int, default=0)
        s.set_defaults(func=func)
        return s

    s = run_cmd("sample", "draw samples: an image grid, waveforms (or a WAV file) or a scatter of points", cmd_sample,
                "PNG path, or .wav for sequence models (default RUN/samples.png, RUN/samples.wav for sequences)")
    s.add_argument("-n", type=_count, default=None, help="number of samples (default 64 images, 8 sequences, 1000 points)")
    s.add_argument("--labels", help="class labels for a conditional model, e.g. 0,1,2 (repeated to fill n)")
    s.add_argument("--scale", type=_count, default=2, help="pixel upscaling of the PNG")
    s.add_argument("--rate", type=_count, default=8000, help="sample rate of the WAV written for sequence models")

    s = run_cmd("interpolate", "GIF of a smooth walk through latent space", cmd_interpolate, "GIF path (default RUN/interpolation.gif)")
    s.add_argument("--points", type=_count, default=4, help="latent points visited in a loop")
    s.add_argument("--frames", type=_count, default=16, help="frames between two points")
    s.add_argument("--method", choices=["slerp", "lerp"], default="slerp")
    s.add_argument("--data", help="data set whose test images are encoded (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--labels", help="class label of the walk for a conditional GAN")
    s.add_argument("--scale", type=_count, default=2)

    s = run_cmd("manifold", "the 2-D latent manifold figure", cmd_manifold, "PNG path (default RUN/manifold.png)")
    s.add_argument("--n", type=_count, default=20, help="grid points per axis")
    s.add_argument("--dims", type=int, nargs=2, default=[0, 1], help="the two latent dimensions to vary")
    s.add_argument("--scale", type=_count, default=2)

    s = run_cmd("reconstruct", "test images next to their reconstructions (latent-variable models)", cmd_reconstruct,
                "PNG path (default RUN/reconstructions.png)")
    s.add_argument("-n", type=_count, default=32)
    s.add_argument("--data", help="data set (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--scale", type=_count, default=2)

    s = run_cmd("traverse", "vary one latent dimension at a time around an encoded test image", cmd_traverse,
                "PNG path (default RUN/traversal.png)")
    s.add_argument("--dims", type=_count, default=10, help="how many latent dimensions (rows)")
    s.add_argument("--span", type=float, default=3.0, help="offsets from -span to +span (standard deviations)")
    s.add_argument("--steps", type=_count, default=9, help="images per row")
    s.add_argument("--data", help="data set (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--scale", type=_count, default=2)

    s = run_cmd("eval", "likelihood and sample-quality metrics; JSON on stdout, eval.json + eval.md in the run",
                cmd_eval, "folder for eval.json and eval.md (default RUN)")
    s.add_argument("--data", help="data set (default: the run's)")
    s.add_argument("--data-dir")
    s.add_argument("--split", default="test")
    s.add_argument("--iw-samples", type=_count, default=None, help="importance samples for latent-variable models (default 100)")
    s.add_argument("--samples", type=int, default=2000, help="samples drawn for FID/KID/precision-recall (0: skip them)")
    s.add_argument("--feature-net", help="mnist, fashion-mnist, cifar10 or inception (default: chosen from the data)")
    s.add_argument("--max-examples", type=_count, default=None, help="cap on test examples")
    s.add_argument("--batch-size", type=_count, default=256)

    s = sub.add_parser("ood", help="outlier detection: AUROC/AUPR/FPR95 per detector and outlier set, JSON on stdout")
    s.add_argument("run", help="run directory of the model trained on the in-distribution data")
    s.add_argument("--in", dest="in_data", help="in-distribution data set (default: the run's); its test split is used")
    s.add_argument("--out", dest="out_sets", action="append", required=True, metavar="OUTLIERS",
                   help="outlier set (repeatable): a data set name, folder:<path>, noise, constant, inverted, flipped")
    s.add_argument("--report-dir", help="folder for ood.json, ood.md and ROC plots (default RUN/ood)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_ood)
    s.add_argument("--methods", default="likelihood,typicality,complexity",
                   help="comma-separated: likelihood, likelihood-ratio, typicality, complexity")
    s.add_argument("--background", help="run dir of the background model for likelihood-ratio")
    s.add_argument("--data-dir")
    s.add_argument("--iw-samples", type=_count, default=None)
    s.add_argument("--max-examples", type=_count, default=1000)

    s = run_cmd("complete", "complete an image from its top rows (autoregressive models)", cmd_complete, "PNG path")
    s.add_argument("--image", required=True)
    s.add_argument("--rows", type=int, required=True, help="rows observed from the top")
    s.add_argument("-n", type=_count, default=8, help="completions drawn")
    s.add_argument("--labels", help="class label(s) for a conditional model")
    s.add_argument("--scale", type=_count, default=4)

    s = sub.add_parser("serve", help="the web explorer: a local page to sample, walk the latent space and score images")
    s.add_argument("run", nargs="+", help="run directories (or folders written by model.save); several: one tab each")
    s.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--device", default="cpu", help="torch device of the model (default cpu)")
    s.add_argument("--reference-examples", type=int, default=100,
                   help="held-out images of the run's data set an uploaded image is compared with (0: none)")
    s.add_argument("--verbose", action="store_true", help="Gradio's startup messages and request errors")
    s.set_defaults(func=cmd_serve)

    s = run_cmd("translate", "translate images between domains (cyclegan): inputs, translations, reconstructions",
                cmd_translate, "PNG path (default RUN/translation-<direction>.png)")
    s.add_argument("--direction", choices=["a2b", "b2a"], required=True, help="a2b applies G: A -> B, b2a applies F: B -> A")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--image", help="an image file to translate")
    src.add_argument("--data", help="a domain, <data set>[+invert|+rot90|+rot270|+flip] (default: the run's domain A for a2b, B for b2a)")
    s.add_argument("--data-dir")
    s.add_argument("--split", default="test")
    s.add_argument("-n", type=_count, default=8, help="images drawn from --data")
    s.add_argument("--scale", type=_count, default=3)

    s = run_cmd("report", "one self-contained HTML page about a run: config, curves, samples, latent views, eval",
                cmd_report, "HTML path (default RUN/report.html)")
    s.add_argument("--fast", action="store_true", help="skip the parts a probe call predicts take more than 5 s")
    s.add_argument("--device", default="cpu")

    s = sub.add_parser("models", help="list the models; with a name: its presets (values, source, published results)")
    s.add_argument("model", nargs="?", help="a registry name, e.g. pixelcnn: print its presets in full")
    s.set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list the named data sets").set_defaults(func=cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning  # the message alone, no source line
    try:
        args.func(args)
    except (GenlabError, ValueError, OSError) as e:  # OSError: a file system refusal genlab did not word itself
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
