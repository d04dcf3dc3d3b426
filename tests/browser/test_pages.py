"""Open every built page in headless Chromium with no network and check what a reader sees.

Fails if a page whose source has math shows no typeset math (``mjx-container``) or
still shows raw ``\\(``, ``\\[`` or ``$$`` delimiters, if an image fails to load, or if
the page logs a JavaScript error. Every host but the loopback one is unreachable
(``--host-resolver-rules``), so a page that depends on a CDN fails here.

Run after a build (``make build-strict``). Without Chromium the module is skipped with
the reason printed, unless ``MATGRAD_REQUIRE_BROWSER=1`` (as in CI), when it fails.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("MATGRAD_HTML_DIR", ROOT / "_build" / "html"))
REQUIRED = os.environ.get("MATGRAD_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"browser check is mandatory (MATGRAD_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(f"browser check skipped: {reason}", allow_module_level=True)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not CHROMIUM or not CHROMEDRIVER:
    _unavailable("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
if not (HTML / "index.html").exists():
    _unavailable(f"no built book at {HTML} (run `make build-strict` first)")

from selenium import webdriver  # noqa: E402  (imported only when the check can run)
from selenium.webdriver.chrome.service import Service  # noqa: E402

PAGES = sorted(
    p for p in HTML.rglob("*.html") if not any(part in {"_static", "_sources", "_images"} for part in p.relative_to(HTML).parts)
)


@contextlib.contextmanager
def _serve(directory: Path):
    """Serve ``directory`` on a free loopback port for the duration of the block."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def server():
    with _serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="matgrad-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        # No network: every host name but the loopback address fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("ready"), (e) => done("error: " + e));
  } else if (Date.now() - start > 20000) {
    done("MathJax never loaded");
  } else {
    setTimeout(poll, 100);
  }
})();
"""

INSPECT = """
const math = Array.from(document.querySelectorAll('span.math, div.math'));
const untypeset = math.filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.slice(0, 60));
const clone = document.body.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, textarea, mjx-container').forEach(el => el.remove());
const text = clone.innerText;
const raw = ['\\\\(', '\\\\[', '$$'].filter(d => text.includes(d));
const images = Array.from(document.images).map(img => {
  img.loading = 'eager';
  return {src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0};
});
return {containers: document.querySelectorAll('mjx-container').length, untypeset, raw, images};
"""


def _wait_until_settled(browser, timeout: float = 15.0) -> None:
    """Wait until the loaded document has a body and the same URL, complete, on two looks 0.2 s apart."""
    import time

    look = "return [document.readyState === 'complete' && document.body !== null, location.href];"
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        ready, href = browser.execute_script(look)
        if ready and href == last:
            return
        last = href if ready else None
        time.sleep(0.2)
    pytest.fail(f"the page did not settle within {timeout:.0f} s (last URL {last})", pytrace=False)


def _problems(browser, url: str, has_math: bool) -> list[str]:
    """What a reader would see go wrong on the page at ``url``."""
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url)
    _wait_until_settled(browser)  # the root index.html redirects, and the next page may still be loading
    state = browser.execute_async_script(WAIT_FOR_MATHJAX) if has_math else "no math"
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    result = browser.execute_script(INSPECT)
    problems = []
    if has_math:
        if state != "ready":
            problems.append(f"MathJax: {state}")
        if result["containers"] == 0:
            problems.append("the page has math but no typeset math (mjx-container)")
        if result["untypeset"]:
            problems.append(f"math left untypeset: {result['untypeset'][:3]}")
        if result["raw"]:
            problems.append(f"raw math delimiters visible: {result['raw']}")
    broken = [img["src"] for img in result["images"] if not img["ok"]]
    if broken:
        problems.append(f"images that failed to load: {broken}")
    # The browser asks every server for /favicon.ico on its own; the book has none.
    errors = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "/favicon.ico " not in entry["message"]
    ]
    if errors:
        problems.append(f"JavaScript errors: {errors[:5]}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_page_renders(page, server, browser):
    has_math = 'class="math' in page.read_text(errors="ignore")
    problems = _problems(browser, f"{server}/{page.relative_to(HTML).as_posix()}", has_math)
    assert not problems, "; ".join(problems)


def test_the_check_rejects_a_broken_page(browser, tmp_path):
    """Test the test: MathJax from a CDN (unreachable here), a missing image, a script error."""
    (tmp_path / "index.html").write_text(
        '<html><head><script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
        "<script>undefined_function();</script></head>"
        '<body><p><span class="math notranslate nohighlight">\\(x^2\\)</span></p>'
        '<img src="missing.png"></body></html>'
    )
    with _serve(tmp_path) as url:
        problems = " ".join(_problems(browser, f"{url}/index.html", has_math=True))
    for expected in ("MathJax never loaded", "no typeset math", "raw math delimiters", "missing.png", "undefined_function"):
        assert expected in problems, f"the check missed {expected!r}: {problems}"


# --- The print form: pages printed to PDF by the same headless Chromium ---------------------

RULES_PAGE = HTML / "book" / "rules.html"
# a chapter with h3 subsections inside its h2 parts
CHAPTER_PAGE = HTML / "book" / "09_softmax_normalization.html"


def _rule_names() -> list[str]:
    """The 'rule' column of the table the rules notebook stored (its Markdown output)."""
    import json
    import re

    cells = json.loads((ROOT / "book" / "rules.ipynb").read_text())["cells"]
    tables = [
        "".join(o["data"]["text/markdown"])
        for c in cells
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    ]
    assert len(tables) == 1, "the rules page should display one table"
    rows = [line.split("|") for line in tables[0].splitlines() if re.match(r"\| \d+ \|", line)]
    return [row[2].strip().strip("`") for row in rows]


def _print_pdf(browser, url: str, media: str = "print", css: str = "") -> list[str]:
    """Print the page at ``url`` to PDF (DevTools Page.printToPDF); the text of each page.

    ``css`` is added to the page before printing (to test the checks on a broken stylesheet).
    The page stays loaded, so the caller can read what the browser rendered.
    """
    import base64
    import io

    from pypdf import PdfReader

    browser.get(url)
    assert browser.execute_async_script(WAIT_FOR_MATHJAX) == "ready"
    if css:
        browser.execute_script(
            "const s = document.createElement('style'); s.textContent = arguments[0]; document.head.appendChild(s);", css
        )
    # media "screen" prints the screen layout, where the @media print rules do not apply
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": media})
    try:
        pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": False, "preferCSSPageSize": True})
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    reader = PdfReader(io.BytesIO(base64.b64decode(pdf["data"])))
    _print_pdf.layout = [" ".join((page.extract_text(extraction_mode="layout") or "").split()) for page in reader.pages]
    return [" ".join((page.extract_text() or "").split()) for page in reader.pages]


# The text of the last printed PDF in pypdf's layout mode, which orders the text by its position on the
# page: a formula (MathJax draws it as text objects of its own, which the plain mode puts at the end of
# the page) is read where it is printed, inside its row, though the characters of stacked sub- and
# superscripts may come in another order than the formula's.
_print_pdf.layout = []


# For each row of the rules table: the text of every typeset formula of its 'backward' cell, as
# drawn (MathJax's CHTML output draws each character as the CSS content of an mjx-c element), and
# the plain text of its 'derived in' cell (the rendered cross-references, such as "Ch. 3, (3.4)").
# Neither occurs in the page's code cells, which hold the LaTeX source and the MyST roles.
RENDERED_ROWS = """
const drawn = el => Array.from(el.querySelectorAll('mjx-c')).map(c => {
  const content = getComputedStyle(c, '::before').content;
  return c.textContent || (content && content !== 'none' ? content.replace(/^"|"$/g, '') : '');
}).join('');
const plain = el => {
  const clone = el.cloneNode(true);
  clone.querySelectorAll('mjx-container').forEach(m => m.remove());
  return clone.textContent;
};
return Array.from(document.querySelectorAll('#the-table table tbody tr')).map(tr => ({
  number: tr.cells[0].textContent.trim(),
  backward: Array.from(tr.cells[5].querySelectorAll('mjx-container')).map(drawn),
  derived: plain(tr.cells[6]),
}));
"""

# The section number of every h2 and h3 heading, and the page break the print stylesheet puts
# before its section (read with the print media emulated).
HEADINGS = """
const of = level => Array.from(document.querySelectorAll('.bd-article section > ' + level)).map(h => ({
  number: h.querySelector('.section-number').textContent.trim(),
  breakBefore: getComputedStyle(h.parentElement).breakBefore,
}));
return {h2: of('h2'), h3: of('h3')};
"""


def _print_style(browser, script: str):
    """Run ``script`` on the loaded page with the print media emulated (computed styles of the print form)."""
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        return browser.execute_script(script)
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def _squeeze(text: str) -> str:
    """Compare text without whitespace (the PDF's text extraction adds and drops spaces) or ligatures."""
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", text).split())


def _print_problems(pages: list[str], names: list[str], sections: list[str], rows: list[dict], layout=None) -> list[str]:
    """What is wrong with the printed rules page: ``pages`` in pypdf's plain mode, ``layout`` in its layout mode."""
    from collections import Counter

    layout = _print_pdf.layout if layout is None else layout
    text = " ".join(pages)
    problems = []
    # The navigation sidebar lists the parts of the book; the printed page must not.
    if "Part I: the Jacobian route" in text:
        problems.append("the navigation sidebar is printed")
    for title in sections:
        if not any(page.startswith(title) for page in pages):
            problems.append(f"section {title!r} does not start a page")
    starts = [i for i, page in enumerate(pages) if page.startswith("The table")]
    ends = [i for i, page in enumerate(pages) if page.startswith("The check")]
    if not starts or not ends or ends[0] <= starts[0]:
        return problems + ["the pages of the table (from 'The table' to 'The check') not found"]
    table = _squeeze(" ".join(pages[starts[0] : ends[0]]))
    if len(rows) != len(names):
        problems.append(f"the built table has {len(rows)} rows, the notebook {len(names)}")
    for row in rows:
        if not row["backward"]:
            problems.append(f"row {row['number']}: no typeset formula in its backward cell")
        for formula in row["backward"]:
            if _squeeze(formula) not in table:
                problems.append(f"row {row['number']}: backward formula {formula!r} missing from the printed table")
    # Each printed entry starts with its number and rule ("3. einsum, the general rule"); in the layout
    # text an entry is what lies between its start and the next entry's. Each row's formulas (as
    # characters: see _print_pdf.layout) and its 'derived in' text must be in its own entry.
    table = _squeeze(" ".join(layout[starts[0] : ends[0]]))
    contains = lambda entry, text: not (Counter(_squeeze(text)) - Counter(entry))
    starts_at, pos = [], 0
    for number, name in enumerate(names, start=1):
        at = table.find(_squeeze(f"{number}. {name}"), pos)
        if at < 0:
            problems.append(f"rule {number} ({name!r}) missing from the printed table, or out of order")
            at = pos
        starts_at.append(at)
        pos = at
    entries = [table[a:b] for a, b in zip(starts_at, starts_at[1:] + [len(table)])]
    for row, entry in zip(rows, entries):
        for formula in row["backward"]:
            if not contains(entry, formula):
                problems.append(f"row {row['number']}: backward formula {formula!r} missing from its printed entry")
        if not contains(entry, row["derived"]):
            problems.append(f"row {row['number']}: 'derived in' text {row['derived']!r} missing from its printed entry")
    return problems


# The boxes of the rules table's rows in the print layout: each entry must lie below the one before
# it (no entry drawn over another) and within the width of the article.
ROW_BOXES = """
const article = document.querySelector('.bd-article').getBoundingClientRect();
return {right: article.right, rows: Array.from(document.querySelectorAll('#the-table table tbody tr')).map(tr => {
  const r = tr.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, right: r.right};
})};
"""


def _layout_problems(boxes: dict) -> list[str]:
    problems = []
    rows = boxes["rows"]
    for i, (above, below) in enumerate(zip(rows, rows[1:]), start=2):
        if below["top"] < above["bottom"] - 0.5:
            problems.append(f"row {i} is drawn over row {i - 1} ({above['bottom'] - below['top']:.0f} px)")
    problems += [f"row {i} runs past the article's right edge" for i, r in enumerate(rows, 1) if r["right"] > boxes["right"] + 0.5]
    return problems


def _heading_problems(pages: list[str], headings: dict) -> list[str]:
    """Every h2 part breaks before and starts a page; no h3 subsection breaks before.

    An h3 may still land at the top of a page when what precedes it fills the page (a heading
    is kept with what follows it), so the printed pages are only required to show some h3 on a
    page it shares with earlier text; the stylesheet's break is read from the computed style.
    """
    starts = lambda number: any(page.startswith(number + " ") for page in pages)
    problems = [f"part {h['number']} does not start a page" for h in headings["h2"] if not starts(h["number"])]
    problems += [f"part {h['number']}: break-before {h['breakBefore']}" for h in headings["h2"] if h["breakBefore"] != "page"]
    forced = [h["number"] for h in headings["h3"] if h["breakBefore"] != "auto"]
    if forced:
        problems.append(f"h3 subsections with a page break before them: {forced}")
    if all(starts(h["number"]) for h in headings["h3"]):
        problems.append(f"every one of the {len(headings['h3'])} h3 subsections starts a page")
    return problems


def _page_url(server, page: Path) -> str:
    if not page.exists():
        pytest.fail(f"the page was not built ({page.relative_to(HTML)} missing)", pytrace=False)
    return f"{server}/{page.relative_to(HTML).as_posix()}"


@pytest.fixture(scope="module")
def rules_url(server):
    return _page_url(server, RULES_PAGE)


@pytest.fixture(scope="module")
def chapter_url(server):
    return _page_url(server, CHAPTER_PAGE)


SECTIONS = ["The rows", "The table", "The check"]


def test_rules_page_prints_every_row(browser, rules_url):
    """Printed, the table shows every row's backward formulas and cross-references in full."""
    names = _rule_names()
    assert len(names) >= 16, names
    pages = _print_pdf(browser, rules_url)
    rows = browser.execute_script(RENDERED_ROWS)
    assert len(rows) == len(names) and all(row["backward"] for row in rows), rows
    problems = _print_problems(pages, names, SECTIONS, rows) + _layout_problems(_print_style(browser, ROW_BOXES))
    assert not problems, "; ".join(problems)


def test_the_print_check_rejects_overlapping_rows(browser, rules_url):
    """Test the test: an entry drawn over the one before it is caught, though all its text is printed."""
    overlap = "@media print { #the-table tbody tr:nth-child(6) { margin-top: -60pt !important; } }"
    _print_pdf(browser, rules_url, css=overlap)
    problems = _layout_problems(_print_style(browser, ROW_BOXES))
    assert any("row 6 is drawn over row 5" in p for p in problems), problems


def test_the_print_check_rejects_a_row_out_of_place(browser, rules_url):
    """Test the test: a formula printed in another row's entry is not counted for its own row."""
    pages = _print_pdf(browser, rules_url)
    rows = browser.execute_script(RENDERED_ROWS)
    names = _rule_names()
    rows[0]["backward"] = rows[-1]["backward"]  # row 1 claims the last row's formula, printed elsewhere
    problems = _print_problems(pages, names, SECTIONS, rows)
    assert any(p.startswith("row 1: backward formula") for p in problems), problems


def test_the_print_check_rejects_the_screen_layout(browser, rules_url):
    """Test the test: printed in the screen layout (no @media print rules), the parts run on.

    (Whether the screen layout also prints the sidebar depends on the window size left by
    earlier tests, so only the page breaks are asserted here.)
    """
    pages = _print_pdf(browser, rules_url, media="screen")
    rows = browser.execute_script(RENDERED_ROWS)
    problems = " ".join(_print_problems(pages, _rule_names(), SECTIONS, rows))
    assert "does not start a page" in problems, problems


def test_the_print_check_rejects_a_cut_table(browser, rules_url):
    """Test the test: with the last two columns cut off, as a too wide table is on paper, the check says so."""
    hide = "@media print { #the-table td:nth-child(n+6) { display: none !important; } }"
    pages = _print_pdf(browser, rules_url, css=hide)
    rows = browser.execute_script(RENDERED_ROWS)
    problems = _print_problems(pages, _rule_names(), SECTIONS, rows)
    for what in ("backward formula", "'derived in' text"):
        assert sum(what in p for p in problems) >= len(rows), problems


def test_a_chapter_breaks_at_its_parts_only(browser, chapter_url):
    """Printed, a chapter starts each h2 part on a new page and runs its h3 subsections on."""
    pages = _print_pdf(browser, chapter_url)
    headings = _print_style(browser, HEADINGS)
    assert len(headings["h2"]) >= 4 and len(headings["h3"]) >= 4, headings
    problems = _heading_problems(pages, headings)
    assert not problems, "; ".join(problems)


def test_the_heading_check_rejects_a_break_at_every_section(browser, chapter_url):
    """Test the test: breaking before every nested section (h3 too) is caught."""
    every = "@media print { section > section { break-before: page !important; } }"
    pages = _print_pdf(browser, chapter_url, css=every)
    # the style stays on the loaded page, so the computed break is the broken one
    problems = " ".join(_heading_problems(pages, _print_style(browser, HEADINGS)))
    assert "h3 subsections with a page break" in problems and "every one of the" in problems, problems
