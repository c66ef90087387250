"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks:``); nothing here runs outside ``mkdocs``.

* The pages that live outside ``docs/`` join the site as they are in the repository, so that they are
  written once: ``README.md`` as ``readme.md``, ``benchmarks/README.md`` as ``benchmarks.md``,
  ``CONTRIBUTING.md`` as ``contributing.md``, with their links rewritten to the site's paths, and
  every ``examples/*.ipynb`` as ``examples/<name>.ipynb``, which mkdocs-jupyter renders (without running
  it: ``scripts/run_notebooks.py`` runs them).
* Math renders offline: MathJax 3 (``tex-svg-full.js``, one self-contained file from the
  ``django-static-mathjax`` package of the ``docs`` extra) is copied into the site, and the CDN MathJax
  2 script that nbconvert puts into every notebook page is removed. ``docs/javascripts/mathjax.js``
  configures it: ``$...$`` inside notebooks, pymdownx.arithmatex's spans in the Markdown pages.
* In the API pages the Sphinx roles of genlab's docstrings (``:func:`load```) are dropped, keeping the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]

#: page in the site -> (file in the repository, [(link prefix there, the same link from the site's root)])
OUTSIDE_PAGES = {
    "readme.md": (
        "README.md",
        [("docs/", ""), ("benchmarks/README.md", "benchmarks.md"), ("CONTRIBUTING.md", "contributing.md")],
    ),
    "benchmarks.md": ("benchmarks/README.md", [("../docs/", ""), ("../README.md", "readme.md")]),
    "contributing.md": ("CONTRIBUTING.md", [("docs/", ""), ("README.md", "readme.md")]),
}

MATHJAX_SITE_PATH = "javascripts/mathjax/tex-svg-full.js"

# Sphinx roles in docstrings (":func:`x`"), which mkdocstrings leaves as text before the code span
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|data|attr|mod|exc|obj|const):(<code>)~?")

# nbconvert's "<!-- Load mathjax -->" script and its MathJax 2 configuration, in every notebook page
_NBCONVERT_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)


# a Markdown link to a source file of the repository (no scheme), which the site does not hold
_SOURCE_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+:)[^)#\s]+\.(?:py|toml|cfg|sh|txt|json|yml|yaml)\)")


def rewrite_links(text: str, prefixes: list[tuple[str, str]]) -> str:
    """Markdown links ``](old...)`` and image sources with one of the ``old`` prefixes -> ``](new...)``;
    links to source files (``[harness.py](harness.py)``) keep their text and lose the link."""
    for old, new in prefixes:
        text = text.replace(f"]({old}", f"]({new}")
    return _SOURCE_LINK.sub(r"\1", text)


def mathjax_file() -> Path:
    """MathJax 3's single-file TeX-to-SVG build, from the installed django-static-mathjax package."""
    try:
        import mathjax  # django-static-mathjax: MathJax 3 as package data, no dependencies
    except ImportError:
        raise PluginError(
            "the documentation renders math offline with MathJax from the django-static-mathjax package: "
            'pip install -e ".[docs]"'
        ) from None
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    if not path.is_file():
        raise PluginError(f"{path} is missing: reinstall django-static-mathjax")
    return path


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files: Files, config: MkDocsConfig) -> Files:
    for dest, (source, prefixes) in OUTSIDE_PAGES.items():
        text = rewrite_links((ROOT / source).read_text(encoding="utf-8"), prefixes)
        files.append(File.generated(config, dest, content=text))
    for notebook in sorted((ROOT / "examples").glob("*.ipynb")):
        # a File rooted at the repository (not File.generated): mkdocs-jupyter's wrapper reads src_dir
        files.append(
            File(
                f"examples/{notebook.name}",
                src_dir=str(ROOT),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    files.append(File.generated(config, MATHJAX_SITE_PATH, abs_src_path=str(mathjax_file())))
    return files


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        html = _NBCONVERT_MATHJAX.sub("", html)
    elif page.file.src_uri.startswith("api/"):
        html = _SPHINX_ROLE.sub(r"\1", html)
    return html
