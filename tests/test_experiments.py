"""The experiment notebooks run through papermill with tiny parameters; `mgnet-benchmark` end to end."""
import json
import re

import nbformat
import pytest
from conftest import in_process, run_mgnet, snapshot

from mgnet.config import MGNetConfig
from mgnet.lab.benchmark import benchmark_main
from mgnet.lab.notebooks import ExperimentError, notebook_dirs, notebook_parameters, run_notebook
from mgnet.lab.runs import load_runs

NOTEBOOKS = ("train", "sweep", "benchmark", "explorer")
TINY = dict(epochs=1, limit_train=2, limit_val=2, n_iter=2)
NOTEBOOK_ONLY = {"out_dir", "images", "gallery", "alphas", "ss", "scales", "pgd_images", "corruptions", "severities",
                 "corruption_images", "anywhere_translate", "sweep_dir", "train_if_missing", "image", "parallel_runs",
                 "torch_threads", "seeds", "fresh_placements", "variant", "baseline_recipe", "recipe",
                 "run", "glimpse", "filter", "sort", "view", "compare"}   # the explorer's first view


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    # The kernels papermill starts inherit this: on a shared 2-core machine, torch's default of one thread per core
    # oversubscribes the CPU and slows tiny runs many times over.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")


def execute(name, out, **params):
    """Run an experiment notebook; a failure inside it fails the test with the notebook's error."""
    try: return nbformat.read(run_notebook(name, out, params, progress=False, html=False, cwd=out), as_version=4)
    except ExperimentError as e: pytest.fail(f"{name}.ipynb failed:\n{e}", pytrace=False)


def text_of(nb):
    return "\n".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                     for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_match_the_config(name):
    src = next(d / f"{name}.ipynb" for d in notebook_dirs() if (d / f"{name}.ipynb").is_file())
    nb = nbformat.read(src, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{name}: the first code cell is not tagged parameters"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{name} is not clean"
    names = set(notebook_parameters(src))
    assigned = {l.split("=")[0].strip() for l in code[0].source.splitlines() if "=" in l and not l.startswith("#")}
    assert assigned == names, f"papermill cannot parse the parameters {assigned - names} of {name}"
    fields = set(MGNetConfig.field_names())
    assert names - NOTEBOOK_ONLY <= fields, names - NOTEBOOK_ONLY - fields
    assert names & set(MGNetConfig.field_names()), f"{name}: no MGNetConfig field among its parameters"


def test_train_notebook(tmp_path):
    out = tmp_path / "run"
    nb = execute("train", tmp_path, out_dir=str(out), batch_size=16, gallery=2, clutter=2, background="blur", **TINY)
    r = json.loads((out / "results.json").read_text())
    assert (r["config"]["clutter"], r["config"]["background"]) == (2, "blur")
    assert len(r["clean_acc"]) == 2 and len(r["gflops"]) == 2 and r["gflops"][1] < 2 * r["baseline_gflops"]
    assert (out / r["checkpoint"]).is_file()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3          # curves, accuracy vs GFLOPs, gallery
    assert "accuracy" in text_of(nb) and "GFLOPs" in text_of(nb)
    assert "IoU with the object" in text_of(nb)
    assert len(r["localisation"]["glimpse_iou"]) == 2   # the digits' boxes are known, under clutter too


def test_sweep_notebook_skips_points_done(tmp_path):
    out = tmp_path / "sweep"
    nb = execute("sweep", tmp_path, out_dir=str(out), alphas=[0.6], ss=[0.02], scales=[2.0, 3.0], batch_size=16, **TINY)
    assert sorted(p.name for p in out.iterdir()) == ["alpha0.6_s0.02_scale2", "alpha0.6_s0.02_scale3"]
    assert "2 trained, 0 already done" in text_of(nb)
    before = snapshot(out)
    nb = execute("sweep", tmp_path, out_dir=str(out), alphas=[0.6], ss=[0.02], scales=[3.0, 2.0], batch_size=16, **TINY)
    assert "0 trained, 2 already done" in text_of(nb)
    assert snapshot(out) == before
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2   # heat maps, plot


def test_explorer_notebook_trains_a_grid_when_there_is_none(tmp_path):
    sweep = tmp_path / "empty"
    sweep.mkdir()                                            # a folder that does not exist is refused (a typo)
    nb = execute("explorer", tmp_path, sweep_dir=str(sweep), alphas=[0.6], ss=[0.02, 1.0], scales=[2.0],
                 image=3, clutter=3, **TINY)
    assert [r["name"] for r in load_runs(sweep)] == ["alpha0.6_s0.02_scale2", "alpha0.6_s1_scale2"]
    assert [r["config"]["clutter"] for r in load_runs(sweep)] == [3, 3]       # the grid on cluttered canvases
    assert "No runs in" in text_of(nb)
    state = json.dumps(nb.metadata.get("widgets", {}))      # papermill keeps the widgets' state
    assert "alpha0.6_s0.02_scale2" in state and "image 3" in state
    assert "error:" not in state   # the status line's errors


def test_a_failure_inside_a_notebook_is_shown(tmp_path):
    with pytest.raises(ExperimentError) as e:
        run_notebook("train", tmp_path, dict(out_dir=str(tmp_path / "r"), alpha=1.5), progress=False, html=False)
    assert "ConfigError" in str(e.value) and "--alpha" in str(e.value) and "train.ipynb" in str(e.value)
    assert (tmp_path / "train.ipynb").is_file()
    assert not (tmp_path / "r").exists()


def test_mgnet_benchmark_end_to_end(tmp_path):
    out = tmp_path / "bench"
    p = run_mgnet("--out", out, "-p", "epochs", "1", "-p", "limit_train", "2", "-p", "limit_val", "2",
                  "-p", "n_iter", "2", "-p", "batch_size", "16", "-p", "pgd_images", "8", "-p", "step_k", "1",
                  "-p", "corruptions", "['gaussian_noise']", "-p", "severities", "[1]", "-p", "corruption_images", "1",
                  "-p", "gallery", "2", "-p", "seeds", "[0, 1]",
                  "-p", "variant", "{'keypoints': 1, 'loc_anchor': True}", command="mgnet-benchmark",
                  timeout=1200)   # a bound for a hang, not a speed target
    assert p.returncode == 0, p.stderr[-3000:]
    assert {"benchmark.ipynb", "benchmark.html", "results.json"} <= {f.name for f in out.iterdir()}
    assert "training: 100%" in p.stderr and "| 8/8 [" in p.stderr      # the bar over the 8 runs' epochs
    assert "8/8 runs]" in p.stderr
    r = json.loads((out / "results.json").read_text())
    oc, aw = r["object_centric"], r["anywhere"]
    assert len(oc["mgnet"]["clean_acc"]) == 2 and len(oc["baseline"]["clean_acc"]) == 1
    assert oc["mgnet"]["config"]["translate"] == 0.4 and aw["mgnet"]["config"]["translate"] == 1.0
    assert [e["seed"] for e in r["seeds"]] == [0, 1]
    for e in r["seeds"]:                                                     # every seed: both models, IoU per glimpse
        assert len(e["mgnet"]["clean_acc"]) == 2 and len(e["mgnet"]["glimpse_iou"]) == 2
        assert len(e["baseline"]["clean_acc"]) == 1
        assert 0 < e["mgnet"]["glimpse_iou"][0] < 0.2 and e["mgnet"]["gflops"][-1] < e["baseline"]["gflops"][-1]
    for e in r["seeds"]:                  # final models on the validation digits placed anew, 10 times each (default)
        assert e["fresh_images"] == 10 * 359 and len(e["mgnet"]["fresh_acc"]) == 2
        assert len(e["baseline"]["fresh_acc"]) == 1 and all(0 <= a <= 1 for a in e["mgnet"]["fresh_acc"])
    assert set(r["seeds_verdict_fresh"]) == set(r["seeds_verdict"]) == set(r["seeds_variant_verdict_fresh"])
    v, d = r["seeds_verdict_fresh"], [e["mgnet"]["fresh_acc"][-1] - e["baseline"]["fresh_acc"][-1] for e in r["seeds"]]
    lo, hi = v["difference_interval95"]                                    # the mean per-seed difference, its interval
    assert v["mean_difference"] == pytest.approx(sum(d) / len(d)) and lo <= v["mean_difference"] <= hi
    assert (lo < hi) == (d[0] != d[1]) and "95% interval" in p.stdout
    assert r["variant"] == {"keypoints": 1, "loc_anchor": True}                # the variant: trained on every seed,
    for e, v in zip(r["seeds"], r["seeds_variant"]):                         # against the same baselines
        assert v["seed"] == e["seed"] and v["baseline"] == e["baseline"] and v["fresh_images"] == 10 * 359
        assert len(v["mgnet"]["fresh_acc"]) == 2 and v["mgnet"]["gflops"] != e["mgnet"]["gflops"]   # keypoint FLOPs
    assert (out / "object_centric" / "seed1" / "variant" / "results.json").is_file()
    assert r["seeds"][0]["mgnet"]["clean_acc"] == oc["mgnet"]["clean_acc"]    # the first seed is the one analysed
    assert oc["mgnet"]["config"]["data_seed"] == 0 and r["seeds"][1]["seed"] == 1
    assert oc["mgnet"]["gflops"][-1] < oc["baseline"]["gflops"][0]          # two half-resolution glimpses
    assert set(oc["pgd"]) == {"paper", "adaptive"} and len(oc["pgd"]["paper"]["mgnet"]["adv_acc"]) == 2
    assert list(oc["corruptions"]["results"]["MGNet"]["corruption_acc"]) == ["gaussian_noise"]
    html = (out / "benchmark.html").read_text()
    assert "Benchmark: MGNet against the baseline" in html and "data:image/png;base64" in html
    # the report reads as one (issue 41): the title, then the summary and its verdicts; tables as HTML tables; no code,
    # no progress bar (in the report or the executed notebook); accuracies as fractions; eps as n/255
    heads = re.findall(r"<h([12])[^>]*>(.*?)</h\1>", html, re.S)
    assert [re.sub(r"<[^>]+>|¶", "", h).strip() for _, h in heads[:2]] == \
        ["Benchmark: MGNet against the baseline", "Summary and verdicts"], heads[:3]
    summary = html[html.index("Summary and verdicts"):html.index("What it runs, and why")]
    assert re.search(r"MGNet (above|level|below|no verdict)", summary) and "<table" in summary, summary[:3000]
    assert "PGD adaptive, eps 4/255" in summary and "% of the baseline" in summary
    assert html.count("<table") >= 8 and "from mgnet" not in html                      # tables; the code left out
    executed = nbformat.read(out / "benchmark.ipynb", as_version=4)
    saved = json.dumps([c.get("outputs", []) for c in executed.cells])
    for text in (html, saved):
        assert not re.search(r"\d+%\|| \d+/\d+ \[\d\d:\d\d|it/s|epoch/s", text), "a progress bar was saved"
    assert "eps 0.01569" not in html and "10.00*" not in html    # eps as 4/255; the corruption table in fractions
    assert "MGNet accuracy per glimpse" in p.stdout and "2 training seeds" in p.stdout and "mean ± std" in p.stdout
    assert "final models (last epoch) on 3590 fresh images" in p.stdout
    assert "the variant (keypoints=1, loc_anchor=True), against the same baselines:" in p.stdout
    assert "Executing" in p.stderr                                           # papermill's progress bar
    assert r["cpu"] and len(r["train_seconds"]) == 8 and f"min on {r['cpu']}" in p.stdout   # the time, its machine

    before = snapshot(out)                                 # refuses to overwrite (the command's function, in process)
    p = in_process(benchmark_main, "--out", out, "-p", "epochs", "1")
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "not empty" in p.stderr and "--out" in p.stderr
    assert snapshot(out) == before


def test_mgnet_benchmark_on_mnist_format_files(tmp_path, mnist_format_files):
    """The main job on a researcher's own MNIST-format files (small ones the test writes in Fashion-MNIST's layout; the
    real files are read in test_own_data): both models, the per-seed table and the corruption section on that
    dataset's own canvases, at the chosen canvas size, with clutter on a tiled background (the corruption tree's
    canvases too). The command's function runs in this process and trains its two models one after the other (the
    test above runs the installed command, in parallel), with no glimpse gallery (gallery 0 once failed in its
    figure)."""
    out = tmp_path / "bench"
    p = in_process(benchmark_main, "--out", out, "-p", "dataset", "fashion-mnist", "-p", "train_dir",
                   mnist_format_files, "-p", "img_size", "56", "-p", "scale", "2", "-p", "epochs", "1",
                   "-p", "limit_train", "2", "-p", "limit_val", "2", "-p", "n_iter", "2", "-p", "batch_size", "16",
                   "-p", "pgd_images", "0", "-p", "corruptions", "['fog']", "-p", "severities", "[1]",
                   "-p", "corruption_images", "1", "-p", "gallery", "0", "-p", "seeds", "[0]",
                   "-p", "anywhere_translate", "None", "-p", "fresh_placements", "1", "-p", "parallel_runs", "1",
                   "-p", "baseline_recipe", "{'optimizer': 'adam', 'learning_rate': 0.001}",
                   "-p", "clutter", "2", "-p", "background", "tiles")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads((out / "results.json").read_text())
    oc = r["object_centric"]
    b, m = oc["baseline"]["config"], oc["mgnet"]["config"]                  # the baseline's own recipe; MGNet's kept
    assert (b["optimizer"], b["learning_rate"], m["optimizer"], m["learning_rate"]) == ("adam", 0.001, "sgd", 0.05)
    assert (b["seed"], b["data_seed"], b["n_iter"]) == (m["seed"], m["data_seed"], 1)
    assert r["baseline_recipe"] == {"optimizer": "adam", "learning_rate": 0.001}
    assert "the baseline's own recipe: optimizer='adam', learning_rate=0.001" in p.stdout
    assert oc["mgnet"]["config"]["dataset"] == "fashion-mnist" and oc["mgnet"]["config"]["img_size"] == 56
    assert len(r["seeds"]) == 1 and len(r["seeds"][0]["mgnet"]["glimpse_iou"]) == 2
    assert r["seeds"][0]["fresh_images"] == 20 and len(r["seeds"][0]["mgnet"]["fresh_acc"]) == 2
    fog = oc["corruptions"]["results"]["MGNet"]["corruption_acc"]["fog"]["1"]
    assert len(fog) == 2 and all(0 <= a <= 1 for a in fog)
    assert len(oc["corruptions"]["results"]["MGNet"]["corruption_iou"]["fog"]["1"]) == 2    # the boxes kept
    tree = json.loads((out / "object_centric" / "corruptions" / "corruption_tree.json").read_text())
    assert (tree["dataset"], tree["image_size"]) == ("fashion-mnist", 56)
    assert (tree["clutter"], tree["background"]) == (2, "tiles")
    assert (m["clutter"], m["background"], b["clutter"], b["background"]) == (2, "tiles", 2, "tiles")
    assert len(list((out / "object_centric" / "corruptions" / "fog" / "1").rglob("*.png"))) == 10
    assert "anywhere" not in r or not r["anywhere"]


@pytest.mark.parametrize("args, culprit", [
    (["-p", "nosuch", "1"], "-p nosuch:"),
    (["-p", "alpha", "1.5"], "-p alpha:"),
    (["-p", "epochs", "0"], "-p epochs:"),
    (["-p", "out_dir", "x"], "-p out_dir: is set by --out"),
    (["-p", "variant", "{'nosuch': 1}"], "-p variant: 'nosuch' is not an MGNetConfig field"),
    (["-p", "variant", "{'scale_max': 2.0}"], "-p variant: --scale_max"),
    (["-p", "baseline_recipe", "{'n_iter': 4}"], "-p baseline_recipe: 'n_iter' is not a field of the training recipe"),
    (["-p", "baseline_recipe", "{'learning_rate': -1}"], "-p baseline_recipe: --learning_rate"),
    (["-p", "clutter", "-1"], "-p clutter:"),
    (["-p", "background", "stripes"], "-p background:"),
    (["--notebook", "nosuch"], "nosuch.ipynb not found; looked in:"),
])
def test_mgnet_benchmark_bad_input(tmp_path, capsys, args, culprit):
    # The console command is this function (the end-to-end test above runs it as a process).
    rc = benchmark_main(["--out", str(tmp_path / "b"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and culprit in err and err.count("\n") == 0 and err.startswith("mgnet benchmark: error:"), err
    assert not (tmp_path / "b").exists()
