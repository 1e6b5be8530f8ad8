"""The glimpse explorer as a person uses it: JupyterLab 4 on localhost, the explorer notebook in headless Chromium.

Debian's `chromium` (/usr/bin/chromium) driven by Playwright's Python package; no browser is downloaded.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is not installed (apt-get install chromium)")

BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATUS = ".mgnet-status"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(root: Path):
    d = root / "settings"
    for plugin, value in {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                          "checkForUpdates": False},
                          "@jupyterlab/docmanager-extension/plugin": {"autosave": False}}.items():
        pkg, name = plugin.rsplit("/", 1)
        f = d / pkg / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    return d


@contextlib.contextmanager
def jupyter_lab(root: Path, sweep_dir: Path):
    """A fresh JupyterLab server on localhost serving `root`; the explorer's sweep folder is `sweep_dir`."""
    port, token = _free_port(), "mgnet-test-token"
    jd = root / ".jupyter"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(jd / "config"), "JUPYTER_DATA_DIR": str(jd / "data"),
           "JUPYTER_RUNTIME_DIR": str(jd / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(_settings(jd)),
           "JUPYTERLAB_WORKSPACES_DIR": str(jd / "workspaces"), "MGNET_SWEEP_DIR": str(sweep_dir),
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             "--allow-root", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
                             "--LabApp.expose_app_in_browser=True"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{(root / 'jupyter.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url, token
    finally:
        proc.terminate()
        try: proc.wait(15)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()


@contextlib.contextmanager
def explorer_page(root: Path, sweep_dir: Path, width=1500, height=1000, **params):
    """The explorer notebook (`parameters` cell given `params`) open in headless Chromium and run; yields the page."""
    from playwright.sync_api import sync_playwright
    src = Path(__file__).resolve().parents[1] / "nbs" / "experiments" / "explorer.ipynb"
    nb = json.loads(src.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    cell["source"] = "".join(cell["source"]) + "".join(f"\n{k} = {v!r}" for k, v in params.items())
    (root / "explorer.ipynb").write_text(json.dumps(nb))
    with jupyter_lab(root, sweep_dir) as (url, token), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/lab/tree/explorer.ipynb?token={token}")
            nb = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            nb.wait_for()
            page.locator("#jp-main-statusbar", has_text="Python 3 (ipykernel) | Idle").wait_for()
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(STATUS).first.wait_for()
            yield page
        finally:
            browser.close()


def slider(page, description):
    return page.locator(".widget-hslider").filter(has=page.locator(".widget-label", has_text=description)).first


def press(page, description, key="ArrowRight"):
    s = slider(page, description)
    s.locator(".noUi-handle").focus()
    page.keyboard.press(key)


def upload(page, path):
    """Click the explorer's upload button and choose `path` in the file dialog it opens, as a person does.

    ipywidgets 8 keeps the button's `<input type=file>` out of the document, so the input is reached through the file
    chooser its click opens (Playwright sets the files on that input)."""
    with page.expect_file_chooser() as chooser:
        page.locator(".widget-upload").click()
    chooser.value.set_files(str(path))


def picture(page):
    """The explorer's picture as the browser shows it: the PNG behind the image widget, as an RGB array."""
    data = page.evaluate("""async () => {
        const r = await fetch(document.querySelector('img.widget-image').src);
        return Array.from(new Uint8Array(await r.arrayBuffer())); }""")
    return png_array(bytes(data))


def wait_status(page, text):
    page.wait_for_function("document.querySelector('.mgnet-status') && "
                           f"document.querySelector('.mgnet-status').textContent.includes({json.dumps(text)})")


def errors(page):
    return page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]').count()


def digit_png(path, k, size=(64, 64), at=(20, 20)):
    """A PNG of scikit-learn digit number `k` (24 px) at `at` on a black image of `size`."""
    from PIL import Image

    from mgnet.canvases import digit_images
    img = Image.new("L", size)
    img.paste(Image.fromarray((digit_images()[0][k] * 255).round().byte().numpy()), at)
    img.save(path)
    return path


def png_array(data: bytes):
    import io

    import numpy as np
    from PIL import Image
    im = Image.open(io.BytesIO(data)).convert("RGBA")
    return np.asarray(Image.alpha_composite(Image.new("RGBA", im.size, "white"), im).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    from mgnet.config import MGNetConfig
    from mgnet.lab.runs import run_sweep
    d = tmp_path_factory.mktemp("sweep")
    run_sweep(MGNetConfig(n_iter=2, epochs=1, limit_train=2, limit_val=2, batch_size=16), [0.6], [0.02, 1.0], [2.0], d,
              progress=False)
    return d


def test_explorer_in_jupyterlab(tmp_path, tiny_sweep):
    with explorer_page(tmp_path, tiny_sweep) as page:
        status = page.locator(STATUS)
        page.wait_for_function("document.querySelector('.mgnet-status').textContent.includes('image 0,')")
        assert "alpha0.6_s0.02_scale2" in status.text_content() and "GFLOPs" in status.text_content()
        img = page.locator("img.widget-image")
        first = img.get_attribute("src")
        assert first and img.bounding_box()["width"] > 300

        press(page, "image")                                   # image 0 → 1
        page.wait_for_function("document.querySelector('.mgnet-status').textContent.includes('image 1,')")
        page.wait_for_function(f"document.querySelector('img.widget-image').src !== {json.dumps(first)}")
        second = img.get_attribute("src")

        press(page, "s")                                       # s 0.02 → 1: another run
        page.wait_for_function("document.querySelector('.mgnet-status').textContent.includes('alpha0.6_s1_scale2')")
        page.wait_for_function(f"document.querySelector('img.widget-image').src !== {json.dumps(second)}")

        press(page, "glimpses", "ArrowLeft")                   # 2 glimpses → 1
        page.wait_for_function("document.querySelector('.mgnet-status').textContent.includes('1 glimpse shown')")

        third = img.get_attribute("src")                       # your own image under the sliders
        upload(page, digit_png(tmp_path / "mine.png", 7, size=(96, 64), at=(60, 20)))
        wait_status(page, "(uploaded mine.png), 1 glimpse shown")
        page.wait_for_function(f"document.querySelector('img.widget-image').src !== {json.dumps(third)}")
        assert errors(page) == 0
        assert "error" not in status.text_content()
        assert page.locator(".widget-output .jp-OutputArea-output").count() == 0    # nothing in the explorer's log


def test_explorer_on_a_checkpoint_with_an_upload(tmp_path, tiny_sweep):
    """explore(checkpoint=..., images=...) in JupyterLab; an image chosen with the upload button is what is shown."""
    from datetime import datetime, timezone

    import numpy as np

    from mgnet.lab.explorer import ImageExplorer
    from mgnet.lab.runs import load_runs
    ckpt = load_runs(tiny_sweep)[0]["checkpoint"]
    (tmp_path / "imgs").mkdir()
    for k in (3, 4): digit_png(tmp_path / "imgs" / f"digit{k}.png", k)
    mine = digit_png(tmp_path / "mine.png", 5, size=(96, 64), at=(60, 20))
    with explorer_page(tmp_path, tiny_sweep, checkpoint=str(ckpt), images=str(tmp_path / "imgs")) as page:
        wait_status(page, "image 1 of 2: " + str(tmp_path / "imgs" / "digit3.png"))
        img = page.locator("img.widget-image")
        before_src = img.get_attribute("src")
        before = picture(page)
        upload(page, mine)
        wait_status(page, "image 3 of 3: uploaded mine.png")
        page.wait_for_function(f"document.querySelector('img.widget-image').src !== {json.dumps(before_src)}")
        shown = picture(page)
        assert errors(page) == 0
        assert page.locator(".widget-output .jp-OutputArea-output").count() == 0

    # the same explorer in this process, given the same file: the browser shows its picture of the upload
    ex = ImageExplorer(ckpt, tmp_path / "imgs")
    data = mine.read_bytes()
    ex.upload.value = (dict(name="mine.png", type="image/png", size=len(data), content=memoryview(data),
                            last_modified=datetime.now(timezone.utc)),)
    want = png_array(ex.picture.value)
    assert shown.shape == want.shape == before.shape
    assert np.abs(shown - want).mean() < 1.0, np.abs(shown - want).mean()
    assert np.abs(before - want).mean() > 5 * max(np.abs(shown - want).mean(), 0.2)
