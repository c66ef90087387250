"""The web explorer: ``genlab serve RUN`` opens a local page to sample a model,
move through its latent space, score or reconstruct an uploaded image and
translate images, whatever the model's methods allow.

Python API::

    from genlab.app import Explorer, make_server
    explorer = Explorer.from_run("runs/vae-mnist-5k")
    explorer.samples({"n": 16, "seed": 0})["image"]      # base64 PNG of a 4x4 grid
    server = make_server(explorer, port=0)                # 127.0.0.1, any free port
    server.serve_forever()

Standard library only (``http.server`` and ``json``); the page is one HTML file
and one plain JavaScript file shipped with the package, with no network access.
"""

from .explorer import Explorer, RequestError, capabilities
from .server import ExplorerServer, make_server, serve

__all__ = ["Explorer", "ExplorerServer", "RequestError", "capabilities", "make_server", "serve"]
