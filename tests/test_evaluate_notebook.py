"""The evaluation notebook (nbs/experiments/evaluate.ipynb) through papermill with tiny parameters."""
import json

import nbformat
import pytest

from mgnet.config import MGNetConfig
from mgnet.lab.notebooks import ExperimentError, notebook_parameters, notebook_path, run_notebook

# Tiny, but not collapsed to one class (the default learning rate can do that on a handful of batches).
TINY_TRAIN = dict(epochs=2, limit_train=6, learning_rate=0.02, n_iter=2, batch_size=16)
NOTEBOOK_ONLY = {"mgnet_checkpoint", "baseline_checkpoint", "protocols", "eps_list", "paper_eps_list", "limit_images",
                 "corruptions", "severities", "corruption_dir", "corruption_images", "out_dir", "autoattack",
                 "aa_images", "recipe"}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    # The kernel papermill starts inherits these: one torch thread (the CI machine is small and shared), quiet warnings.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")


def execute(tmp_path, **params):
    """Run evaluate.ipynb; a failure inside it fails the test with the notebook's error."""
    try: return nbformat.read(run_notebook("evaluate", tmp_path, params, progress=False, html=False, cwd=tmp_path),
                              as_version=4)
    except ExperimentError as e: pytest.fail(f"evaluate.ipynb failed:\n{e}", pytrace=False)


def text_of(nb):
    return "\n".join(o["text"] if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                     for c in nb.cells for o in c.get("outputs", []))


def images_of(nb):
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def check_invariants(r, protocols, n_glimpses):
    """Structure of the results JSON and what must hold for any model: one list per glimpse, attacks never help."""
    assert set(r["clean_acc"]) == {"baseline", "mgnet"}
    assert {k: len(v) for k, v in r["clean_acc"].items()} == n_glimpses
    assert set(r["adv_acc"]) == set(protocols)
    for p in protocols:
        eps = r["attack"]["eps"][p]
        for k, n in n_glimpses.items():
            assert list(r["adv_acc"][p][k]) == [f"{e:.6g}" for e in eps]
            for e in eps:
                adv, clean = r["adv_acc"][p][k][f"{e:.6g}"], r["clean_acc"][k]
                assert len(adv) == n and all(0 <= a <= 1 for a in adv), (p, k, e, adv)
                assert all(a <= c for a, c in zip(adv, clean)), (
                    f"{p} eps {e}: {k} under attack {adv} above clean {clean}")
                if e == 0: assert adv == clean, f"{p}: eps 0 changed {k}'s accuracy: {adv} vs {clean}"


def test_parameters_cell():
    nb = nbformat.read(notebook_path("evaluate"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "evaluate.ipynb is not clean"
    names = set(notebook_parameters(notebook_path("evaluate")))
    fields = set(MGNetConfig.field_names())
    assert names - NOTEBOOK_ONLY <= fields, names - NOTEBOOK_ONLY - fields
    assert {"dataset", "eps", "step_size", "step_k", "seed", "square_queries", "aa_iters", "aa_queries"} <= names


def test_trains_what_is_missing_then_evaluates_given_checkpoints(tmp_path):
    """Trains both models (on cluttered digits) where no checkpoint is given, evaluates them (attacks, corruptions on a
    tree of their own cluttered canvases), then evaluates the checkpoints just trained."""
    out = tmp_path / "eval"
    nb = execute(tmp_path, out_dir=str(out), **TINY_TRAIN, limit_images=32, eps_list=[0.0, 0.1], step_k=2,
                 square=True, eps=0.1, square_queries=20, corruptions=["gaussian_noise"], severities=[3],
                 corruption_images=2, aa_iters=3, aa_queries=20, aa_images=16, clutter=2)
    r = json.loads((out / "results.json").read_text())
    check_invariants(r, ["paper", "adaptive"], {"baseline": 1, "mgnet": 2})
    assert r["images"] == 32
    # the paper protocol gets the same pixel budgets in normalised units
    assert r["attack"]["eps_pixels"]["paper"] == pytest.approx([0.0, 0.1])
    assert r["attack"]["eps"]["paper"][1] == pytest.approx(0.1 / r["attack"]["std"])
    assert set(r["square_acc"]) == {"baseline", "mgnet"} and all(0 <= v <= 1 for v in r["square_acc"].values())
    for v in r["square"].values():
        assert isinstance(v["square_beats_pgd"], bool)
        assert v["worst_acc"] == min(v["square_acc"], v["pgd_acc"], v["pgd_last_glimpse_acc"])
    assert list(r["corruption_acc"]["mgnet"]) == ["gaussian_noise"]
    assert list(r["corruption_acc"]["mgnet"]["gaussian_noise"]) == ["3"]
    assert len(r["corruption_acc"]["mgnet"]["gaussian_noise"]["3"]) == 2
    assert len(r["corruption_acc"]["baseline"]["gaussian_noise"]["3"]) == 1
    assert (out / "corruptions" / "gaussian_noise" / "3").is_dir() and (out / "corruptions.csv").is_file()
    tree = json.loads((out / "corruptions" / "corruption_tree.json").read_text())      # the models' own canvases
    assert (tree["clutter"], tree["translate"], tree["data_seed"]) == (2, r["configs"]["mgnet"]["translate"], 0)
    assert r["corruption_summary"]["mce"] is None and "1 of the 15" in r["corruption_summary"]["why_no_mce"]
    for k, n in {"baseline": 1, "mgnet": 2}.items():                                          # AutoAttack, per glimpse
        aa = r["autoattack"][k]
        assert aa["images"] == 16 and len(aa["adv_acc"]) == n and aa["attack"]["protocol"] == "autoattack"
        assert all(a <= c for a, c in zip(aa["adv_acc"], aa["clean_acc"])), aa
        assert aa["attack"]["iters"] == 3 and aa["attack"]["version"] == "custom budgets"
    text = text_of(nb)
    assert "no MGNet checkpoint: training" in text and "no baseline checkpoint: training" in text
    assert "paper protocol: " in text and "adaptive protocol: " in text                      # the verdicts
    assert "Square" in text and ("Square BEAT" in text or "Square did not beat PGD" in text)
    assert "AutoAttack (custom budgets" in text and "Departures from RobustBench" in text and "no mCE" in text
    assert images_of(nb) >= 2                                                # accuracy vs eps, corruption bars

    # Again with the checkpoints just trained given as paths: nothing trained, one protocol, no eps 0, no extras.
    ck = r["checkpoints"]
    nb = execute(tmp_path, out_dir=str(tmp_path / "again"), mgnet_checkpoint=ck["mgnet"],
                 baseline_checkpoint=ck["baseline"], batch_size=16, limit_images=16, protocols=["adaptive"],
                 eps_list=[0.05], step_k=1, square=False, corruptions=None, autoattack=False)
    r2 = json.loads((tmp_path / "again" / "results.json").read_text())
    check_invariants(r2, ["adaptive"], {"baseline": 1, "mgnet": 2})
    assert r2["square_acc"] is None and r2["corruption_acc"] is None and r2["autoattack"] is None
    assert r2["checkpoints"] == ck
    assert "training" not in text_of(nb) and not (tmp_path / "again" / "mgnet").exists()


def test_a_failure_inside_the_notebook_is_shown(tmp_path):
    bad = tmp_path / "nosuch.ckpt"
    with pytest.raises(ExperimentError) as e:
        run_notebook("evaluate", tmp_path, dict(out_dir=str(tmp_path / "r"), mgnet_checkpoint=str(bad)),
                     progress=False, html=False, cwd=tmp_path)
    msg = str(e.value)
    assert "evaluate.ipynb failed" in msg and "CheckpointError" in msg and str(bad) in msg, msg
    assert not (tmp_path / "r" / "mgnet").exists()                  # failed before training anything
