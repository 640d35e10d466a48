"""The online book as readers get it: the built site in a real browser, offline.

`make book` builds the site (with MathJax, require.js and the widget manager in its vendor/
folder) into a temporary folder, once for the module; a local HTTP server on 127.0.0.1 serves
it, and Debian's ``chromium`` (never a browser downloaded by Playwright) loads its pages through
Playwright. The browser can reach nothing but that server, and a page that even tries to is a
failure: the book must work with no network at all.

One walk does most of the work: from the front page it follows the theme's "next" link to the
end of the book, and then opens every other page of the site, recording for each page its console
errors, uncaught exceptions, failed requests, attempts to leave the site, rendered math, rendered
widget views, the fonts its style sheets declare (used yet or not), launch links and
previous/next links. The tests below judge that record; search, the walk back and the
screenshots (``_build/screenshots/``, for review) load pages of their own.

Needs ``chromium`` on PATH (``apt-get install chromium``; ``.ci/run`` installs it) and npm for
`make book`.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from seqlab.course import booktools

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
NOT_PAGES = {"vendor", "_static", "_sources", "_images"}  # folders of the site that hold no pages
# A word of the late chapter on Continuous Thought Machines (book/15-ctm.md) that no other
# chapter or lab uses: the search page must find it there.
SEARCH_TERM, SEARCH_PAGE = "PonderNet", "book/15-ctm.html"
LAB_FOR_SCREENSHOT = "notebooks/01-ngrams.html"

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- what the sources promise

def _toc_order() -> list[str]:
    """Every page of _toc.yml in reading order, as paths of the built site."""
    return [f"{name}.html" for name in booktools.toc_pages(ROOT)]


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text()


_CODE_DIRECTIVES = {"{code-block}", "{code}", "{code-cell}", "{literalinclude}"}
_MATH = re.compile(r"\$\$|(?<![\\$])\$(?=\S)[^$\n]+(?<=\S)\$(?!\d)|\\begin\{(?:equation|align|gather)")


def _prose(text: str) -> str:
    """MyST source without code: fenced code blocks and inline code go, directives stay."""
    out, fences = [], []  # fences: (fence, is_code) of the open fenced blocks
    for line in text.splitlines():
        m = re.match(r"\s*(`{3,}|~{3,}|:{3,})\s*(.*)$", line)
        if fences and fences[-1][1]:  # inside code: only its closing fence matters
            if m and not m.group(2) and m.group(1)[0] == fences[-1][0][0] \
                    and len(m.group(1)) >= len(fences[-1][0]):
                fences.pop()
            continue
        if m:
            fence, info = m.groups()
            if not info and fences and fence[0] == fences[-1][0][0]:
                fences.pop()
                continue
            directive = info.split()[0] if info else ""
            if directive == "{math}":
                out.append("$$")
            fences.append((fence, not directive.startswith("{") or directive in _CODE_DIRECTIVES))
            continue
        out.append(re.sub(r"`[^`\n]+`", "", line))
    return "\n".join(out)


def _sources() -> dict[str, Path]:
    """Built page -> its source, for the chapters and the labs."""
    pages = {f"book/{p.stem}.html": p for p in (ROOT / "book").glob("*.md")}
    pages.update({f"notebooks/{p.stem}.html": p for p in (ROOT / "notebooks").glob("*.ipynb")})
    return pages


def _math_pages() -> list[str]:
    return sorted(page for page, src in _sources().items() if _MATH.search(_prose(_markdown(src))))


def _widget_pages() -> list[str]:
    """Labs whose notebook stores widget state (what the book shows without a kernel)."""
    pages = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        widgets = json.loads(nb.read_text()).get("metadata", {}).get("widgets", {})
        if widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state"):
            pages.append(f"notebooks/{nb.stem}.html")
    return pages


def _colab_url(notebook: str) -> str:
    url, branch = booktools.repository_url(ROOT)
    owner_repo = urlsplit(url).path.strip("/").removesuffix(".git")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{notebook}"


# ---------------------------------------------------------------- the site and the browser

def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.fail("The browser tests need Debian's chromium on PATH: `sudo apt-get install -y chromium` "
                "(.ci/run installs it; Playwright's own browser downloads are never used).")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _build_site(out: Path) -> Path:
    """`make book` into out/_build/html (vendor/ included), with this interpreter's venv.

    ``-o`` keeps make from reinstalling the venv the tests are running in."""
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        ["make", "-o", str(venv / ".seqlab-installed"), "book", f"BOOK_OUT={out}",
         f"PY={sys.executable}", f"VENV={venv}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = out / "_build" / "html"
    assert (html / "vendor" / "mathjax").is_dir(), "make book did not copy MathJax into vendor/"
    return html


@dataclass
class PageRecord:
    """What one page did in the browser, and what it shows once settled."""
    path: str
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


# Run once a page has loaded: wait for MathJax's first typesetting and for the stored widget
# views (the widget manager puts a .widget-subarea before each view's <script>, then the view
# in it), then for the fonts.
_SETTLE = """async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const shown = () => document.querySelectorAll('.widget-subarea > .jupyter-widgets').length;
  const t0 = performance.now();
  while (views && shown() < views && performance.now() - t0 < 20000)
    await new Promise(r => setTimeout(r, 50));
  if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  await document.fonts.ready;
}"""

_FACTS = """() => {
  const all = (s) => Array.from(document.querySelectorAll(s));
  const link = (s) => { const a = document.querySelector(s); return a ? a.href : null; };
  return {
    mjx: all('mjx-container').length,
    math: all('span.math, div.math').length,
    unrendered: all('span.math, div.math').filter(e => !e.querySelector('mjx-container'))
                  .map(e => e.textContent.trim().slice(0, 60)),
    tex_errors: all('mjx-merror').map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
    views: all('script[type="application/vnd.jupyter.widget-view+json"]').length,
    shown: all('.widget-subarea > .jupyter-widgets').length,
    widget_elements: all('.jupyter-widgets, [class*="widget-"]').length,
    widget_errors: (document.body.innerText.match(/Error (displaying|creating) widget[^\\n]*/g) || []),
    launch: all('.dropdown-launch-buttons a').map(a => a.href),
    fonts: (() => {  // the src of every @font-face in every style sheet, as absolute URLs
      const urls = new Set();
      const walk = (rules, base) => { for (const r of rules) {
        if (r.type === CSSRule.FONT_FACE_RULE) {
          for (const m of r.style.getPropertyValue('src').matchAll(/url\\(\\s*["']?([^"')]+)["']?\\s*\\)/g))
            if (!m[1].startsWith('data:')) urls.add(new URL(m[1], base).href);
        } else if (r.styleSheet) { try { walk(r.styleSheet.cssRules, r.styleSheet.href || base); } catch (e) {} }
        else if (r.cssRules) walk(r.cssRules, base);
      } };
      for (const sheet of document.styleSheets) {
        try { walk(sheet.cssRules, sheet.href || document.baseURI); } catch (e) {}
      }
      return Array.from(urls);
    })(),
    next: link('a.right-next'),
    prev: link('a.left-prev'),
  };
}"""


# No network but 127.0.0.1: every other request goes to a proxy that is not there, and no host
# name resolves. (Requests are not intercepted with Playwright routes: that costs a third more
# time per page; the "request" event sees every attempt anyway.)
_LAUNCH_ARGS = ["--no-sandbox", "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


class Site:
    """The served site and one browser tab that records what each page does."""

    def __init__(self, html: Path, browser):
        self.html = html
        handler = functools.partial(_QuietHandler, directory=str(html))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},
                                           service_workers="block")
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.record: PageRecord | None = None
        self.in_flight: set = set()
        self.records: dict[str, PageRecord] = {}
        self.order: list[str] = []  # the pages reached by "next" links, in order
        page = self.page
        page.on("request", self._request)
        page.on("requestfinished", lambda r: self.in_flight.discard(r))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self._problem(f"HTTP {r.status}: {self.path(r.url)}"))
        page.on("console", lambda m: m.type == "error" and self._problem(
            f"console error: {m.text} ({m.location.get('url', '')}:{m.location.get('lineNumber', '')})"))
        page.on("pageerror", lambda e: self._problem(f"uncaught exception: {e}"))

    def local(self, url: str) -> bool:
        return url.startswith(self.base) or url.startswith(("data:", "blob:", "about:"))

    def path(self, url: str) -> str:
        return url[len(self.base):].split("#")[0].split("?")[0] if url.startswith(self.base) else url

    def _problem(self, text: str):
        # Chromium asks every site for /favicon.ico by itself; the book declares no icon
        if self.record is not None and f"{self.base}favicon.ico" not in text and text != "HTTP 404: favicon.ico":
            self.record.problems.append(text)

    def _request(self, request):
        self.in_flight.add(request)
        if not self.local(request.url):  # the browser cannot reach it (see _LAUNCH_ARGS): it tried
            self._problem(f"tried to leave the site: {request.url[:200]}")

    def _failed(self, request):
        self.in_flight.discard(request)
        if self.local(request.url):  # outside requests are already on the list
            self._problem(f"request failed: {self.path(request.url)} ({request.failure})")

    def pages(self) -> list[str]:
        """Every HTML page of the built site."""
        return sorted(str(p.relative_to(self.html)) for p in self.html.rglob("*.html")
                      if not NOT_PAGES & set(p.relative_to(self.html).parts))

    def open(self, path: str, navigate=None) -> PageRecord:
        """Load a page (or run navigate(), which must load one), let it settle, record it."""
        record = self.record = PageRecord(path)
        if navigate is None:
            self.page.goto(self.base + path, wait_until="load")
            refresh = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"',
                                (self.html / self.path(self.base + path)).read_text()[:2000], re.I)
            if refresh:  # the front page only redirects to the book's first page
                self.page.wait_for_url(urljoin(self.base + path, refresh.group(1)), wait_until="load")
        else:
            navigate()
        record.path = self.path(self.page.url)
        self.page.evaluate(_SETTLE)
        self._quiet()
        record.facts = self.page.evaluate(_FACTS)
        outside = [url for url in record.facts["fonts"] if not self.local(url)]
        missing = [self.path(url) for url in record.facts["fonts"]  # declared, used yet or not
                   if url.startswith(self.base) and not (self.html / self.path(url)).is_file()]
        if outside:
            record.problems.append(f"{len(outside)} fonts declared outside the site, e.g. {outside[0][:200]}")
        if missing:
            record.problems.append(f"{len(missing)} fonts declared at missing files, e.g. {missing[0]}")
        return record

    def _quiet(self, quiet_s: float = 0.1, limit_s: float = 10.0):
        """Wait until no request has been in flight for quiet_s (fonts and images come late)."""
        start = since = time.monotonic()
        while time.monotonic() - start < limit_s:
            self.page.wait_for_timeout(25)
            if self.in_flight:
                since = time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
        self._problem(f"requests still in flight after {limit_s:.0f} s: "
                      f"{sorted(self.path(r.url) for r in self.in_flight)[:5]}")

    def click(self, selector: str):
        with self.page.expect_navigation(wait_until="load"):
            self.page.locator(selector).first.click()

    def walk(self):
        """Follow "next" from the front page to the end, then open every other page."""
        record = self.records["index.html"] = self.open("index.html")  # it redirects
        self.records[record.path] = record
        self.order.append(record.path)
        while record.facts["next"] and len(self.order) <= 500:
            record = self.open("", lambda: self.click("a.right-next"))
            if record.path in self.records:
                self.records[self.order[-1]].problems.append(f"its 'next' link leads back to {record.path}")
                break
            self.records[record.path] = record
            self.order.append(record.path)
        for path in self.pages():
            if path not in self.records:
                self.records[path] = self.open(path)
        self.record = None

    def close(self):
        self.context.close()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The browser tests need Playwright: pip install -r requirements-dev.txt")
    html = _build_site(tmp_path_factory.mktemp("site"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=_LAUNCH_ARGS)
        served = Site(html, browser)
        started = time.monotonic()
        served.walk()
        served.walk_seconds = time.monotonic() - started
        yield served
        served.close()
        browser.close()


def _listing(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}:\n    " + "\n    ".join(items) for page, items in problems.items())


# ---------------------------------------------------------------- the tests

def test_every_page_loads_offline_with_no_errors(site):
    """No console error, no uncaught exception, no failed request, no attempt to leave localhost."""
    pages = site.pages()
    assert len(pages) >= len(_toc_order()), pages
    missing = sorted(set(pages) - set(site.records))
    assert not missing, f"pages never opened: {missing}"
    problems = {path: r.problems for path, r in site.records.items() if r.problems}
    assert not problems, f"{len(problems)} of {len(site.records)} pages have problems:\n{_listing(problems)}"
    print(f"{len(site.records)} pages clean, walked and checked in {site.walk_seconds:.1f} s")


def test_math_renders_on_every_math_page(site):
    math_pages = _math_pages()
    assert len(math_pages) >= 10, math_pages
    problems = {}
    for path in math_pages:
        facts = site.records[path].facts
        found = []
        if facts["mjx"] == 0:
            found.append(f"no MathJax output (mjx-container) for {facts['math']} math elements")
        if facts["unrendered"]:
            found.append(f"{len(facts['unrendered'])} formulas left as TeX, e.g. {facts['unrendered'][:3]}")
        if facts["tex_errors"]:
            found.append(f"TeX errors: {facts['tex_errors']}")
        if found:
            problems[path] = found
    for path, record in site.records.items():  # pages the source scan missed: still all rendered
        if path not in math_pages and (record.facts["unrendered"] or record.facts["tex_errors"]):
            problems[path] = [f"unrendered {record.facts['unrendered'][:3]}, errors {record.facts['tex_errors']}"]
    assert not problems, _listing(problems)


def test_widget_pages_show_their_stored_views(site):
    widget_pages = _widget_pages()
    assert widget_pages, "no lab stores widget state"
    problems = {}
    for path in widget_pages:
        facts = site.records[path].facts
        if not facts["views"]:
            problems[path] = ["the notebook stores widget state but the page has no widget view"]
        elif facts["shown"] < facts["views"] or facts["widget_errors"]:
            problems[path] = [f"{facts['shown']} of {facts['views']} widget views shown; {facts['widget_errors']}"]
    assert not problems, _listing(problems)


def test_every_lab_has_a_colab_link_to_its_own_notebook(site):
    labs = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert labs
    problems = {}
    for nb in labs:
        path = f"notebooks/{nb.stem}.html"
        colab = [href for href in site.records[path].facts["launch"] if "colab.research.google.com" in href]
        expected = _colab_url(f"notebooks/{nb.name}")
        if colab != [expected]:
            problems[path] = [f"launch links {colab}, expected [{expected}]"]
    assert not problems, _listing(problems)
    # the link is in the launch menu a reader opens (the rocket button), and visible there
    site.open(f"notebooks/{labs[0].stem}.html")
    site.page.locator(".dropdown-launch-buttons button").click()
    link = site.page.locator(f'.dropdown-launch-buttons a[href="{_colab_url(f"notebooks/{labs[0].name}")}"]')
    link.wait_for(state="visible")


def test_next_links_walk_the_whole_book_in_toc_order_and_back(site):
    assert site.order == _toc_order()
    first, last = site.records[site.order[0]], site.records[site.order[-1]]
    assert first.facts["prev"] is None and last.facts["next"] is None
    for before, after in zip(site.order, site.order[1:]):
        assert site.path(site.records[after].facts["prev"] or "") == before, f"'previous' of {after}"
    # and back a few steps by clicking "previous", as a reader would
    site.open(site.order[-1])
    for expected in reversed(site.order[-5:-1]):
        record = site.open("", lambda: site.click("a.left-prev"))
        assert record.path == expected
        assert not record.problems, f"{record.path}:\n" + "\n".join(record.problems)


def test_search_finds_a_term_of_a_late_chapter(site):
    holders = [page for page, src in _sources().items() if SEARCH_TERM.lower() in _markdown(src).lower()]
    assert holders == [SEARCH_PAGE], f"choose a term only {SEARCH_PAGE} uses; {SEARCH_TERM!r} is in {holders}"
    assert _toc_order().index(SEARCH_PAGE) > len(_toc_order()) * 2 // 3, "not a late chapter"
    record = site.open(f"search.html?q={SEARCH_TERM}")
    site.page.locator("#search-results ul.search li a").first.wait_for()
    hrefs = site.page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
    assert SEARCH_PAGE in {site.path(h) for h in hrefs}, hrefs
    assert not record.problems, "\n".join(record.problems)


def test_screenshots_of_the_front_page_and_a_lab(site):
    """For review by a person, in _build/screenshots/: the front page, and in one lab its first
    displayed formula and its stored widget view, each with the text around it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = {}
    record = site.open("index.html")
    assert record.path == "book/index.html"
    shots["front-page.png"] = site.page.screenshot(path=SCREENSHOTS / "front-page.png")
    record = site.open(LAB_FOR_SCREENSHOT)
    assert record.facts["mjx"] and record.facts["shown"] == record.facts["views"] > 0
    for name, selector, block in [("lab-math.png", "div.math", "center"),
                                  ("lab-widget.png", ".widget-subarea", "end")]:
        site.page.locator(selector).first.evaluate(
            f"e => {{ e.scrollIntoView({{block: '{block}'}}); window.scrollBy(0, {80 if block == 'end' else 0}); }}")
        site.page.wait_for_timeout(100)
        shots[name] = site.page.screenshot(path=SCREENSHOTS / name)
    for name, png in shots.items():
        assert (SCREENSHOTS / name).stat().st_size == len(png) > 10_000, name
