// MathJax 3 (loaded next, from the site itself: scripts/mkdocs_hooks.py copies it in) renders
// pymdownx.arithmatex's \( \) and \[ \] spans in the Markdown pages, and $...$ / $$...$$ in the
// notebooks' Markdown cells; everything else in an article is left alone.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "md-typeset",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
  svg: { fontCache: "global" },
};
