"""Serving the explorer page: ``genlab serve RUN [RUN ...]`` and :func:`launch`.

Gradio (the ``app`` extra: ``pip install -e ".[app]"``) runs the page on uvicorn,
offline and locked down:

* no analytics, no version check, no share link, no server-side rendering, no
  fonts from the internet (a theme on the system's own fonts);
* uploads at most ``MAX_UPLOAD`` bytes (Gradio's ``max_file_size``) and images
  decoded under a pixel limit (Pillow's ``MAX_IMAGE_PIXELS``; a larger image is
  an error, not a warning), checked again from the header by ``uploads.read_upload``;
* bound to loopback (the default 127.0.0.1), requests whose ``Host`` header is not
  localhost / 127.0.0.1 / [::1] are refused with 400 (DNS rebinding);
* requests from another web page are refused with 403 (:class:`SameOrigin`): an
  ``Origin`` header must name the address the request was sent to;
* Gradio serves only its own cache: run directories are never in ``allowed_paths``;
* loopback is kept off any HTTP proxy (``NO_PROXY``): Gradio checks its own page
  over HTTP at start-up, and a proxy in the environment would fail that check.

Files: the process keeps one temporary folder, ``$TMPDIR/genlab-serve-XXXX``
(:func:`server_folder`), removed when it exits (Ctrl+C, SIGTERM, or a normal exit):
``gradio/`` is Gradio's cache (``GRADIO_TEMP_DIR``: uploads and every image or clip
sent to the page), whose files are deleted ``DELETE_CACHE[1]`` seconds after they
were written (checked every ``DELETE_CACHE[0]`` seconds, :func:`_cache_sweeper`);
each page keeps its example images in a ``page-*`` folder.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from ..errors import GenlabError
from ..explore.explorer import Explorer
from .uploads import MAX_IMAGE_SIDE

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
MAX_UPLOAD = "5mb"
DELETE_CACHE = (60, 600)  # every minute, delete the cached files written more than 10 minutes ago

_folder: Path | None = None


def _offline_environment() -> None:
    """Before gradio is imported: no analytics, no telemetry, nothing fetched; loopback
    addresses added to NO_PROXY / no_proxy (keeping their entries)."""
    for key, value in (
        ("GRADIO_ANALYTICS_ENABLED", "False"),
        ("HF_HUB_OFFLINE", "1"),
        ("HF_HUB_DISABLE_TELEMETRY", "1"),
        ("GRADIO_SSR_MODE", "False"),
        ("DO_NOT_TRACK", "1"),
    ):
        os.environ[key] = value
    for key in ("NO_PROXY", "no_proxy"):
        hosts = [h.strip() for h in os.environ.get(key, "").split(",") if h.strip()]
        os.environ[key] = ",".join(hosts + [h for h in ("127.0.0.1", "localhost", "::1") if h not in hosts])


def server_folder() -> Path:
    """This process's temporary folder (made on first use, removed at exit), with Gradio's
    cache in it: ``GRADIO_TEMP_DIR`` is set to its ``gradio/`` sub-folder."""
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="genlab-serve-"))
        atexit.register(shutil.rmtree, _folder, ignore_errors=True)
        os.environ["GRADIO_TEMP_DIR"] = str(_folder / "gradio")
    return _folder


def _cache_sweeper(cache: str, frequency: float, age: float):
    """A lifespan for Gradio's app: every ``frequency`` seconds, delete the files cached since
    the server started (uploads, images and clips sent to the page; not the example images
    cached while the page was built) once they are ``age`` seconds old, and the folders they
    leave. Gradio's own ``delete_cache`` is not used: its loop over the set of cached files
    stops for good ("Set changed size during iteration") when a request caches a file
    meanwhile, and the files then stay."""

    def sweep(start: float) -> None:
        old = time.time() - age
        for folder, _, names in os.walk(cache, topdown=False):
            with contextlib.suppress(OSError):  # whatever went meanwhile
                settled = os.stat(folder).st_mtime < old  # nothing added to it lately
                for name in names:
                    path = os.path.join(folder, name)
                    if start <= os.stat(path).st_ctime < old:
                        os.remove(path)
                if settled and folder != cache:
                    os.rmdir(folder)  # refused while it holds a file

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def loop(start):
            while True:
                await asyncio.sleep(frequency)
                await asyncio.to_thread(sweep, start)

        task = asyncio.create_task(loop(time.time()))
        try:
            yield
        finally:
            task.cancel()

    return lifespan


class SameOrigin:
    """ASGI middleware: refuses (403) a request whose ``Origin`` header is not the page's own
    origin, http(s)://<its Host header>, e.g. http://127.0.0.1:8000 for a page at that address:
    another site open in the browser, or a page on another port of localhost, cannot upload
    files or call the views. Requests without an Origin (curl, gradio_client) pass."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            origin, host = headers.get(b"origin"), headers.get(b"host", b"")
            if origin is not None and origin not in (b"http://" + host, b"https://" + host):
                from starlette.responses import PlainTextResponse

                return await PlainTextResponse("cross-origin request refused", status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)


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
    return gr.themes.Base(
        font=("ui-sans-serif", "system-ui", "sans-serif"), font_mono=("ui-monospace", "Consolas", "monospace")
    )


def launch(
    explorers: dict[str, Explorer],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    block: bool = True,
    quiet: bool = False,
    delete_cache: tuple[int, int] = DELETE_CACHE,
):
    """Serve ``explorers`` ({tab name: Explorer}) on host:port (``port=0``: a free one).

    With ``block=False`` returns ``(page, url)`` while the server runs in a thread
    (:class:`~genlab.app.ui.Page`; ``page.close()`` stops it and removes its files);
    otherwise serves until Ctrl+C or SIGTERM. ``url`` names the port listened on (the
    free one for ``port=0``). ``delete_cache``: (every so many seconds, delete the files
    cached more than so many seconds ago), see :func:`_cache_sweeper`.
    """
    folder = server_folder()  # before gradio is imported: it reads GRADIO_TEMP_DIR then
    require_gradio()
    from PIL import Image
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from .ui import Page

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    loopback = host in LOOPBACK
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if loopback else []
    middleware.append(Middleware(SameOrigin))
    if port == 0:
        port = free_port(host)
    page = Page(explorers, Path(tempfile.mkdtemp(prefix="page-", dir=folder)))
    page.blocks.queue(default_concurrency_limit=1, max_size=256)
    try:
        page.blocks.launch(
            server_name=host.strip("[]"),
            server_port=port,
            prevent_thread_lock=True,
            quiet=quiet,
            share=False,
            show_error=False,
            max_file_size=MAX_UPLOAD,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            enable_monitoring=False,
            footer_links=[],
            theme=theme(),
            allowed_paths=[],
            inbrowser=False,
            app_kwargs={"middleware": middleware, "lifespan": _cache_sweeper(page.blocks.GRADIO_CACHE, *delete_cache)},
        )
    except OSError as e:
        raise GenlabError(f"cannot listen on {host}:{port}: {e}; choose another --port or --host") from None
    name = host.strip("[]")
    url = f"http://{f'[{name}]' if ':' in name else name}:{page.blocks.server_port}/"
    if block:
        wait(page)
    return page, url


def wait(page) -> None:
    """Serve ``page`` until Ctrl+C or SIGTERM, then stop its server and remove its files."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit)  # by default SIGTERM ends Python without its atexit functions
    try:
        page.blocks.block_thread()  # returns on Ctrl+C
    finally:
        page.close()


def _exit(signum, frame):
    raise SystemExit(128 + signum)


def serve(
    runs,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str = "cpu",
    reference_examples: int = 100,
    data_dir: str | Path | None = None,
    verbose: bool = False,
) -> None:
    """Load every run of ``runs`` and serve the explorer until Ctrl+C; prints the page's address
    (with the port listened on) once it answers. A folder that is not a genlab run (or model)
    raises :class:`genlab.errors.CheckpointError` before anything listens. ``data_dir``: the folder
    of the runs' data sets (``<name>/<files>``): test images for the examples, the outlier
    scores and the projection (the shipped models' configs name none)."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    explorers = {
        name: Explorer.from_run(run, device=device, reference_examples=reference_examples, data_dir=data_dir)
        for name, run in zip(run_names(runs), runs)
    }
    server_folder()  # GRADIO_TEMP_DIR before gradio is imported
    require_gradio()
    if host not in LOOPBACK:
        print(
            f"warning: listening on {host}: anyone who can reach this machine can use the explorer (it has no login)",
            file=sys.stderr,
        )
    page, url = launch(explorers, host, port, block=False, quiet=not verbose)
    print(f"genlab explorer for {', '.join(map(str, runs))} on {url}  (Ctrl+C stops)", flush=True)
    wait(page)
