"""The package's layers, read from its imports: the library never imports the lab, no cycle, no upward import, no mgnet
import hidden inside a function, no private name imported from another module, no module over 400 lines."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mgnet"

# The library: what a user of the model needs (config, data, model, weights, checkpoints, training, evaluation, attacks,
# corruptions, early exit, predict and its pictures), bottom to top; a module may import modules of its own layer or
# below (never in a cycle).
LIBRARY = [
    {"errors", "datasets", "moved"},                                       # mistakes, dataset registry, old paths
    {"coercion", "files", "memory", "command_lines"},                      # typed values, safe writes, memory, flags
    {"groups"},                                                            # the hyperparameters' groups
    {"config"},                                                            # all of them, flat
    {"recipes"},                                                           # the named recipes
    {"geometry", "layers", "weights", "backbones", "clutter", "canvases", "images", "data", "datamodule",
     "imagenet100"},
    {"model"},
    {"checkpoint", "resume", "losses", "flops", "evaluation", "localisation", "deploy"},   # evaluation, ONNX
    {"train", "attacks", "anytime", "corruptions", "corruption_trees", "corruption_eval"},  # make, read, score
    {"predict", "bench"},                                                  # predictions, the speed probe
    {"pictures"},                                                          # the pictures the library draws
    {"predict_command", "corruption_commands", "commands"},                # the library's commands
]
# The lab (`mgnet.lab`): runs, sweeps, their figures, the notebook runner, the benchmark, the explorer. It may import
# the library; the library never imports it.
LAB = [
    {"lab.notebooks", "lab.results", "lab.runs", "lab.report"},           # notebooks, results, runs, the HTML report
    {"lab.figures"},
    {"lab.explorer_filters", "lab.explorer_views"},                        # the explorer's filters and pictures
    {"lab.explorer_widgets"},                                             # its widgets
    {"lab.experiments", "lab.explorer", "lab.benchmark"},
]
# The one command, `mgnet <verb>`, stands on both (it loads a verb's module by name when the verb runs).
COMMANDS = [{"cli"}]
LAYERS = LIBRARY + LAB + COMMANDS
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def _name(path: Path, pkg: Path = None) -> str:
    "`lab.runs` for mgnet/lab/runs.py, `config` for mgnet/config.py."
    return ".".join(path.relative_to(pkg or PKG).with_suffix("").parts)


def _target(mod: str, node: ast.ImportFrom) -> list[str]:
    "The mgnet modules an import names, as `_name` spells them (`mod`: the importing module's name)."
    if node.level:                                                  # relative: from the importing module's package
        base = mod.split(".")[:-1][: len(mod.split(".")) - node.level]
        parts = base + (node.module.split(".") if node.module else [])
        return [".".join(parts)] if node.module else [".".join(parts + [a.name]) for a in node.names]
    parts = (node.module or "").split(".")
    if parts[0] != "mgnet": return []
    if len(parts) > 1: return [".".join(parts[1:])]
    return [a.name for a in node.names]


def _imports(path: Path, pkg: Path = None) -> tuple[set[str], list[tuple[str, int]], list[tuple[str, str, int]]]:
    """The mgnet modules `path` imports at its top level, those it imports anywhere else (name, line), and the private
    names it imports from another module (module, name, line)."""
    mod = _name(path, pkg)
    tree = ast.parse(path.read_text())
    top, inner, private = set(), [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = _target(mod, node)
            private += [(n, a.name, node.lineno) for n in names for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__") and n != mod]
        elif isinstance(node, ast.Import):
            names = [".".join(a.name.split(".")[1:]) or "mgnet" for a in node.names if a.name.split(".")[0] == "mgnet"]
        else: continue
        (top.update if node in tree.body else lambda ns: inner.extend((n, node.lineno) for n in ns))(names)
    return top, inner, private


def _modules(pkg: Path = None) -> list[Path]:
    return [p for p in sorted((pkg or PKG).rglob("*.py")) if p.stem not in ("__init__", "_modidx")]


def _graph(pkg: Path = None) -> dict[str, set[str]]:
    return {_name(p, pkg): _imports(p, pkg)[0] for p in _modules(pkg)}


def test_every_module_has_a_layer():
    assert set(_graph()) == set(LAYER), f"place new modules in LAYERS: {sorted(set(_graph()) ^ set(LAYER))}"


def test_the_library_never_imports_the_lab():
    lab = [f"{m} imports {d}" for m, deps in _graph().items() for d in deps
           if not m.startswith("lab.") and m not in set().union(*COMMANDS) and d.startswith("lab")]
    assert not lab, "the library imports the lab:\n" + "\n".join(lab)


def test_imports_go_down_or_sideways():
    up = [f"{m} (layer {LAYER[m]}) imports {d} (layer {LAYER.get(d, '?')})" for m, deps in _graph().items()
          for d in deps if d != m and LAYER.get(d, 99) > LAYER[m]]
    assert not up, "upward imports:\n" + "\n".join(up)


def test_no_import_cycle():
    g = _graph()
    state = {}

    def visit(m, path):
        if state.get(m) == "done": return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(path + [m])
        state[m] = "open"
        for d in g.get(m, ()):
            if d != m: visit(d, path + [m])
        state[m] = "done"

    for m in g: visit(m, [])


def test_no_mgnet_import_inside_functions():
    # the exception: runs names its own worker by module path, so that spawned processes can import it. (The
    # package's __init__, not checked here, names its lazy top-level names for type checkers, under TYPE_CHECKING.)
    allowed = {("lab.runs", "lab.runs")}
    hidden = [f"{_name(p)}.py:{line} imports {n}" for p in _modules() for n, line in _imports(p)[1]
              if (_name(p), n) not in allowed]
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


def test_verbs_load_modules_below_the_command():
    """`mgnet VERB` loads the verb's module by name when it runs (mgnet.cli.VERBS, like console scripts): those modules
    are part of the layers, below the command or in it."""
    from mgnet.cli import VERBS
    mods = {target.split(":")[0].removeprefix("mgnet.") for target, _ in VERBS.values()}
    assert all(LAYER[m] <= LAYER["cli"] for m in mods), sorted(mods)


def test_no_private_name_crosses_modules():
    private = [f"{_name(p)}.py:{line} imports {n} from {m}" for p in _modules() for m, n, line in _imports(p)[2]]
    assert not private, "private names imported from another module:\n" + "\n".join(private)


def test_no_module_over_400_lines():
    long = [f"{_name(p)}: {n} lines" for p in _modules() if (n := len(p.read_text().splitlines())) > 400]
    assert not long, "modules over 400 lines (split them along their seams):\n" + "\n".join(long)


def test_the_checker_catches_what_it_should(tmp_path, monkeypatch):
    """The checks above can fail: a fake package where data imports cli and the lab, cli imports data, a private name
    crosses, and a module is too long."""
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "runs.py").write_text("from ..data import x\n")
    (tmp_path / "data.py").write_text("from .cli import main\nfrom .lab.runs import go\nfrom .model import _secret\n")
    (tmp_path / "cli.py").write_text("from .data import x\ndef f():\n    from mgnet.model import MGNet\n")
    (tmp_path / "model.py").write_text("x = 1\n" * 401)
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path)
    g = _graph()
    assert g == {"data": {"cli", "lab.runs", "model"}, "cli": {"data"}, "lab.runs": {"data"}, "model": set()}
    assert _imports(tmp_path / "cli.py")[1] == [("model", 3)]
    assert _imports(tmp_path / "data.py")[2] == [("model", "_secret", 3)]
    with pytest.raises(AssertionError, match="upward imports"): test_imports_go_down_or_sideways()
    with pytest.raises(AssertionError, match="import cycle"): test_no_import_cycle()
    with pytest.raises(AssertionError, match="the library imports the lab"): test_the_library_never_imports_the_lab()
    with pytest.raises(AssertionError, match="private names"): test_no_private_name_crosses_modules()
    with pytest.raises(AssertionError, match="over 400 lines"): test_no_module_over_400_lines()
