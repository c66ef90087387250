"""The ``genlab`` subcommands: each maps its parsed flags onto one call into the
library (the parser and the error handling are in :mod:`genlab.cli`).

Every command that takes a run folder also takes ``pretrained:NAME``: the model is read
from the package and what the command writes goes to ``./pretrained-NAME/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import ConfigError, GenlabError


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _out_path(args, out_dir: Path, default_name: str, *also: str) -> Path:
    """Where a command writes: ``--out``, else ``out_dir/default_name``. An ``--out`` without an
    extension takes default_name's; one the command cannot write (default_name's kind: a picture
    is .png, .jpg or .jpeg; or ``also``) is refused before anything is computed."""
    from .viz.images import PICTURE_FORMATS

    if not args.out:
        return out_dir / default_name
    path, ext = Path(args.out), Path(default_name).suffix
    if not path.suffix:
        return path.with_name(path.name + ext)
    allowed = [*(PICTURE_FORMATS if ext in PICTURE_FORMATS else [ext]), *also]
    if path.suffix.lower() not in allowed:
        raise GenlabError(
            f"--out {path}: genlab {args.command} writes {', '.join(allowed)} files; end the name with one of these"
        )
    return path


def _write_png(args, path: Path, image) -> None:
    """Save ``image`` (an image or a batch, in [0, 1]) at ``path`` (:func:`_out_path`), scaled by ``--scale``;
    print where."""
    from .viz.images import save_png

    save_png(image, path, scale=args.scale)
    print(path)


def _open(run: str):
    """The :class:`genlab.Run` a run argument names (a folder or ``pretrained:NAME``)."""
    from .run import Run

    return Run(run)


def _require(model, capability: str, lacking: str) -> None:
    """A one-line GenlabError "<Model> <lacking>" unless ``capability`` is in ``model.capabilities``."""
    if capability not in model.capabilities:
        raise GenlabError(f"{type(model).__name__} {lacking}")


def _device(name: str) -> str:
    """``--device`` checked before anything starts: a torch device this machine has (auto: the best one)."""
    from .train.settings import resolve_device

    return str(resolve_device(name, setting="--device"))


# ----------------------------------------------------------------------------- commands


def cmd_train(args) -> None:
    from .train import train

    sets = list(args.set or [])  # the model's defaults and presets come first (genlab.registry.build_run_config)
    flags = {}
    for key, flag, value in (
        ("data.data_dir", "--data-dir", json.dumps(str(args.data_dir)) if args.data_dir else None),
        ("train.steps", "--steps", args.steps),
        ("train.seed", "--seed", args.seed),
    ):
        if value is not None:
            sets.append(f"{key}={value}")
            flags[key] = flag
    if args.print_config:
        from .registry import describe_run_config, resolve_run_config

        print(describe_run_config(*resolve_run_config(args.model, args.data, args.preset, sets, flags)))
        return
    run = train(args.model, out_dir=args.out, data=args.data, preset=args.preset, overrides=sets)
    _report_after_training(run, args)
    print(run)


def cmd_resume(args) -> None:
    from . import pretrained
    from .train import resume
    from .train.checkpoint import list_checkpoints

    if pretrained.is_pretrained(args.run):
        raise GenlabError(
            f"{args.run} is a model shipped with genlab, not a training run: it has no checkpoints to resume; "
            "train your own with genlab train"
        )
    checkpoints = list_checkpoints(Path(args.run) / "checkpoints")
    run = resume(Path(args.run), steps=args.steps, max_seconds=args.max_seconds)
    if (
        list_checkpoints(run / "checkpoints") != checkpoints
    ):  # it trained; with nothing to do the folder stays as it was
        _report_after_training(run, args)
    print(run)


def _report_after_training(run: Path, args) -> None:
    if not args.no_report:
        from .report import after_training

        after_training(run)


def cmd_report(args) -> None:
    from .report import write_report

    run = _open(args.run)
    print(
        write_report(
            run.path,
            _out_path(args, run.output_dir, "report.html"),
            fast=args.fast,
            seed=args.seed,
            device=_device(args.device),
        )
    )


def cmd_sample(args) -> None:
    import math

    from .viz.images import PICTURE_FORMATS
    from .viz.samples import check_picture, default_count, images_per_sample, render_samples

    run = _open(args.run)
    model = run.model
    _require(model, "sample", "does not sample")
    if model.data_kind == "sequence":  # a WAV file, its waveforms beside it as .png; or the picture alone
        path = _out_path(args, run.output_dir, "samples.wav", *PICTURE_FORMATS)
    else:
        path = _out_path(args, run.output_dir, "samples.png")
    n = default_count(model) if args.n is None else args.n
    if model.data_kind == "image":  # -n counts images: a translator's sample is an (A, B) pair of them
        n = math.ceil(n / images_per_sample(model))
    check_picture(model, n, args.scale)
    shown = render_samples(
        model, n, generator=_generator(args.seed), labels=run.labels(args.labels, n), real=run.data_spec.get("name")
    )
    print(shown.save(path, scale=args.scale, rate=args.rate))


def cmd_interpolate(args) -> None:
    import torch

    from .viz import latent

    run = _open(args.run)
    model = run.model
    path = _out_path(args, run.output_dir, "interpolation.gif")
    g = _generator(args.seed)
    if model.data_kind == "image":  # refuse an oversized GIF before its frames are decoded
        from .viz.images import check_pixels

        _, h, w = model.config.image_shape
        check_pixels(h * args.scale, w * args.scale, args.points * args.frames)
    if "encode" in model.capabilities:  # latent-variable model: walk between encoded test images
        _, x = run.test_images(args.points, g, args.data, args.data_dir)
        with torch.inference_mode():
            z = model.encode(x.to(model.device)).float().cpu()  # VAE: the posterior mean; ALI: E(x)
        frames = latent.loop_frames(model, z, steps_per_leg=args.frames, method=args.method)
        latent.save_interpolation_gif(frames, path, scale=args.scale)
    elif "latent" in model.capabilities:  # GAN: walk between random codes
        from .viz.gan import gan_walk_gif

        gan_walk_gif(
            model,
            path,
            points=args.points,
            steps=args.frames,
            method=args.method,
            generator=g,
            labels=run.labels(args.labels, 1),
            scale=args.scale,
        )
    else:
        raise GenlabError(f"{type(model).__name__} has no latent space to walk through")
    print(path)


def cmd_manifold(args) -> None:
    from .viz import latent

    run = _open(args.run)
    path = _out_path(args, run.output_dir, "manifold.png")
    model = run.model
    _require(model, "decode", "has no latent space: the manifold figure decodes a grid of latent codes")
    if model.data_kind != "image":
        raise GenlabError(
            f"{type(model).__name__} makes {model.data_kind}, not images: the manifold figure is a grid of images"
        )
    image = latent.manifold_grid(model, n=args.n, dims=tuple(args.dims))
    _write_png(args, path, image)


def cmd_reconstruct(args) -> None:
    import torch

    from .viz.images import make_grid

    run = _open(args.run)
    path = _out_path(args, run.output_dir, "reconstructions.png")
    model = run.model
    _require(model, "reconstruct", "has no encoder to reconstruct with")
    x01, x = run.test_images(args.n, _generator(args.seed), args.data, args.data_dir)
    rec = model.reconstruct(x.to(model.device)).float().cpu()
    pairs = torch.stack([x01, rec], 1).flatten(0, 1)  # originals and reconstructions side by side
    _write_png(args, path, make_grid(pairs, nrow=2 * max(1, int(args.n**0.5))))


def cmd_traverse(args) -> None:
    from .viz import latent

    run = _open(args.run)
    path = _out_path(args, run.output_dir, "traversal.png")
    model = run.model
    _require(model, "reconstruct", "has no encoder: a traversal varies the latent code of an encoded test image")
    _, x = run.test_images(1, _generator(args.seed), args.data, args.data_dir)
    image = latent.traversal_grid(model, x, dims=args.dims, span=args.span, steps=args.steps)
    _write_png(args, path, image)


def cmd_eval(args) -> None:
    from .metrics.quality import check_measurable, evaluate, write_report

    run = _open(args.run)
    model = run.model
    check_measurable(model, args.samples)
    ds = run.dataset(args.split, args.data, args.data_dir)
    result = evaluate(
        model,
        ds,
        n_samples=args.samples,
        iw_samples=args.iw_samples,
        max_examples=args.max_examples,
        batch_size=args.batch_size,
        seed=args.seed,
        split=args.split,
        feature_net=args.feature_net,
    )
    write_report(result, Path(args.out) if args.out else run.output_dir)
    print(json.dumps(result, indent=2))


def cmd_ood(args) -> None:
    from . import ood

    run = _open(args.run)
    model = run.model
    _require(
        model,
        "log_prob",
        "has no likelihood: every outlier score needs log p(x); use a likelihood model (genlab models)",
    )
    data_dir = args.data_dir or run.data_spec.get("data_dir")
    test = run.dataset("test", args.in_data, data_dir)
    if args.max_examples:
        test = test.subset(range(min(args.max_examples, len(test))))
    outs = {spec: ood.outlier_set(spec, test, n=len(test), data_dir=data_dir, seed=args.seed) for spec in args.out_sets}
    background = _open(args.background).model if args.background else None
    methods = [m for m in args.methods.split(",") if m]
    if "likelihood-ratio" in methods and background is None:
        raise GenlabError(
            "the likelihood-ratio method needs --background RUN (a model trained on perturbed inputs, "
            "see genlab.ood.train_background)"
        )
    train = run.dataset("train", args.in_data, data_dir) if "typicality" in methods else None
    result = ood.evaluate_ood(
        model,
        test,
        outs,
        methods,
        background=background,
        train_data=train,
        iw_samples=args.iw_samples,
        seed=args.seed,
        out_dir=Path(args.report_dir) if args.report_dir else run.output_dir / "ood",
    )
    print(json.dumps(result, indent=2))


def cmd_complete(args) -> None:
    import torch

    from .viz.images import load_image

    run = _open(args.run)
    path = _out_path(args, run.output_dir, "completion.png")
    model = run.model
    _require(
        model, "complete", "does not complete images: only autoregressive models draw the missing rows (genlab models)"
    )
    c, h, w = model.config.image_shape
    if not 0 < args.rows < h:
        raise GenlabError(f"--rows must be between 1 and {h - 1} for {h}-row images, got {args.rows}")
    x01 = load_image(args.image, channels=c, size=(h, w)).unsqueeze(0).expand(args.n, -1, -1, -1)
    mask = torch.zeros(h, w)
    mask[: args.rows] = 1  # observed: the top rows; the rest is sampled in raster order
    completed = model.complete(
        x01.contiguous(), mask, generator=_generator(args.seed), labels=run.labels(args.labels, args.n)
    )
    _write_png(args, path, torch.cat([x01[:1], completed.float()]))


def cmd_serve(args) -> None:
    from . import pretrained
    from .loading import resolve_run

    device = _device(args.device)  # before the server starts
    runs = args.run or [pretrained.PREFIX + name for name in pretrained.names()]  # none given: the model picker
    if not runs:
        raise GenlabError("name a run folder: this installation ships no pretrained models")
    from .app import serve

    serve(
        [resolve_run(r) for r in runs],
        host=args.host,
        port=args.port,
        device=device,
        reference_examples=args.reference_examples,
        verbose=args.verbose,
        data_dir=args.data_dir,
    )


def cmd_translate(args) -> None:
    from .viz.translation import translation_grid, translation_inputs

    run = _open(args.run)
    path = _out_path(args, run.output_dir, f"translation-{args.direction}.png")
    model = run.model
    _require(model, "translate", "does not translate between domains; train cyclegan")
    x01 = translation_inputs(
        model,
        args.direction,
        image=args.image,
        domain=args.data,
        run_data=run.data_spec.get("name"),
        split=args.split,
        data_dir=args.data_dir or run.data_spec.get("data_dir"),
        n=args.n,
        generator=_generator(args.seed),
    )
    _write_png(args, path, translation_grid(model, x01, args.direction))


def cmd_models(args) -> None:
    from . import pretrained, registry
    from .presets import describe

    if args.model:
        shipped = args.model.removeprefix(pretrained.PREFIX)
        if args.model not in registry.MODELS and shipped in pretrained.names():
            return print(describe_card(pretrained.card(shipped)))
        if args.model not in registry.MODELS:
            raise ConfigError(
                f"unknown model {args.model!r}; registry models: {', '.join(sorted(registry.MODELS))}; "
                f"shipped models: {', '.join(pretrained.names()) or 'none'}"
            )
        return print(describe(registry.entry(args.model).presets) or f"{args.model} has no presets")
    for name in registry.MODELS:
        e = registry.entry(name)
        doc = sys.modules[e.model_class.__module__].__doc__ or ""
        first = " ".join(doc.strip().split("\n\n")[0].split())  # the module docstring's first paragraph
        print(f"{name:16s} {first[:100] + ('...' if len(first) > 100 else '')}")
        presets = [p + (f" (used with {', '.join(e.presets[p].data)})" if e.presets[p].data else "") for p in e.presets]
        print(f"{'':16s} data: {e.default_data}" + (f"; presets: {', '.join(presets)}" if presets else ""))
    shipped = pretrained.names()
    if shipped:
        print("\npretrained (use as pretrained:NAME wherever a run folder goes; measured on the test split):")
        for name in shipped:
            card = pretrained.card(name)
            minutes = card["training"].get("cpu_minutes")
            print(
                f"{name:22s} {card['data']['name']:28s} {card['headline']}"
                + (f"; {minutes:.0f} CPU-min" if minutes else "")
            )
            for line in verdicts(card):
                print(f"{'':22s} {line}")


def describe_card(card: dict) -> str:
    """A shipped model's card as text: what it is, how it was trained, what it measures, the judge's verdicts."""
    t = card["training"]
    how = f"preset {t['preset']}" if t.get("preset") else "the registry defaults"
    lines = [
        f"{card['name']}: {card['about']}",
        f"  model {card['model']} on {card['data']['name']}; {card['parameters']:,} parameters",
        f"  trained: {t['cpu_minutes']} CPU-minutes, {t['steps']:,} steps of {t['batch_size']}, seed {t['seed']}, "
        f"{how}" + (f", with {' '.join(t['overrides'])}" if t.get("overrides") else ""),
        f"  on: {card['machine']['cpu']}, {card.get('date', '')}",
        f"  measured on the test split: {card['headline']}",
    ]
    short = [f"  falls short: {card['falls_short']}"] if card.get("falls_short") else []
    return "\n".join(lines + [f"  {line}" for line in verdicts(card)] + short)


def verdicts(card: dict) -> list[str]:
    """One line per check of scripts/check_pretrained.py's independent judge in ``card["judged"]``."""
    out = []
    for check in card.get("judged", {}).get("checks", []):
        verdict = {True: "meets", False: "misses", None: "-"}[check["pass"]]
        out.append(f"judged ({check['check']}): {check['numbers']} [{verdict} {check['target']}]")
    return out


def cmd_datasets(args) -> None:
    from . import data

    for name, desc in data.DATASETS.items():
        print(f"{name:16s} {desc}")
