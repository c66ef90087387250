"""The web explorer: ``genlab serve RUN [RUN ...]`` opens a local Gradio page to
sample each model, move through its latent space, score, reconstruct, complete
or translate an uploaded or drawn image, whatever the model's methods allow.

Python API::

    from genlab.explore import Explorer                   # the page's answers, plain Python (genlab.explore)
    explorer = Explorer.from_run("runs/vae-mnist-5k")
    explorer.samples(16, seed=0).image                    # a Pillow image: the 4x4 grid
    image, z = explorer.latent(seed=3)                    # decode(z) (C, H, W) in [0, 1], and z

    from genlab.app.serve import launch                   # needs the app extra (gradio)
    page, url = launch({"vae": explorer}, port=0, block=False)   # page.close() stops it

What the page shows is computed in :mod:`genlab.explore` (plain Python, no web
dependency: :class:`Explorer` and its views); here :mod:`genlab.app.uploads` turns an
uploaded file into the Explorer's input tensor, :mod:`genlab.app.ui` lays the views out
with Gradio and :mod:`genlab.app.serve` runs the page. ``Explorer`` is re-exported here.
"""

from ..explore import Analysis, Explorer, RequestError, capabilities
from .serve import serve

__all__ = ["Analysis", "Explorer", "RequestError", "capabilities", "serve"]
