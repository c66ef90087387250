"""Headless Chromium for the tests: Debian's /usr/bin/chromium (or $GENLAB_CHROMIUM)
driven by Python playwright; a browser is never downloaded. ``chromium()`` skips the
test when either is missing."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# For each <img> matched: [naturalWidth, naturalHeight, max - min of its pixels' red channel]
# (drawn into a canvas: the images come from the page's own origin).
IMAGE_STATS = """(sel) => Array.from(document.querySelectorAll(sel)).map(img => {
  if (!img.complete || !img.naturalWidth) return [img.naturalWidth, img.naturalHeight, -1];
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data; let lo = 255, hi = 0;
  for (let k = 0; k < d.length; k += 4) {
    lo = Math.min(lo, d[k], d[k+1], d[k+2]); hi = Math.max(hi, d[k], d[k+1], d[k+2]);
  }
  return [img.naturalWidth, img.naturalHeight, hi - lo];
})"""


def executable() -> str | None:
    path = os.environ.get("GENLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.exists(path) else None


@contextmanager
def chromium():
    """A playwright Browser on the system chromium; skips when playwright or chromium is absent."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = executable()
    if path is None:
        pytest.skip("no chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def offline_page(browser, origin: str, external: list):
    """A new page that records (and aborts) every request leaving ``origin``."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})

    def route(r):
        url = r.request.url
        if url.startswith(origin) or url.startswith("data:") or url.startswith("blob:"):
            return r.continue_()
        external.append(url)
        return r.abort()

    page.route("**/*", route)
    return page


def image_stats(page, selector: str) -> list:
    return page.evaluate(IMAGE_STATS, selector)
