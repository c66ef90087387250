"""The explorer's page on Gradio: one tab per served run (the model picker), and
in each the views that run's model can answer, chosen from
``Explorer.caps`` (what the model's methods provide), never from its name.

Every event of one model shares one Gradio concurrency group with one worker
(``concurrency_id="model-<i>"``, ``concurrency_limit=1``): one model computes
one request at a time and the queue keeps the others, while another model's
events run beside it. Slow views (sampling, completion) show progress and have
a Cancel button that stops the model call (see :class:`views.Watch`). A failed
request clears its view's outputs and says why in one line.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
from pathlib import Path

from PIL import Image
from torch import Tensor

from ..errors import GenlabError
from ..explore import views
from ..explore.explorer import MAX_FRAMES, MAX_IW_SAMPLES, MAX_MANIFOLD, MAX_POINTS, MAX_SAMPLES, Explorer, RequestError
from ..viz import plots
from ..viz.images import to_pil
from ..viz.samples import domain_shape
from . import uploads

MAX_SLIDERS = 10  # latent dimensions (of the flattened code) given a slider
SLIDER_RANGE = 3.0  # each slider covers [-3, 3]
SKETCH_SIZE = 224  # pixels a side of the drawing canvas


def _fail(error: Exception) -> str:
    if isinstance(error, views.Cancelled):
        return "Cancelled."
    if isinstance(error, (GenlabError, ValueError)):
        return f"**Error:** {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return f"**Error:** {type(error).__name__} while computing this view (see the server log)"


def _int_or_none(value) -> int | None:
    """A class label from the page's dropdown (None: there is none)."""
    return None if value is None else int(value)


def card_markdown(card: dict) -> str:
    """The model card's text part: name, paper line, run, size, what the page offers."""
    caps = card["capabilities"]
    offers = [
        name
        for name, on in (
            ("samples", caps["sample"]),
            ("latent space", caps["latent"]),
            ("manifold", caps["manifold"]),
            ("reconstruction", caps["reconstruct"]),
            ("log-likelihood", caps["log_prob"]),
            ("translation", caps["translate"]),
        )
        if on
    ]
    metrics = card.get("metrics") or {}
    lines = [
        f"### {card['name']} ({card['class']})",
        card["summary"],
        "",
        f"- run: `{card['run']}`" if card["run"] else "- a saved model (no run directory)",
        f"- parameters: {card['parameters']:,}",
        f"- data: {caps['kind']} {tuple(card['config'].get('image_shape', ()))}"
        + (f", {caps['num_classes']} classes" if caps["num_classes"] else ""),
        f"- views: {', '.join(offers) or 'none'}",
    ]
    if metrics:
        lines.append(f"- trained {metrics['last_step']} steps ({metrics['records']} log records)")
    shipped = card.get("model_card") or {}
    if shipped.get("headline"):
        lines.append(f"- measured (card.json): **{shipped['headline']}**")
    return "\n".join(lines)


class Page:
    """Builds the Gradio Blocks for some Explorers: ``Page(explorers).blocks``; ``files``: the
    folder for its example images (removed by :meth:`close`)."""

    def __init__(self, explorers: dict[str, Explorer], files: Path | None = None):
        import gradio as gr

        self.gr = gr
        self.explorers = explorers
        self.files = Path(files or tempfile.mkdtemp(prefix="genlab-serve-"))
        self.cancel: dict[str, threading.Event] = {}
        self._loads: list = []  # views filled in when the page opens
        with gr.Blocks(title="genlab explorer", analytics_enabled=False) as self.blocks:
            gr.Markdown("## genlab explorer")
            with gr.Tabs():
                for i, (name, explorer) in enumerate(explorers.items()):
                    with gr.Tab(name, id=f"model-{i}"):
                        self._model(i, name, explorer)
            for fn, inputs, outputs, i in self._loads:
                self._on(self.blocks.load, fn, inputs, outputs, i)

    def close(self) -> None:
        """Stop the server and remove the example images (the cache goes with the process's folder at exit)."""
        self.blocks.close()
        shutil.rmtree(self.files, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _on(self, trigger, fn, inputs, outputs, i: int, name: str | None = None, **kw):
        """An event of model ``i`` in its one-worker concurrency group; a named one is also
        callable over HTTP as ``/m<i>_<name>`` (gradio_client; not listed in the API page)."""
        api = {"api_name": f"m{i}_{name}", "api_visibility": "undocumented"} if name else {"api_visibility": "private"}
        return trigger(
            fn, inputs=inputs, outputs=outputs, concurrency_id=f"model-{i}", concurrency_limit=1, **api, **kw
        )

    def _watch(self, i: int, view: str, progress, *key, doing: str = "sampling") -> "views.Watch":
        """Progress and cancel for one slow view of model i (``key``: what identifies the job): the
        Cancel button, Gradio's cancel over the API, or the page going away (tab closed)."""

        def report(done, total):
            progress((done, total), desc="network calls" if total is None else doing, unit="calls")

        return views.Watch((i, view, *key), self.cancel[f"{i}/{view}"], report, gone=self._event_gone())

    def _event_gone(self):
        """For a view running in Gradio's queue, a test of whether Gradio has given its event up: the
        client disconnected (the queue marks the event dead) or cancelled it (the event left the
        running jobs). Gradio runs the view's thread on regardless; None outside an event."""
        from gradio.context import LocalContext

        event_id, queue = LocalContext.event_id.get(None), self.blocks._queue
        if event_id is None:
            return None
        return lambda: not any(e._id == event_id and e.alive for job in queue.active_jobs if job for e in job)

    def _cancel_button(self, i: int, key: str, event):
        gr = self.gr
        flag = self.cancel.setdefault(f"{i}/{key}", threading.Event())
        button = gr.Button("Cancel", variant="stop", size="sm")
        button.click(flag.set, None, None, cancels=[event], queue=False, api_visibility="private")
        return flag

    # ------------------------------------------------------------------ one model
    def _model(self, i: int, name: str, ex: Explorer) -> None:
        gr = self.gr
        caps = ex.caps
        card = ex.card()
        with gr.Tab("Model card"):
            gr.Markdown(card_markdown(card))
            series = (card.get("metrics") or {}).get("series") or {}
            if series:
                gr.Plot(plots.loss_curves(series, title=name), label="training curves", elem_id=f"m{i}-curves")
            with gr.Row():
                gr.JSON(
                    {"model": card["config"], "data": card["data"], "train": card["train"]}, label="config", open=True
                )
                if card.get("eval"):
                    gr.JSON(card["eval"], label="eval.json", open=True)
                measured = {k: v for k, v in (card.get("model_card") or {}).items() if k in ("measured", "judged")}
                if measured:
                    gr.JSON(
                        measured, label="card.json: what was measured (and judged)", open=True, elem_id=f"m{i}-measured"
                    )
        examples = views.example_images(ex, self.files / f"model-{i}" / "examples")
        if caps["sample"] and caps["kind"] == "image":
            self._samples(i, ex)
        if caps["sample"] and caps["kind"] == "points":
            self._plot_view(
                i,
                "points",
                "Samples",
                (100, MAX_POINTS, 1000, 100),
                "points",
                "Draw points",
                "generated points over the data and D's surface",
                lambda n, s: views.points_plot(ex, n, s),
            )
        if caps["sample"] and caps["kind"] == "sequence":
            self._audio(i, ex)
        if caps["latent"]:
            self._latent(i, ex)
        if caps["analyze"]:
            self._analyze(i, ex, examples)
        if views.can_complete(ex):
            self._complete(i, ex, examples)
        if caps["translate"]:
            self._translate(i, ex, examples)
        if "encode" in ex.model.capabilities and examples:  # the test images are here
            self._plot_view(
                i,
                "projection",
                "Projection",
                (50, views.MAX_PROJECTION, 500, 50),
                "test images",
                "Encode and project (PCA)",
                "codes of test images, first two principal components",
                lambda n, s: views.projection_plot(ex, n, s),
            )

    def _label_input(self, ex: Explorer, multiple: bool, elem_id: str | None = None):
        k = ex.caps["num_classes"]
        if not k:
            return None
        if multiple:
            return self.gr.Textbox(
                label=f"labels (0..{k - 1}, comma-separated; empty: 0, 1, 2, ...)", value="", elem_id=elem_id
            )
        return self.gr.Dropdown(choices=list(range(k)), value=0, label="class label")

    def _samples(self, i: int, ex: Explorer) -> None:
        gr = self.gr
        with gr.Tab("Samples"):
            with gr.Row():
                n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="samples", elem_id=f"m{i}-samples-n")
                seed = gr.Number(0, label="seed", precision=0, minimum=0)
                labels = self._label_input(ex, True, f"m{i}-samples-labels")
            go = gr.Button("Draw samples", variant="primary")
            status = gr.Markdown(elem_id=f"m{i}-samples-status")
            gallery = gr.Gallery(
                elem_id=f"m{i}-samples-gallery",
                label="samples (caption: index, class label)",
                columns=8,
                height="auto",
                object_fit="contain",
                format="png",
                buttons=["download", "fullscreen"],
            )
            grid = gr.Image(
                label="the grid",
                elem_id=f"m{i}-samples-grid",
                format="png",
                type="pil",
                buttons=["download"],
                interactive=False,
            )

            def draw(n, seed, labels_text="", progress=gr.Progress()):
                try:
                    lab = views.parse_labels(labels_text, ex.caps["num_classes"])
                    watch = self._watch(i, "samples", progress, int(n))
                    g, images, captions = views.sample_images(ex, int(n), int(seed or 0), lab, watch)
                except Exception as e:  # noqa: BLE001 - every failure becomes a message on the page
                    return [], None, _fail(e)
                scale = views.display_scale(images[0].shape[-2])
                pics = [(to_pil(x, scale), cap) for x, cap in zip(images, captions)]
                grid_img = to_pil(g, views.display_scale(images[0].shape[-2], 64))
                return pics, grid_img, f"{len(images)} images, seed {int(seed or 0)}"

            inputs = [n, seed] + ([labels] if labels is not None else [])
            event = self._on(go.click, draw, inputs, [gallery, grid, status], i, "samples")
            self._cancel_button(i, "samples", event)

    def _plot_view(
        self,
        i: int,
        name: str,
        tab: str,
        n: tuple[int, int, int, int],
        n_label: str,
        button: str,
        plot_label: str,
        compute,
    ) -> None:
        """A tab of one figure from (n, seed): ``compute(n, seed)`` -> a matplotlib figure."""
        gr = self.gr
        with gr.Tab(tab):
            with gr.Row():
                count = gr.Slider(n[0], n[1], value=n[2], step=n[3], label=n_label)
                seed = gr.Number(0, label="seed", precision=0, minimum=0)
            go = gr.Button(button, variant="primary")
            status = gr.Markdown(elem_id=f"m{i}-{name}-status")
            plot = gr.Plot(label=plot_label, elem_id=f"m{i}-{name}")

            def draw(n, seed):
                try:
                    return compute(int(n), int(seed or 0)), ""
                except Exception as e:  # noqa: BLE001
                    return None, _fail(e)

            self._on(go.click, draw, [count, seed], [plot, status], i, name)

    def _audio(self, i: int, ex: Explorer) -> None:
        gr = self.gr
        with gr.Tab("Audio"):
            with gr.Row():
                n = gr.Slider(1, 8, value=2, step=1, label="clips")
                seed = gr.Number(0, label="seed", precision=0, minimum=0)
                labels = self._label_input(ex, True)
            go = gr.Button("Generate", variant="primary")
            status = gr.Markdown(elem_id=f"m{i}-audio-status")
            player = gr.Audio(
                elem_id=f"m{i}-audio",
                label=f"samples ({views.AUDIO_RATE} Hz, clips one after another)",
                type="numpy",
                interactive=False,
                buttons=["download"],
            )
            wave = gr.Image(
                elem_id=f"m{i}-waveform",
                label="waveforms (one row per clip)",
                format="png",
                type="pil",
                interactive=False,
            )

            def draw(n, seed, labels_text="", progress=gr.Progress()):
                try:
                    lab = views.parse_labels(labels_text, ex.caps["num_classes"])
                    watch = self._watch(i, "audio", progress, int(n))
                    audio, picture, _ = views.audio_samples(ex, int(n), int(seed or 0), lab, watch)
                except Exception as e:  # noqa: BLE001
                    return None, None, _fail(e)
                return audio, picture, ""

            inputs = [n, seed] + ([labels] if labels is not None else [])
            event = self._on(go.click, draw, inputs, [player, wave, status], i, "audio")
            self._cancel_button(i, "audio", event)

    def _latent(self, i: int, ex: Explorer) -> None:
        gr = self.gr
        d = ex.caps["latent_dim"]
        with gr.Tab("Latent space"):
            with gr.Row():
                seed = gr.Number(0, label="seed (the starting code z ~ prior)", precision=0, minimum=0)
                label = self._label_input(ex, False)
            with gr.Row():
                with gr.Column():
                    sliders = [
                        gr.Slider(
                            -SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.05, label=f"z[{k}]", elem_id=f"m{i}-z{k}"
                        )
                        for k in range(min(d, MAX_SLIDERS))
                    ]
                    shape = ex.caps["latent_shape"]
                    flat = f" (z is the flattened code of shape {tuple(shape)})" if len(shape) > 1 else ""
                    if d > MAX_SLIDERS:
                        gr.Markdown(f"z[{MAX_SLIDERS}..{d - 1}] stay at the seed's prior draw{flat}.")
                with gr.Column():
                    decoded = gr.Image(
                        elem_id=f"m{i}-latent-image",
                        label="decode(z)",
                        format="png",
                        type="pil",
                        interactive=False,
                        height=224,
                    )
                    status = gr.Markdown(elem_id=f"m{i}-latent-status")
            extra = [label] if label is not None else []
            scale = views.display_scale(ex.model.config.image_shape[-2], 224)

            def from_seed(seed, label=None):
                try:
                    image, z = ex.latent(int(seed or 0), label=_int_or_none(label))
                except Exception as e:  # noqa: BLE001
                    return [gr.Slider()] * len(sliders) + [None, _fail(e)]
                vals = [max(-SLIDER_RANGE, min(SLIDER_RANGE, v)) for v in z[: len(sliders)].tolist()]
                return [gr.Slider(value=v) for v in vals] + [to_pil(image, scale), ""]

            def move(seed, *args):
                label = args[len(sliders)] if extra else None
                try:
                    image, _ = ex.latent(
                        int(seed or 0), values=[float(v) for v in args[: len(sliders)]], label=_int_or_none(label)
                    )
                except Exception as e:  # noqa: BLE001
                    return None, _fail(e)
                return to_pil(image, scale), ""

            self._loads.append((from_seed, [seed] + extra, sliders + [decoded, status], i))
            for trigger in [seed.change] + ([label.change] if label is not None else []):
                self._on(trigger, from_seed, [seed] + extra, sliders + [decoded, status], i, trigger_mode="always_last")
            self._on(
                functools.partial(gr.on, [s.input for s in sliders]),
                move,
                [seed] + sliders + extra,
                [decoded, status],
                i,
                "latent",
                trigger_mode="always_last",
            )

            gr.Markdown("#### Interpolation between the prior draws of two seeds")
            with gr.Row():
                seed_a = gr.Number(0, label="seed A", precision=0, minimum=0)
                seed_b = gr.Number(1, label="seed B", precision=0, minimum=0)
                steps = gr.Slider(2, MAX_FRAMES, value=10, step=1, label="steps")
                method = gr.Radio(["slerp", "lerp"], value="slerp", label="path")
            go = gr.Button("Interpolate", variant="primary")
            strip = gr.Image(
                elem_id=f"m{i}-strip", label="A -> B", format="png", type="pil", interactive=False, buttons=["download"]
            )
            strip_status = gr.Markdown(elem_id=f"m{i}-strip-status")

            def interpolate(a, b, steps, method, label=None):
                try:
                    strip = ex.interpolate(int(a or 0), int(b or 0), int(steps), method, _int_or_none(label))
                except Exception as e:  # noqa: BLE001
                    return None, _fail(e)
                return to_pil(strip, views.display_scale(ex.model.config.image_shape[-2], 64)), ""

            self._on(
                go.click, interpolate, [seed_a, seed_b, steps, method] + extra, [strip, strip_status], i, "interpolate"
            )
            if ex.caps["manifold"]:
                gr.Markdown("#### The 2-D manifold (other dimensions at 0)")
                with gr.Row():
                    n = gr.Slider(2, MAX_MANIFOLD, value=15, step=1, label="images per axis")
                    dim_x = gr.Dropdown(list(range(d)), value=0, label="horizontal: z index")
                    dim_y = gr.Dropdown(list(range(d)), value=1, label="vertical: z index")
                go_m = gr.Button("Draw the manifold", variant="primary")
                plot = gr.Plot(label="manifold", elem_id=f"m{i}-manifold")
                m_status = gr.Markdown(elem_id=f"m{i}-manifold-status")

                def manifold(n, dx, dy, label=None):
                    try:
                        return views.manifold_plot(ex, int(n), (int(dx), int(dy)), _int_or_none(label)), ""
                    except Exception as e:  # noqa: BLE001
                        return None, _fail(e)

                self._on(go_m.click, manifold, [n, dim_x, dim_y] + extra, [plot, m_status], i, "manifold")

    def _image_source(self, examples: list[str], elem_id: str):
        """Upload (drag and drop, paste) or sketch an image; returns (upload, sketch, source)."""
        gr = self.gr
        with gr.Tabs():
            with gr.Tab("Upload"):
                upload = gr.Image(
                    label="drop an image here",
                    type="filepath",
                    image_mode=None,
                    elem_id=elem_id,
                    sources=["upload", "clipboard"],
                    height=224,
                )
                if examples:
                    gr.Examples(examples, inputs=[upload], label="examples: test images (click one)")
            with gr.Tab("Draw"):
                black = Image.new("RGBA", (SKETCH_SIZE, SKETCH_SIZE), (0, 0, 0, 255))
                sketch = gr.Sketchpad(
                    value={"background": black, "layers": [], "composite": None},
                    type="pil",
                    image_mode="RGBA",
                    canvas_size=(SKETCH_SIZE, SKETCH_SIZE),
                    height=300,
                    brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed", default_size=14),
                    label="draw (white on black)",
                )
        source = gr.Radio(["upload", "drawing"], value="upload", label="use")
        return upload, sketch, source

    def _cleared_by(self, upload, answer: list) -> None:
        """A new upload (or clearing it) clears the view's last answer and message."""
        self.gr.on(
            [upload.upload, upload.clear],
            lambda: [None] * len(answer),
            None,
            answer,
            queue=False,
            api_visibility="private",
        )

    @staticmethod
    def _image(upload, sketch, source, shape) -> Tensor:
        """The image a view was given, fitted to ``shape`` (C, H, W), from the raw upload and
        sketch payloads: the image views skip Gradio's preprocessing (``preprocess=False``),
        which opens an upload with Pillow and fails on a file that is not an image with a bare
        "Error"; genlab's reader, :func:`uploads.read_upload`, says what is wrong in one sentence."""
        if source == "drawing":
            composite = (sketch or {}).get("composite")
            if composite is None:
                raise RequestError("draw something first")
            img = uploads.read_upload(composite["path"], background=0)
        else:
            img = uploads.read_upload(upload and upload["path"])
        return uploads.image_tensor(img, shape, fit=True)

    def _analyze(self, i: int, ex: Explorer, examples: list[str]) -> None:
        gr = self.gr
        caps = ex.caps
        with gr.Tab("Your image"):
            upload, sketch, source = self._image_source(examples, f"m{i}-analyze-upload")
            with gr.Row():
                seed = gr.Number(0, label="seed (binarisation, importance samples)", precision=0, minimum=0)
                k = gr.Slider(
                    1,
                    MAX_IW_SAMPLES,
                    value=100,
                    step=1,
                    label="importance samples k",
                    visible=caps["importance_sampled"],
                )
                label = self._label_input(ex, False)
            go = gr.Button("Score and reconstruct", variant="primary")
            with gr.Row():
                seen = gr.Image(
                    elem_id=f"m{i}-analyze-input",
                    label="what the model sees",
                    format="png",
                    type="pil",
                    interactive=False,
                    height=160,
                )
                rec = gr.Image(
                    elem_id=f"m{i}-analyze-reconstruction",
                    label="reconstruction",
                    format="png",
                    type="pil",
                    interactive=False,
                    height=160,
                    visible=caps["reconstruct"],
                )
            result = gr.Markdown(elem_id=f"m{i}-analyze-result")
            self._cleared_by(upload, [seen, rec, result])

            def analyze(upload, sketch, source, seed, k, label=None, progress=gr.Progress()):
                try:
                    x01 = self._image(upload, sketch, source, ex.model.config.image_shape)
                    with self._watch(i, "analyze", progress, doing="scoring"):
                        found = ex.analyze(x01, int(seed or 0), _int_or_none(label), iw_samples=int(k))
                except Exception as e:  # noqa: BLE001
                    return None, None, _fail(e)
                s = views.display_scale(ex.model.config.image_shape[-2], 160)
                seen = to_pil(found.model_input if found.model_input is not None else found.input, s)
                rec = to_pil(found.reconstruction, s) if found.reconstruction is not None else None
                return seen, rec, views.analysis_markdown(found)

            event = self._on(
                go.click,
                analyze,
                [upload, sketch, source, seed, k] + ([label] if label is not None else []),
                [seen, rec, result],
                i,
                "analyze",
                preprocess=False,
            )
            self._cancel_button(i, "analyze", event)

    def _complete(self, i: int, ex: Explorer, examples: list[str]) -> None:
        gr = self.gr
        h = ex.model.config.image_shape[-2]
        with gr.Tab("Complete"):
            upload, sketch, source = self._image_source(examples, f"m{i}-complete-upload")
            with gr.Row():
                rows = gr.Slider(
                    1, h - 1, value=h // 2, step=1, label="rows kept from the top", elem_id=f"m{i}-complete-rows"
                )
                n = gr.Slider(1, 16, value=4, step=1, label="completions")
                seed = gr.Number(0, label="seed", precision=0, minimum=0)
                label = self._label_input(ex, False)
            go = gr.Button("Complete", variant="primary")
            status = gr.Markdown(elem_id=f"m{i}-complete-status")
            with gr.Row():
                kept = gr.Image(
                    elem_id=f"m{i}-complete-kept",
                    label="kept (the rest grey)",
                    format="png",
                    type="pil",
                    interactive=False,
                    height=160,
                )
                out = gr.Image(
                    elem_id=f"m{i}-complete-out",
                    label="completions",
                    format="png",
                    type="pil",
                    interactive=False,
                    buttons=["download"],
                )
            self._cleared_by(upload, [kept, out, status])

            def run(upload, sketch, source, rows, n, seed, label=None, progress=gr.Progress()):
                try:
                    x01 = self._image(upload, sketch, source, ex.model.config.image_shape)
                    watch = self._watch(i, "complete", progress, int(n), int(rows))
                    shown, grid = views.complete(ex, x01, int(rows), int(n), int(seed or 0), _int_or_none(label), watch)
                except Exception as e:  # noqa: BLE001
                    return None, None, _fail(e)
                return to_pil(shown, views.display_scale(h, 160)), to_pil(grid, views.display_scale(h, 80)), ""

            event = self._on(
                go.click,
                run,
                [upload, sketch, source, rows, n, seed] + ([label] if label is not None else []),
                [kept, out, status],
                i,
                "complete",
                preprocess=False,
            )
            self._cancel_button(i, "complete", event)

    def _translate(self, i: int, ex: Explorer, examples: list[str]) -> None:
        gr = self.gr
        h = ex.model.config.image_shape[-2]
        with gr.Tab("Translate"):
            upload, sketch, source = self._image_source(examples, f"m{i}-translate-upload")
            direction = gr.Radio([("A -> B (G)", "a2b"), ("B -> A (F)", "b2a")], value="a2b", label="direction")
            go = gr.Button("Translate", variant="primary")
            status = gr.Markdown(elem_id=f"m{i}-translate-status")
            with gr.Row():
                shown = [
                    gr.Image(
                        label=t, format="png", type="pil", interactive=False, height=160, elem_id=f"m{i}-translate-{k}"
                    )
                    for k, t in enumerate(("input", "translation", "cycle: translated back"))
                ]
            self._cleared_by(upload, shown + [status])

            def run(upload, sketch, source, direction):
                try:
                    x01 = self._image(upload, sketch, source, domain_shape(ex.model))
                    images = views.translate_cycle(ex, x01, direction)
                except Exception as e:  # noqa: BLE001
                    return None, None, None, _fail(e)
                s = views.display_scale(h, 160)
                return (*[to_pil(x, s) for x in images], "")

            self._on(
                go.click, run, [upload, sketch, source, direction], shown + [status], i, "translate", preprocess=False
            )


__all__ = ["Page", "card_markdown"]
