"""The web explorer: ``genlab serve RUN [RUN ...]`` opens a local Gradio page to
sample each model, move through its latent space, score, reconstruct, complete
or translate an uploaded or drawn image, whatever the model's methods allow.

Python API::

    from genlab.app import Explorer
    explorer = Explorer.from_run("runs/vae-mnist-5k")
    explorer.samples({"n": 16, "seed": 0})["image"]      # base64 PNG of a 4x4 grid

    from genlab.app.serve import launch                   # needs the app extra (gradio)
    page, url = launch({"vae": explorer}, port=0, block=False)   # page.close() stops it

:class:`Explorer` (plain Python, no web dependency) answers each view;
:mod:`genlab.app.views` adds the views with figures, audio and progress;
:mod:`genlab.app.ui` lays them out with Gradio; :mod:`genlab.app.serve` runs it.
"""

from .explorer import Explorer, RequestError, capabilities
from .serve import serve

__all__ = ["Explorer", "RequestError", "capabilities", "serve"]
