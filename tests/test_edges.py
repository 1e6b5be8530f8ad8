"""Every value checked at the edge (issue 40, item 5): infinities, out-of-range seeds, unknown precisions, unknown
parameter names, wrong shapes from a weights folder, a mistyped sweep folder, NaN in JSON: each one line of the
package's own kind (`ConfigError`, `CheckpointError`, both `MGNetError`) naming the flag, parameter or file, with the
same words from the command line and from Python, and nothing written."""
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import in_process, snapshot

import mgnet
import mgnet.cli
import mgnet.files
import mgnet.lab.benchmark
from mgnet.cli import main
from mgnet.config import MGNetConfig
from mgnet.errors import ConfigError, MGNetError

CASES = [(["--limit_train", "inf"], "--limit_train: must be a finite number"),
         (["--learning_rate", "nan"], "--learning_rate: must be a finite number"),
         (["--std", "inf"], "--std: expected finite numbers"),
         (["--std", "0"], "--std: must be > 0"),
         (["--seed", "-1"], "--seed: must be between 0 and 4294967295"),
         (["--data_seed", str(2**40)], "--data_seed: must be between 0"),
         (["--precision", "bogus"], "--precision: unknown precision 'bogus'"),
         (["--epochs", "inf"], "--epochs")]


@pytest.mark.parametrize("args,says", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_values_one_line_same_words_from_python(tmp_path, args, says):
    before = snapshot(tmp_path)
    r = in_process(main, *args, "--log_dir", tmp_path / "logs", cwd=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("mgnet: error:") and says in last, last
    assert "Traceback" not in r.stderr and snapshot(tmp_path) == before
    value = args[1]
    name = args[0][2:]
    kw = {name: [float(value)] if name == "std" else value}
    with pytest.raises(ConfigError) as e:
        MGNetConfig(**kw).resolved()
    assert says in str(e.value) and isinstance(e.value, MGNetError)


def test_paths_are_paths(tmp_path):
    assert MGNetConfig(log_dir=tmp_path, results=tmp_path / "r.json").results == str(tmp_path / "r.json")


def test_from_pretrained_wrong_shape_names_the_file_and_tensor(tmp_path):
    mgnet.MGNet(n_iter=2, num_class=5).save_pretrained(tmp_path / "w")
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    (tmp_path / "w" / "config.json").write_text(json.dumps({**cfg, "num_class": 10}))
    for load in (mgnet.MGNet.from_pretrained, mgnet.load_checkpoint,
                 lambda d: torch.hub.load(str(Path(__file__).parents[1]), "mgnet", source="local", weights=d)):
        with pytest.raises(MGNetError) as e:
            load(tmp_path / "w")
        assert "model.safetensors" in str(e.value) or "w" in str(e.value)
        assert "global_fc.fc.weight" in str(e.value) or "10 classes" in str(e.value), str(e.value)


def test_nan_weights_refused_by_every_load_path(tmp_path):
    m = mgnet.MGNet(n_iter=2)
    with torch.no_grad(): m.global_fc.fc.bias[0] = float("nan")
    m.save_pretrained(tmp_path / "w")
    mgnet.save_checkpoint(m, tmp_path / "m.ckpt")
    for load, where in ((mgnet.MGNet.from_pretrained, tmp_path / "w"), (mgnet.load_checkpoint, tmp_path / "w"),
                        (mgnet.load_checkpoint, tmp_path / "m.ckpt")):
        with pytest.raises(MGNetError, match="global_fc.fc.bias holds 1 non-finite"):
            load(where)
    r = in_process(main, "--test", "--checkpoint", tmp_path / "m.ckpt", cwd=tmp_path)
    assert r.returncode == 2 and "m.ckpt" in r.stderr.strip().splitlines()[-1]


def test_explore_refuses_a_mistyped_folder(tmp_path):
    from mgnet.lab.explorer import explore
    with pytest.raises(ConfigError, match="--sweep_dir: .*swep: no such folder"):
        explore(tmp_path / "swep", progress=False)
    assert list(tmp_path.iterdir()) == []                      # no grid trained, nothing made


def test_results_json_has_no_bare_nan(tmp_path):
    mgnet.files.write_json({"acc": [math.nan, 0.5], "inf": math.inf}, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"acc": [None, 0.5], "inf": None}


def test_misspelt_notebook_parameter_is_named(tmp_path):
    """`-p n_itr 2` is refused with the same line naming the parameter and the nearest declared one: by
    `run_notebook`, by `mgnet benchmark -p` and by papermill itself running a shipped notebook (a cell right after the
    parameters cell checks what papermill injected), before anything is trained."""
    from mgnet.lab.notebooks import UnknownParameterError, notebook_path, run_notebook
    says = "-p n_itr: the notebook has no parameter 'n_itr'; did you mean n_iter?"
    with pytest.raises(UnknownParameterError) as e:
        run_notebook("sweep", tmp_path / "out", parameters={"n_itr": 2}, progress=False, html=False)
    assert str(e.value) == says and isinstance(e.value, ConfigError)
    r = in_process(mgnet.cli.main, "benchmark", "--out", tmp_path / "b", "-p", "n_itr", "2", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == f"mgnet benchmark: error: {says}", r.stderr
    import papermill as pm  # papermill's own run, as `papermill sweep.ipynb o.ipynb -p n_itr 2`
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(notebook_path("sweep")), str(tmp_path / "o.ipynb"), kernel_name="python3",
                            parameters={"n_itr": 2, "out_dir": str(tmp_path / "sweep")}, progress_bar=False)
    assert f"UnknownParameterError: {says}" in str(e.value), str(e.value)[-2000:]
    assert not (tmp_path / "sweep").exists()                              # stopped before the grid


@pytest.mark.parametrize("name", ["benchmark", "evaluate", "explorer", "sweep", "train"])
def test_every_shipped_notebook_checks_what_papermill_injects(name):
    """The cell after the parameters cell of each shipped notebook calls `check_parameters`, and papermill puts its
    injected cell between the two (what `check_parameters` relies on)."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from mgnet.lab.notebooks import assigned_names, notebook_path
    nb = load_notebook_node(str(notebook_path(name)))
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert "check_parameters()" in nb.cells[i + 1].source
    nb = parameterize_notebook(nb, {"n_itr": 2}, kernel_name="python3", language="python")
    injected = nb.cells[i + 1]
    assert injected.metadata["tags"] == ["injected-parameters"] and injected.source.startswith("# Parameters")
    assert "check_parameters()" in nb.cells[i + 2].source and "n_itr" not in assigned_names(nb.cells[i].source)


# --- every value checked at the edge: the Python API's keywords and arguments -----------------------------------------

def test_python_api_unknown_keywords_and_wrong_types_are_one_line_of_our_kind(tmp_path):
    """A mistyped keyword is an `UnknownSettingError` (a `ConfigError`, and the `TypeError` Python gives) naming the
    nearest setting; a wrong type for the config or the model is named; nothing is trained or written."""
    from mgnet.errors import UnknownSettingError
    from mgnet.predict import InputError, predict
    for make in (lambda: MGNetConfig(n_itr=2), lambda: mgnet.MGNet(n_itr=2), lambda: mgnet.ModelConfig(n_itr=2)):
        with pytest.raises(UnknownSettingError, match="--n_itr: .* has no setting 'n_itr'; did you mean n_iter") as e:
            make()
        assert isinstance(e.value, TypeError) and isinstance(e.value, ConfigError)
    with pytest.raises(UnknownSettingError, match="--max_epoch: .*Trainer"):
        mgnet.fit(MGNetConfig(epochs=1, log_dir=str(tmp_path / "logs")), progress=False, max_epoch=3)
    with pytest.raises(ConfigError, match="--cfg: expected an MGNetConfig"):
        mgnet.fit("digits", progress=False)
    with pytest.raises(ConfigError, match="--cfg: expected a ModelConfig or an MGNetConfig"):
        mgnet.MGNet("digits")
    with pytest.raises(InputError, match="model: expected an MGNet, got str"):
        predict(str(tmp_path / "m.ckpt"), torch.zeros(1, 64, 64))
    assert list(tmp_path.iterdir()) == []
