"""Serving the explorer page: ``genlab serve RUN [RUN ...]`` and :func:`launch`.

Gradio (the ``app`` extra: ``pip install -e ".[app]"``) runs the page on uvicorn,
offline and locked down:

* no analytics, no version check, no share link, no server-side rendering, no
  fonts from the internet (a theme on the system's own fonts);
* uploads at most ``MAX_UPLOAD`` bytes (Gradio's ``max_file_size``) and images
  decoded under a pixel limit (Pillow's ``MAX_IMAGE_PIXELS``; a larger image is
  an error, not a warning), checked again from the header by ``views.read_upload``;
* bound to loopback (the default 127.0.0.1), requests whose ``Host`` header is not
  localhost / 127.0.0.1 / [::1] are refused with 400 (DNS rebinding);
* Gradio serves only its own cache: run directories are never in ``allowed_paths``;
* loopback is kept off any HTTP proxy (``NO_PROXY``): Gradio checks its own page
  over HTTP at start-up, and a proxy in the environment would fail that check.
"""

from __future__ import annotations

import os
import socket
import sys
import warnings
from pathlib import Path

from ..errors import GenlabError
from .explorer import MAX_IMAGE_SIDE, Explorer

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
MAX_UPLOAD = "5mb"


def _offline_environment() -> None:
    """Before gradio is imported: no analytics, no telemetry, nothing fetched; loopback
    addresses added to NO_PROXY / no_proxy (keeping their entries)."""
    for key, value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                       ("GRADIO_SSR_MODE", "False"), ("DO_NOT_TRACK", "1")):
        os.environ[key] = value
    for key in ("NO_PROXY", "no_proxy"):
        hosts = [h.strip() for h in os.environ.get(key, "").split(",") if h.strip()]
        os.environ[key] = ",".join(hosts + [h for h in ("127.0.0.1", "localhost", "::1") if h not in hosts])


def require_gradio():
    """Import gradio in offline mode, or say how to install it."""
    _offline_environment()
    try:
        import gradio
    except ImportError:
        raise GenlabError('the explorer needs Gradio: pip install "genlab[app]" (or pip install -e ".[app]")') from None
    return gradio


def run_names(runs) -> list[str]:
    """A short distinct tab name per run: the folder name, with a parent where two clash."""
    names = [Path(r).name or str(r) for r in runs]
    for k, name in enumerate(names):
        if names.count(name) > 1:
            names[k] = f"{Path(runs[k]).parent.name}/{name}"
    return [f"{n} ({k + 1})" if names.count(n) > 1 else n for k, n in enumerate(names)]


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host.strip("[]"), 0))
        return s.getsockname()[1]


def theme():
    """Gradio's base theme on the system's fonts (nothing fetched from a font service)."""
    gr = require_gradio()
    return gr.themes.Base(font=("ui-sans-serif", "system-ui", "sans-serif"),
                          font_mono=("ui-monospace", "Consolas", "monospace"))


def launch(explorers: dict[str, Explorer], host: str = "127.0.0.1", port: int = 8000, *, block: bool = True,
           quiet: bool = False):
    """Serve ``explorers`` ({tab name: Explorer}) on host:port (``port=0``: a free one).

    With ``block=False`` returns ``(page, url)`` while the server runs in a thread
    (:class:`~genlab.app.ui.Page`; ``page.blocks.close()`` stops it); otherwise serves
    until Ctrl+C. ``url`` names the port listened on (the free one for ``port=0``).
    """
    gr = require_gradio()
    from PIL import Image
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from .ui import Page

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    loopback = host in LOOPBACK
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if loopback else []
    if port == 0:
        port = free_port(host)
    page = Page(explorers)
    page.blocks.queue(default_concurrency_limit=1, max_size=256)
    try:
        page.blocks.launch(
            server_name=host.strip("[]"), server_port=port, prevent_thread_lock=True, quiet=quiet, share=False,
            show_error=False, max_file_size=MAX_UPLOAD, ssr_mode=False, pwa=False, mcp_server=False,
            enable_monitoring=False, footer_links=[], theme=theme(), app_kwargs={"middleware": middleware},
            allowed_paths=[], inbrowser=False,
        )
    except OSError as e:
        raise GenlabError(f"cannot listen on {host}:{port}: {e}; choose another --port or --host") from None
    name = host.strip("[]")
    url = f"http://{f'[{name}]' if ':' in name else name}:{page.blocks.server_port}/"
    if block:
        wait(page)
    return page, url


def wait(page) -> None:
    """Serve ``page`` until Ctrl+C, then stop its server."""
    try:
        page.blocks.block_thread()
    finally:
        page.blocks.close()


def serve(runs, host: str = "127.0.0.1", port: int = 8000, *, device: str = "cpu", reference_examples: int = 100,
          verbose: bool = False) -> None:
    """Load every run of ``runs`` and serve the explorer until Ctrl+C; prints the page's address
    (with the port listened on) once it answers. A folder that is not a genlab run (or model)
    raises :class:`genlab.errors.CheckpointError` before anything listens."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    explorers = {name: Explorer.from_run(run, device=device, reference_examples=reference_examples)
                 for name, run in zip(run_names(runs), runs)}
    require_gradio()
    if host not in LOOPBACK:
        print(f"warning: listening on {host}: anyone who can reach this machine can use the explorer "
              "(it has no login)", file=sys.stderr)
    page, url = launch(explorers, host, port, block=False, quiet=not verbose)
    print(f"genlab explorer for {', '.join(map(str, runs))} on {url}  (Ctrl+C stops)", flush=True)
    wait(page)
