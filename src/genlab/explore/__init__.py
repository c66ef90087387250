"""Exploring a trained model from Python, without a web page: what ``genlab serve``'s page and
``genlab report`` show, computed as tensors, Pillow images, matplotlib figures and small dataclasses.

    from genlab.explore import Explorer, views
    explorer = Explorer.from_run("runs/vae-mnist-5k")
    explorer.samples(16, seed=0).image                    # a Pillow image: the 4x4 grid
    image, z = explorer.latent(seed=3)                    # decode(z) (C, H, W) in [0, 1], and z
    figure = views.manifold_plot(explorer, 15, (0, 1), None)   # the 2-D manifold with z on its axes

:class:`Explorer` (:mod:`genlab.explore.explorer`) holds one loaded model (through
:class:`genlab.Run`) and answers each view; :mod:`genlab.explore.views` adds the views with
figures, audio, progress and cancellation. The web page (:mod:`genlab.app`) lays them out with
Gradio; the report (:mod:`genlab.report`) writes them into one HTML file.
"""

from .explorer import Analysis, Explorer, RequestError, capabilities

__all__ = ["Analysis", "Explorer", "RequestError", "capabilities"]
