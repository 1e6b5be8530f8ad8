"""The package's layers, read from its imports: no cycle, no upward import, no mgnet import hidden inside a function."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mgnet"

# bottom to top; a module may import modules of its own layer or below (never in a cycle)
LAYERS = [
    {"config", "files", "recipes"},                                       # hyperparameters, safe writes, recipes
    {"geometry", "layers", "weights", "clutter", "data", "imagenet100"},      # maths, weight folders, datasets
    {"model"},
    {"checkpoint", "losses", "flops", "evaluation", "localisation"},       # evaluation loop, tables, glimpse places
    {"train", "attacks", "anytime", "corruptions", "corruption_trees", "corruption_eval"},  # make, read, score
    {"runs", "figures", "notebooks", "experiments", "predict", "bench"},  # runs, pictures, notebooks, benchmarks
    {"commands", "explorer", "benchmark", "corruption_commands"},         # the commands and the explorer
    {"cli"},                                                              # `mgnet VERB`: loads a verb when it runs
]
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def _imports(path: Path) -> tuple[set[str], list[tuple[str, int]]]:
    """The mgnet modules `path` imports at its top level, and those it imports anywhere else (name, line)."""
    tree = ast.parse(path.read_text())
    top, inner = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1: names = [node.module.split(".")[0]]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mgnet":
            names = [node.module.split(".")[1]] if "." in node.module else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] if "." in a.name else "mgnet" for a in node.names
                     if a.name.split(".")[0] == "mgnet"]
        else: continue
        (top.update if node in tree.body else lambda ns: inner.extend((n, node.lineno) for n in ns))(names)
    return top, inner


def _graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p)[0] for p in PKG.glob("*.py") if p.stem not in ("__init__", "_modidx")}


def test_every_module_has_a_layer():
    assert set(_graph()) == set(LAYER), f"place new modules in LAYERS: {sorted(set(_graph()) ^ set(LAYER))}"


def test_imports_go_down_or_sideways():
    up = [f"{m} (layer {LAYER[m]}) imports {d} (layer {LAYER[d]})" for m, deps in _graph().items() for d in deps
          if d != m and LAYER.get(d, 99) > LAYER[m]]
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
    # the exceptions: runs names its own worker by module path, so that spawned processes can import it; the package's
    # __init__ names its lazy top-level names for type checkers only (under TYPE_CHECKING)
    hidden = [f"{p.stem}.py:{line} imports {n}" for p in PKG.glob("*.py") for n, line in _imports(p)[1]
              if not (p.stem == "runs" and n == "runs") and p.stem != "__init__"]
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


def test_verbs_load_modules_below_the_command():
    """`mgnet VERB` loads the verb's module by name when it runs (mgnet.cli.VERBS, like console scripts): those modules
    are part of the layers, below the command or in it."""
    from mgnet.cli import VERBS
    mods = {target.split(":")[0].removeprefix("mgnet.") for target, _ in VERBS.values()}
    assert all(LAYER[m] <= LAYER["cli"] for m in mods), sorted(mods)


def test_the_checker_catches_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a fake package where data imports cli, and cli imports data."""
    (tmp_path / "data.py").write_text("from .cli import main\n")
    (tmp_path / "cli.py").write_text("from .data import x\ndef f():\n    from mgnet.model import MGNet\n")
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path)
    g = _graph()
    assert g == {"data": {"cli"}, "cli": {"data"}}
    assert _imports(tmp_path / "cli.py")[1] == [("model", 3)]
    import pytest
    with pytest.raises(AssertionError, match="upward imports"): test_imports_go_down_or_sideways()
    with pytest.raises(AssertionError, match="import cycle"): test_no_import_cycle()
