"""The web explorer's HTTP server: the standard library's ``ThreadingHTTPServer``
serving one static page and a JSON API over an :class:`Explorer`.

    GET  /                  the page (static/index.html), GET /app.js its script
    GET  /api/card          model card: name, config, capabilities, training metrics
    POST /api/samples       {"n", "seed", "labels" | "label"}
    POST /api/latent        {"seed", "values" | "z", "label"}
    POST /api/interpolate   {"seed_a", "seed_b", "steps", "method", "label"}
    POST /api/manifold      {"n", "dims", "label"}
    POST /api/analyze       {"image" (base64 PNG), "fit", "seed", "label", "iw_samples"}
    POST /api/translate     {"image", "fit", "direction", "seed"}

POST bodies are JSON objects sent with ``Content-Type: application/json``. Every
answer is JSON (images as base64 PNG); a bad request of any kind (unknown
endpoint, malformed JSON, an image that does not decode or has the wrong size,
values out of range) gets HTTP 400 and ``{"error": "<what was wrong>"}``.

Safety: by default the server listens on 127.0.0.1 only, and then also refuses
requests whose ``Host`` header names another machine (DNS rebinding). It reads
the run directory and never writes to it. One lock serialises the model calls.
"""

from __future__ import annotations

import json
import math
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from ..errors import GenlabError
from .explorer import Explorer

MAX_BODY_BYTES = 16 * 1024 * 1024
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8")}
POST_ROUTES = {"/api/samples": "samples", "/api/latent": "latent", "/api/interpolate": "interpolate",
               "/api/manifold": "manifold", "/api/analyze": "analyze", "/api/translate": "translate"}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def static_file(name: str) -> bytes:
    """The bytes of a file shipped in ``genlab/app/static`` (package data)."""
    return resources.files("genlab.app").joinpath("static", name).read_bytes()


class _BadRequest(Exception):
    pass


def _finite(value):
    """NaN and infinities -> None, so that every answer is strict JSON (JSON.parse rejects NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class ExplorerHandler(BaseHTTPRequestHandler):
    server_version = "genlab-explorer"
    protocol_version = "HTTP/1.1"

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: dict) -> None:
        self._send(status, json.dumps(_finite(doc), allow_nan=False).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _check_host(self) -> bool:
        """On a loopback address, answer only requests addressed to this machine by name."""
        if not self.server.loopback_only:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name in LOOPBACK:
            return True
        self._error(HTTPStatus.BAD_REQUEST, f"unexpected Host header {host!r}; open the explorer at "
                                            f"http://127.0.0.1:{self.server.server_address[1]}/")
        return False

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    # ------------------------------------------------------------------ methods
    def do_GET(self):  # noqa: N802 - the base class's name
        if not self._check_host():
            return
        path = self._path()
        if path in STATIC:
            name, ctype = STATIC[path]
            self._send(HTTPStatus.OK, static_file(name), ctype)
        elif path == "/api/card":
            self._answer(self.server.explorer.card, {})
        elif path in POST_ROUTES:
            self._error(HTTPStatus.BAD_REQUEST, f"{path} takes POST with a JSON body")
        else:
            self._unknown(path)

    def do_POST(self):  # noqa: N802
        if not self._check_host():
            return
        path = self._path()
        try:
            body = self._read_json()
        except _BadRequest as e:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, str(e))
            return
        if path not in POST_ROUTES:
            self._unknown(path)
            return
        self._answer(getattr(self.server.explorer, POST_ROUTES[path]), body)

    def _unknown(self, path: str) -> None:
        self._error(HTTPStatus.BAD_REQUEST, f"unknown endpoint {path!r}; GET /, /api/card; POST {', '.join(POST_ROUTES)}")

    def _read_json(self) -> dict:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest("bad Content-Length header") from None
        if length > MAX_BODY_BYTES:
            raise _BadRequest(f"the request body is {length} bytes; at most {MAX_BODY_BYTES}")
        raw = self.rfile.read(length) if length > 0 else b""
        if ctype != "application/json":
            raise _BadRequest("send the request body as JSON with Content-Type: application/json")
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _BadRequest(f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise _BadRequest(f"the request body must be a JSON object, got {type(body).__name__}")
        return body

    def _answer(self, method, body: dict) -> None:
        try:
            doc = method(body)
        except (GenlabError, ValueError) as e:  # bad input, said by the explorer or the model
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # noqa: BLE001 - a failure inside the model: say so, keep serving
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")
        else:
            self._json(HTTPStatus.OK, doc)


class ExplorerServer(ThreadingHTTPServer):
    """A threading HTTP server holding one :class:`Explorer`."""

    daemon_threads = True

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False):
        self.explorer = explorer
        self.verbose = verbose
        self.loopback_only = host in LOOPBACK
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), ExplorerHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False) -> ExplorerServer:
    """Bind (``port=0``: any free port) without serving yet; call ``serve_forever()``."""
    try:
        return ExplorerServer(explorer, host, port, verbose)
    except OSError as e:
        raise GenlabError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port or --host") from None


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000, *, device: str = "cpu",
          reference_examples: int = 100, verbose: bool = False) -> None:
    """Load ``run`` and serve the explorer until Ctrl+C. A folder that is not a genlab
    run (or model) raises :class:`genlab.errors.CheckpointError` before anything listens."""
    explorer = Explorer.from_run(run, device=device, reference_examples=reference_examples)
    server = make_server(explorer, host, port, verbose)
    if not server.loopback_only:
        print(f"warning: listening on {host}: anyone who can reach this machine can use the explorer "
              "(it has no login)", file=sys.stderr)
    print(f"genlab explorer for {run}: {server.url}  (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
