"""The documentation site, opened as a reader opens it: built with `mkdocs build --strict` (the README's
Documentation command), then read in headless Chromium (Debian's `chromium`, driven by Playwright's Python package; no
browser is downloaded). A chapter shows its saved picture; an API page shows a class and the docments of a function.

`.ci/run` builds the site once and points `MGNET_DOCS_SITE` at it; without it the test builds its own copy.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("MGNET_DOCS_SITE")
    if given: return Path(given)
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_every_chapter_and_module_has_a_page(site):
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        assert (site / "chapters" / f"{nb.stem}.html").is_file(), f"no page for the chapter {nb.name}"
    for mod in ("model", "geometry", "attacks"):
        assert (site / "api" / f"{mod}.html").is_file(), f"no API page for mgnet.{mod}"
    # a chapter's frontmatter for nbdev_test (`skip_exec: true`, a raw cell) is not shown as text or as a heading
    kept = [nb.stem for nb in (ROOT / "nbs").glob("*.ipynb") if '"cell_type": "raw"' in nb.read_text(encoding="utf-8")]
    assert kept, "no chapter has a raw frontmatter cell: this check checks nothing"
    for name in kept:
        assert "skip_exec" not in (site / "chapters" / f"{name}.html").read_text(encoding="utf-8"), name


def chapters_with_pictures() -> list[str]:
    "The chapters whose saved outputs hold a picture."
    found = []
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        if any(k.startswith("image/") for c in cells for o in c.get("outputs", []) for k in o.get("data", {})):
            found.append(nb.stem)
    return found


def test_chapters_keep_pictures():
    "At least 12 chapters keep a picture (issue 41), each one checked against a fresh run by refresh_outputs --check."
    spec = importlib.util.spec_from_file_location("refresh_outputs", ROOT / "tools" / "refresh_outputs.py")
    ro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ro)
    pictured = chapters_with_pictures()
    assert len(pictured) >= 12, f"only {len(pictured)} chapters keep a picture: {pictured}"
    stale = sorted(set(pictured) - set(ro.CHAPTERS))
    assert not stale, f"{stale} keep pictures that tools/refresh_outputs.py does not check: add them to its CHAPTERS"


def test_chapter_links_resolve(site):
    "Every local picture and link on a chapter's page leads to a file of the site (the chapters' `../docs/` links too)."
    broken = []
    for page in sorted((site / "chapters").glob("*.html")):
        for m in re.finditer(r'(?:src|href)="([^"#?]+)[^"]*"', page.read_text(encoding="utf-8")):
            url = m[1]
            if re.match(r"[a-z]+:|//", url): continue               # http(s):, data:, mailto:
            if not (page.parent / url).exists(): broken.append(f"{page.name}: {url}")
    assert not broken, broken[:20]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
def test_site_in_a_browser(site):
    from playwright.sync_api import sync_playwright
    pictured = chapters_with_pictures()
    assert pictured, "no chapter keeps a picture"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto((site / "index.html").as_uri())
            assert "mgnet" in page.title()
            # the navigation leads to the chapters: follow the link to a chapter that keeps a picture
            link = page.locator(f'a[href$="chapters/{pictured[0]}.html"]').first
            assert link.count() == 1, f"the home page's navigation has no link to {pictured[0]}"
            link.click()
            page.wait_for_load_state()
            assert page.url.endswith(f"chapters/{pictured[0]}.html"), page.url
            imgs = page.locator("article img, .md-content img")
            assert imgs.count() >= 1, f"{pictured[0]}: no picture on its page"
            loaded = imgs.first.evaluate("i => i.complete && i.naturalWidth > 50")
            assert loaded, f"{pictured[0]}: its picture does not load"
            # an API page: the model class, and a function's docments shown as its parameters
            page.goto((site / "api" / "model.html").as_uri())
            assert page.locator("[id='mgnet.model.MGNet']").count() >= 1, "no MGNet on the API page"
            page.goto((site / "api" / "attacks.html").as_uri())
            params = page.locator("[id='mgnet.attacks.pgd_paper'] ~ div table, .doc-section-item, td").all_inner_texts()
            assert any("normalised images" in t for t in params), "pgd_paper's docments are not on its API page"
        finally:
            browser.close()
