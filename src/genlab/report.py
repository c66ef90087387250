"""``genlab report RUN``: one self-contained HTML page about a training run.

``RUN/report.html`` holds every picture inline (base64 ``data:`` URLs), one
style block and no script, so it opens offline and can be mailed or attached:
the config, the machine and the timings, the training curves, samples at the
end and over training (the Trainer's ``samples/step-*.png``), reconstructions,
a latent interpolation loop (GIF), traversals, the 2-D manifold when the latent
is 2-D, the 2-D point scatter over D's surface, audio for sequence models,
``eval.json`` and the OOD results (``ood/ood.json``, ROC curves) when present.

Each part is chosen from what the model can do (``Explorer.caps``), never from
its name. With ``fast=True`` (what ``genlab train`` writes at the end) a part that
would call the model is skipped when a one-item probe call predicts it takes more
than ``budget_s`` seconds (autoregressive sampling, for instance): the page says
so, and ``genlab report RUN`` draws it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from .errors import GenlabError

SAMPLES = 64  # images in the final sample grid
TIMELINE = 8  # training-time sample grids shown
RECONSTRUCTIONS = 16  # test images reconstructed
LOOP_POINTS = 4  # latent points visited by the interpolation loop
LOOP_STEPS = 12  # frames per leg of the loop
TRAVERSAL_DIMS = 8  # latent dimensions traversed
MANIFOLD_N = 15  # images per axis of the 2-D manifold
POINTS = 1000  # samples of a point model

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
img.px{image-rendering:pixelated}figure{display:inline-block;margin:.4em;vertical-align:top;text-align:center}
figcaption{font-size:.85em;color:#555}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;
padding:.2em .6em;text-align:left;font-size:.9em}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.85em}
.note{color:#777;font-style:italic}"""


class _Skip(Exception):
    """A part that cannot or should not be drawn; its message goes on the page."""


def _img(
    data: bytes, mime: str = "image/png", *, width: int | None = None, pixelated: bool = True, alt: str = ""
) -> str:
    style = f' style="width:{width}px"' if width else ""
    cls = ' class="px"' if pixelated else ""
    return (
        f'<img{cls}{style} alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}">'
    )


def _figure(inner: str, caption: str) -> str:
    return f"<figure>{inner}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _tensor_png(image: torch.Tensor) -> tuple[bytes, int]:
    """(C, H, W) in [0, 1] -> (PNG bytes, a display width: about 2-4x, at most 640 px)."""
    from .viz.images import to_pil

    img = to_pil(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue(), min(640, img.width * max(1, min(4, 320 // max(1, img.width) + 1)))


def _fig_png(fig) -> bytes:
    from .viz.plots import png_bytes

    return png_bytes(fig)


def _table(rows: list[tuple[str, str]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def _flatten(doc, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            rows += _flatten(v, f"{prefix}{k}.")
        return rows
    value = (
        f"{doc:.6g}" if isinstance(doc, float) else json.dumps(doc) if isinstance(doc, (list, type(None))) else str(doc)
    )
    return [(prefix.rstrip("."), value)]


def _markdown_table(text: str) -> str:
    """A markdown pipe table (as genlab.ood writes) -> HTML; other lines as paragraphs."""
    out, rows = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        if rows:
            head, body = rows[0], rows[1:]
            out.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            rows = []
        if line.strip():
            out.append(f"<p>{html.escape(line.strip('# '))}</p>")
    return "\n".join(out)


class Report:
    """Builds ``report.html`` for one run; see the module docstring."""

    def __init__(
        self, run: str | Path, *, fast: bool = False, budget_s: float = 5.0, seed: int = 0, device: str = "cpu"
    ):
        from .explore import Explorer

        self.run = Path(run)
        self.fast, self.budget_s, self.seed = fast, float(budget_s), int(seed)
        self.ex = Explorer.from_run(self.run, device=device, reference_examples=0)
        self.model, self.caps = self.ex.model, self.ex.caps
        self.card = self.ex.card()
        self.timings: list[tuple[str, float]] = []

    # ------------------------------------------------------------------ helpers
    def _probe(self, what: str, call: Callable[[], object], items: int) -> None:
        """In fast mode: time one-item ``call`` and skip the part when ``items`` of them
        would take longer than the budget."""
        if not self.fast:
            return
        t = time.perf_counter()
        with torch.inference_mode():
            call()
        estimate = (time.perf_counter() - t) * items
        if estimate > self.budget_s:
            raise _Skip(
                f"{what} skipped while training ended (about {estimate:.0f} s estimated); "
                f"genlab report {self.run} draws it"
            )

    def _g(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def _test_images(self, n: int) -> torch.Tensor:
        """n test images of the run's data set in [0, 1] (the first n)."""
        run = self.ex.run
        if run is None or not run.data_spec.get("name"):
            raise _Skip("the run names no data set")
        try:
            test = run.dataset("test", download=False)
        except (GenlabError, OSError, ValueError) as e:
            raise _Skip(f"the test images are not available here: {e}") from None
        return test.images[:n].float() / 255

    def _labels(self, n: int):
        k = self.caps["num_classes"]
        return torch.arange(n) % k if k else None

    # ------------------------------------------------------------------ parts
    def part_run(self) -> str:
        card, train = self.card, self.card.get("train") or {}
        metrics = card.get("metrics") or {}
        last = metrics.get("last") or {}
        rows = [
            ("model", f"{card['name']} ({card['class']}), {card['parameters']:,} parameters"),
            ("data", json.dumps(card.get("data"))),
            (
                "steps",
                "no metrics logged"
                if metrics.get("last_step") is None
                else f"{metrics['last_step']}" + (f" of {train['steps']}" if train.get("steps") else ""),
            ),
        ]
        if isinstance(last.get("time"), (int, float)):
            rows.append(("training time", f"{last['time']:.1f} s ({last['time'] / 60:.1f} min)"))
        if isinstance(last.get("images_per_s"), (int, float)):
            rows.append(("throughput at the end", f"{last['images_per_s']:.1f} images/s"))
        machine = [
            ("python", platform.python_version()),
            ("torch", torch.__version__),
            ("platform", platform.platform()),
            ("processor", platform.processor() or platform.machine()),
            ("CPU cores", str(os.cpu_count())),
            ("torch threads", str(torch.get_num_threads())),
        ]
        if hasattr(os, "getloadavg"):
            machine.append(("load average (1, 5, 15 min)", ", ".join(f"{v:.2f}" for v in os.getloadavg())))
        config = json.dumps({"model": card["config"], "train": card.get("train"), "data": card.get("data")}, indent=2)
        return (
            _table(rows)
            + "<h3>Machine writing this report</h3>"
            + _table(machine)
            + f"<details><summary>Config (config.json)</summary><pre>{html.escape(config)}</pre></details>"
        )

    def part_curves(self) -> str:
        from .viz.plots import loss_curves

        series = (self.card.get("metrics") or {}).get("series")
        if not series:
            raise _Skip("no metrics.jsonl")
        return _img(
            _fig_png(loss_curves(series, title=self.card["name"])), pixelated=False, width=900, alt="training curves"
        )

    def part_samples(self) -> str:
        kind = self.caps["kind"]
        if not self.caps["sample"]:
            raise _Skip("the model does not sample")
        if kind == "points":
            from .explore import views

            return _img(
                _fig_png(views.points_plot(self.ex, POINTS, self.seed)), pixelated=False, width=540, alt="points"
            )
        if kind == "sequence":
            from .explore import views

            self._probe("sampling audio", lambda: self.model.sample(1, generator=self._g(), labels=self._labels(1)), 1)
            (_, _), wave, raw = views.audio_samples(self.ex, 2, self.seed, None)
            buf = io.BytesIO()
            wave.save(buf, format="PNG")
            audio = f'<audio controls src="data:audio/wav;base64,{base64.b64encode(raw).decode("ascii")}"></audio>'
            return _figure(audio + "<br>" + _img(buf.getvalue(), pixelated=False, alt="waveforms"), "two clips, seed 0")
        last = self._timeline()[-1:] if self.fast else []
        final = (self.card.get("metrics") or {}).get("last_step") or (self.card.get("train") or {}).get("steps")
        if last and last[0][0] == final:
            return _figure(
                _img(last[0][1].read_bytes(), width=512, alt="samples"),
                f"{SAMPLES} samples at step {last[0][0]} (the Trainer's grid)",
            )
        from .explore import views

        self._probe("sampling", lambda: self.model.sample(1, generator=self._g(), labels=self._labels(1)), SAMPLES)
        grid, _, _ = views.sample_images(self.ex, SAMPLES, self.seed, None)
        data, width = _tensor_png(grid)
        caption = f"{SAMPLES} samples, seed {self.seed}" + (
            ", labels 0, 1, 2, ... row by row" if self.caps["num_classes"] else ""
        )
        return _figure(_img(data, width=max(width, 512), alt="samples"), caption)

    def _timeline(self) -> list[tuple[int, Path]]:
        files = sorted((self.run / "samples").glob("step-*.png"))
        out = []
        for f in files:
            try:
                out.append((int(f.stem.split("-")[1]), f))
            except (IndexError, ValueError):
                continue
        return sorted(out)

    def part_timeline(self) -> str:
        steps = self._timeline()
        if not steps:
            raise _Skip("no samples/step-*.png in the run (train.sample_every)")
        m = min(TIMELINE, len(steps))
        picks = sorted({round(i * (len(steps) - 1) / max(1, m - 1)) for i in range(m)})  # first, last, evenly between
        return "".join(
            _figure(_img(steps[i][1].read_bytes(), width=256, alt=f"step {steps[i][0]}"), f"step {steps[i][0]}")
            for i in picks
        )

    def part_reconstructions(self) -> str:
        from .viz.images import make_grid

        if not self.caps["reconstruct"]:
            raise _Skip("the model does not encode")
        x01 = self._test_images(RECONSTRUCTIONS)
        self._probe(
            "reconstructions",
            lambda: self.model.reconstruct(self.model.prepare(x01[:1], generator=self._g())),
            len(x01),
        )
        with torch.inference_mode():
            x = self.model.prepare(x01, generator=self._g()).to(self.model.device)
            rec = self.model.reconstruct(x).float().cpu().clamp(0, 1)
        pairs = torch.stack([x01, rec], 1).flatten(0, 1)
        data, width = _tensor_png(make_grid(pairs, nrow=8))
        return _figure(
            _img(data, width=max(width, 512), alt="reconstructions"),
            "test images (odd columns) and their reconstructions (even columns)",
        )

    def _decoder(self):
        if self.caps["num_classes"]:
            raise _Skip("class-conditional decoders are drawn in the explorer (genlab serve), where a label is chosen")
        return self.model

    def _codes(self, n: int) -> torch.Tensor:
        if "encode" in self.model.capabilities:
            try:
                x01 = self._test_images(n)
                with torch.inference_mode():
                    return (
                        self.model.encode(self.model.prepare(x01, generator=self._g()).to(self.model.device))
                        .float()
                        .cpu()
                    )
            except _Skip:
                pass
        return self.ex.prior(n, self.seed)

    def part_interpolation(self) -> str:
        from .viz import latent

        if not self.caps["latent"]:
            raise _Skip("no latent space to walk through")
        model = self._decoder()
        z = self._codes(LOOP_POINTS)
        self._probe("the interpolation loop", lambda: model.decode(z[:1].to(model.device)), LOOP_POINTS * LOOP_STEPS)
        frames = latent.loop_frames(model, z, steps_per_leg=LOOP_STEPS)
        with tempfile.TemporaryDirectory() as tmp:  # nothing but report.html is written into the run
            data = latent.save_interpolation_gif(frames, Path(tmp) / "loop.gif", scale=4).read_bytes()
        what = "encoded test images" if "encode" in self.model.capabilities else "prior draws"
        h = self.model.config.image_shape[-2]
        return _figure(
            _img(data, "image/gif", width=max(160, 4 * h), alt="interpolation loop"),
            f"slerp loop through {LOOP_POINTS} {what}",
        )

    def part_traversals(self) -> str:
        from .viz import latent

        if not (self.caps["latent"] and "encode" in self.model.capabilities):
            raise _Skip("traversals start from an encoded image")
        model = self._decoder()
        x01 = self._test_images(1)
        dims = min(TRAVERSAL_DIMS, self.caps["latent_dim"])
        self._probe("traversals", lambda: model.decode(self.ex.prior(1, 0).to(model.device)), dims * 9)
        grid = latent.traversal_grid(model, self.model.prepare(x01, generator=self._g()), dims=dims)
        data, width = _tensor_png(grid)
        return _figure(
            _img(data, width=max(width, 360), alt="traversals"),
            f"row k: z[k] from -3 to +3 around the code of one test image (first {dims} dimensions)",
        )

    def part_manifold(self) -> str:
        from .explore import views

        if not self.caps["manifold"] or self.caps["latent_dim"] != 2:
            raise _Skip("the latent is not 2-D")
        model = self._decoder()
        self._probe("the manifold", lambda: model.decode(torch.zeros(1, 2, device=model.device)), MANIFOLD_N**2)
        fig = views.manifold_plot(self.ex, MANIFOLD_N, (0, 1), None)
        return _img(_fig_png(fig), pixelated=False, width=520, alt="manifold")

    def part_eval(self) -> str:
        doc = self.card.get("eval")
        if not doc:
            raise _Skip("no eval.json (genlab eval RUN writes it)")
        return _table(_flatten(doc))

    def part_ood(self) -> str:
        path = self.run / "ood" / "ood.json"
        if not path.is_file():
            raise _Skip("no ood/ood.json (genlab ood RUN writes it)")
        doc = json.loads(path.read_text(errors="replace"))
        rocs = "".join(
            _figure(_img(p.read_bytes(), pixelated=False, width=420, alt=p.stem), p.stem)
            for p in sorted((self.run / "ood").glob("roc-*.png"))
        )
        return _markdown_table(doc.get("markdown") or "") + rocs

    PARTS = [
        ("Run, machine and timings", "part_run"),
        ("Training curves", "part_curves"),
        ("Samples", "part_samples"),
        ("Samples over training", "part_timeline"),
        ("Reconstructions", "part_reconstructions"),
        ("Interpolation", "part_interpolation"),
        ("Traversals", "part_traversals"),
        ("2-D manifold", "part_manifold"),
        ("Evaluation (eval.json)", "part_eval"),
        ("Out-of-distribution detection", "part_ood"),
    ]

    # ------------------------------------------------------------------ the page
    def html(self) -> str:
        sections = []
        torch.manual_seed(self.seed)
        for title, method in self.PARTS:
            t = time.perf_counter()
            try:
                body = getattr(self, method)()
            except _Skip as e:
                body = f'<p class="note">{html.escape(str(e))}</p>' if "skipped" in str(e) else None
            except (GenlabError, ValueError, TypeError, RuntimeError, NotImplementedError) as e:
                body = (
                    f'<p class="note">not drawn: {html.escape(type(e).__name__)}: '
                    f"{html.escape(str(e).splitlines()[0] if str(e) else '')}</p>"
                )
            self.timings.append((title, time.perf_counter() - t))
            if body is not None:
                sections.append(f"<h2>{html.escape(title)}</h2>\n{body}")
        total = sum(s for _, s in self.timings)
        timing = ", ".join(f"{t.lower()} {s:.2f} s" for t, s in self.timings if s >= 0.01)
        summary = html.escape(self.card.get("summary") or "")
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>genlab report: '
            f"{html.escape(self.run.name)}</title><style>{_STYLE}</style></head><body>\n"
            f"<h1>{html.escape(self.card['name'])}: {html.escape(self.run.name)}</h1><p>{summary}</p>\n"
            + "\n".join(sections)
            + f'\n<p class="note">Written {time.strftime("%Y-%m-%d %H:%M:%S")} in {total:.1f} s '
            f"({'fast mode, at the end of training' if self.fast else 'full'}): {html.escape(timing)}.</p>"
            "\n</body></html>\n"
        )


def write_report(
    run: str | Path,
    out: str | Path | None = None,
    *,
    fast: bool = False,
    budget_s: float = 5.0,
    seed: int = 0,
    device: str = "cpu",
) -> Path:
    """Write the report of ``run`` to ``out`` (default ``RUN/report.html``); returns its path."""
    from .io import atomic_write_bytes

    page = Report(run, fast=fast, budget_s=budget_s, seed=seed, device=device).html()
    path = Path(out) if out is not None else Path(run) / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


def after_training(run: str | Path) -> Path | None:
    """``genlab train`` / ``resume``: the fast report, its time on stderr; a failure only warns
    (the trained run is what matters, and ``genlab report RUN`` draws it again)."""
    import sys

    t = time.perf_counter()
    try:
        path = write_report(run, fast=True)
    except Exception as e:  # noqa: BLE001
        print(
            f"genlab: the report was not written ({type(e).__name__}: {e}); genlab report {run} retries",
            file=sys.stderr,
        )
        return None
    print(f"report: {path} ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    return path


__all__ = ["Report", "after_training", "write_report"]
