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


def _problems(browser, url: str, has_math: bool) -> list[str]:
    """What a reader would see go wrong on the page at ``url``."""
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url)
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


# --- The print form: the rules page printed to PDF by the same headless Chromium --------------

RULES_PAGE = HTML / "book" / "rules.html"


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


def _print_pdf(browser, url: str, media: str = "print") -> list[str]:
    """Print the page at ``url`` to PDF (DevTools Page.printToPDF); the text of each page."""
    import base64
    import io

    from pypdf import PdfReader

    browser.get(url)
    assert browser.execute_async_script(WAIT_FOR_MATHJAX) == "ready"
    # media "screen" prints the screen layout, where the @media print rules do not apply
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": media})
    try:
        pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": False, "preferCSSPageSize": True})
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    reader = PdfReader(io.BytesIO(base64.b64decode(pdf["data"])))
    return [" ".join((page.extract_text() or "").split()) for page in reader.pages]


def _print_problems(pages: list[str], names: list[str], sections: list[str]) -> list[str]:
    text = " ".join(pages)
    problems = [f"rule {name!r} missing from the PDF" for name in names if name not in text]
    # The navigation sidebar lists the parts of the book; the printed page must not.
    if "Part I: the Jacobian route" in text:
        problems.append("the navigation sidebar is printed")
    for title in sections:
        if not any(page.startswith(title) for page in pages):
            problems.append(f"section {title!r} does not start a page")
    return problems


@pytest.fixture(scope="module")
def rules_url(server):
    if not RULES_PAGE.exists():
        pytest.fail(f"the rules page was not built ({RULES_PAGE.relative_to(HTML)} missing)", pytrace=False)
    return f"{server}/{RULES_PAGE.relative_to(HTML).as_posix()}"


SECTIONS = ["The rows", "The table", "The check"]


def test_rules_page_prints_every_row(browser, rules_url):
    names = _rule_names()
    assert len(names) >= 16, names
    pages = _print_pdf(browser, rules_url)
    problems = _print_problems(pages, names, SECTIONS)
    assert not problems, "; ".join(problems)


def test_the_print_check_rejects_the_screen_layout(browser, rules_url):
    """Test the test: printed in the screen layout (no @media print rules), the parts run on.

    (Whether the screen layout also prints the sidebar depends on the window size left by
    earlier tests, so only the page breaks are asserted here.)
    """
    pages = _print_pdf(browser, rules_url, media="screen")
    problems = " ".join(_print_problems(pages, _rule_names(), SECTIONS))
    assert "does not start a page" in problems, problems
