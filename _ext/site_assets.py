"""Sphinx extension: every page of the book works offline, with no console errors.

* The ipywidgets HTML manager (copied into the site's ``vendor/`` by ``make book``) loads its
  own fonts from the folder that require.js says its modules came from. Each page therefore
  tells require.js, right after loading it, where ``@jupyter-widgets/html-manager/dist``
  lives relative to that page; otherwise the fonts are looked for next to the page.
* The widget manager typesets widget labels with MathJax 2's ``MathJax.Hub.Queue``; the book
  loads MathJax 3, which has no ``Hub``. A small shim maps that call to MathJax 3's
  ``typesetPromise``, so widget pages raise no errors.
* A committed notebook whose stored outputs hold an error fails the build (a warning, and the
  book is built with warnings as errors): the book never shows a lab that crashed.
* sphinx-thebe's configuration script is added twice by Jupyter Book 1 (a ``const``
  declared twice: a console error on every page). The book has no live-code (thebe) buttons,
  so its scripts are dropped.
"""
import json
from pathlib import Path

from sphinx.builders.html._assets import _JavaScript
from sphinx.util import logging

logger = logging.getLogger(__name__)

MANAGER = "vendor/html-manager/dist"
HUB_SHIM = """document.addEventListener("DOMContentLoaded", () => {
  const mj = window.MathJax;
  if (mj && !mj.Hub) {
    mj.Hub = {Queue: (job) => (mj.startup ? mj.startup.promise : Promise.resolve())
      .then(() => mj.typesetPromise && mj.typesetPromise([job[2]]))};
  }
});"""


def _scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    kept = []
    for js in scripts:
        name = str(getattr(js, "filename", js) or "")
        body = js.attributes.get("body", "") if isinstance(js, _JavaScript) else ""
        if "thebe" in name or "THEBE_JS_URL" in body:
            continue
        if name.endswith("html-manager/dist/embed-amd.js"):
            kept.append(_JavaScript(None, body=HUB_SHIM))
        kept.append(js)
        if name.endswith("vendor/require.js"):
            where = context["pathto"](MANAGER, 1)
            # its CSS names the fonts twice, once under each module name: both must resolve
            kept.append(_JavaScript(None, body=(
                f'require.config({{paths: {{"@jupyter-widgets/html-manager/dist": "{where}", '
                f'"@jupyter-widgets": "{where}"}}}});')))
    context["script_files"] = kept


def notebook_errors(path: Path) -> list[str]:
    """One line per stored error output of a notebook: "cell N raised NAME: VALUE"."""
    cells = json.loads(path.read_text()).get("cells", [])
    return [f"cell {i} raised {out.get('ename')}: {out.get('evalue')}"
            for i, cell in enumerate(cells) for out in cell.get("outputs", []) if out.get("output_type") == "error"]


def _check_notebooks(app, env, docnames):
    for doc in docnames:
        path = Path(app.srcdir) / f"{doc}.ipynb"
        if path.exists():
            for problem in notebook_errors(path):
                logger.warning(f"{doc}.ipynb: {problem}", location=doc)


def setup(app):
    app.connect("env-before-read-docs", _check_notebooks)
    app.connect("html-page-context", _scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
