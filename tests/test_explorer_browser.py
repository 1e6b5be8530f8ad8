"""The glimpse explorer as a person uses it: JupyterLab 4 on localhost, the explorer notebook in headless Chromium.

Debian's `chromium` (/usr/bin/chromium) driven by Playwright's Python package; no browser is downloaded.
"""
import contextlib
import json
import os
import re
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


def dropdown(page, description):
    label = page.locator(".widget-label", has_text=re.compile(f"^{re.escape(description)}$"))
    return page.locator(".widget-dropdown").filter(has=label).first


def choose(page, description, starts):
    """Choose the option of dropdown `description` whose text starts with `starts`, as a person does; its text."""
    d = dropdown(page, description).locator("select")
    options = d.locator("option").all_text_contents()
    plain = lambda t: t.replace("\xa0", " ").strip()                 # ipywidgets shows spaces as no-break spaces
    label = next((t for t in options if plain(t).startswith(starts)), None)
    assert label is not None, f"dropdown {description!r}: no option starting {starts!r} in {options}"
    d.select_option(label=label)
    return plain(label)


def button(page, text):
    return page.locator("button", has_text=text).first


def status_text(page):
    return page.locator(STATUS).first.text_content()


def drawn(page):
    """The redraw time the kernel measured for the picture shown (the status line's "drawn in X s")."""
    return float(re.search(r"drawn in ([\d.]+) s", status_text(page))[1])


def wait_picture(page, old):
    page.wait_for_function(f"document.querySelector('img.widget-image').src !== {json.dumps(old)}")
    return page.locator("img.widget-image").get_attribute("src")


def dot(sweep, **settings):
    """Where the last image of the filter has its glimpse-2 centre on the set view of `explore(sweep, **settings)`, as
    fractions of the picture from its top left, and the images whose centres are within a pixel of it there (any of
    them may open: the kernel's floats may differ in the last places), from the same explorer in this process."""
    import numpy as np

    from mgnet.lab.explorer import explore
    from mgnet.lab.explorer_views import centres
    ex = explore(sweep, train=False, view="set", **settings)
    fig, o = ex.shown, ex.outcomes_at(ex.j)
    w, h = o.size
    x, y = fig.axes[1].transData.transform(centres(o.params[1, ex.order[-1]:ex.order[-1] + 1], w, h))[0]
    cx, cy = centres(o.params[1], w, h)
    near = set(np.flatnonzero((np.hypot(cx - cx[ex.order[-1]], cy - cy[ex.order[-1]]) < 1) & ex.mask.numpy()).tolist())
    return x / fig.bbox.width, 1 - y / fig.bbox.height, near


def test_explorer_in_jupyterlab(tmp_path, tiny_sweep):
    """Runs from the dropdown, a filter and its next button, the set view and a click on it, a comparison, an upload,
    the share call."""
    with explorer_page(tmp_path, tiny_sweep) as page:
        times = []
        wait_status(page, "image 0 of")
        assert "alpha0.6_s0.02_scale2" in status_text(page) and "GFLOPs" in status_text(page)
        img = page.locator("img.widget-image")
        src = img.get_attribute("src")
        assert src and img.bounding_box()["width"] > 300

        press(page, "image")                                   # image 0 → 1
        wait_status(page, "image 1 of"); src = wait_picture(page, src); times.append(drawn(page))

        choose(page, "run", "1: alpha0.6_s1_scale2")           # another run, from the runs that exist
        wait_status(page, "run alpha0.6_s1_scale2"); src = wait_picture(page, src); times.append(drawn(page))

        press(page, "glimpses", "ArrowLeft")                   # 2 glimpses → 1
        wait_status(page, "1 glimpse shown of 2"); times.append(drawn(page))

        label = choose(page, "filter", "wrong after glimpse 2")   # the errors, counted in the dropdown
        n = int(re.search(r"\((\d+)\)$", label)[1])
        assert n >= 2, label                                   # a model trained for a moment: errors to find
        page.wait_for_function("/wrong after glimpse 2: \\d+ of /.test(document.querySelector('.mgnet-status')"
                               ".textContent)")
        times.append(drawn(page))
        k = int(re.search(rf"wrong after glimpse 2: (\d+) of {n}", status_text(page))[1])   # the image is one of them
        assert f"wrong after glimpse 2: {n}" in page.locator(".mgnet-counts").text_content()
        button(page, "next ▶" if k < n else "◀ previous").click()
        wait_status(page, f"wrong after glimpse 2: {k + 1 if k < n else k - 1} of {n}"); src = wait_picture(page, src)
        times.append(drawn(page))

        page.locator(".widget-toggle-buttons button", has_text="glimpses over the set").click()   # the set view
        src = wait_picture(page, src); times.append(drawn(page))
        x, y, near = dot(tiny_sweep, run="alpha0.6_s1_scale2", filter="wrong@2")
        box = img.bounding_box()                               # a click on a dot of the map opens its image
        img.click(position=dict(x=x * box["width"], y=y * box["height"]))
        page.wait_for_function("document.querySelector('.widget-toggle-buttons button.mod-active').textContent"
                               " === 'image'")
        src = wait_picture(page, src); times.append(drawn(page))
        opened = int(re.search(r"image (\d+) of 0", status_text(page))[1])
        assert opened in near, (opened, near)

        choose(page, "compare with", "0: alpha0.6_s0.02_scale2")   # the two runs on the same image
        page.wait_for_function("document.querySelector('.widget-toggle-buttons button.mod-active').textContent"
                               " === 'compare'")
        src = wait_picture(page, src); times.append(drawn(page))

        upload(page, digit_png(tmp_path / "mine.png", 7, size=(96, 64), at=(60, 20)))   # your own image
        wait_status(page, "(uploaded mine.png), 1 glimpse shown"); src = wait_picture(page, src)
        times.append(drawn(page))

        button(page, "share").click()
        page.wait_for_function("[...document.querySelectorAll('.widget-text input')].some(e => "
                               "e.value.startsWith('explore('))")
        call = next(v for v in page.locator(".widget-text input").evaluate_all("es => es.map(e => e.value)")
                    if v.startswith("explore("))
        assert "run='alpha0.6_s1_scale2'" in call and "view='compare'" in call and "filter='wrong@2'" in call, call
        assert errors(page) == 0
        assert "error" not in status_text(page)
        assert page.locator(".widget-output .jp-OutputArea-output").count() == 0    # nothing in the explorer's log
    import statistics
    print(f"\nexplorer redraw times measured in the kernel ({len(times)} redraws, JupyterLab + Chromium): "
          f"median {statistics.median(times):.3f} s, max {max(times):.3f} s "
          f"(issue 45's bound: 0.3 s median on a quiet 2-core CPU; not asserted: the machine is shared)")


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
        wait_status(page, "image 0 of 0–1 (" + str(tmp_path / "imgs" / "digit3.png"))
        img = page.locator("img.widget-image")
        before_src = img.get_attribute("src")
        before = picture(page)
        upload(page, mine)
        wait_status(page, "image 2 of 0–2 (uploaded mine.png)")
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
