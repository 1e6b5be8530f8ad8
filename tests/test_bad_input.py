"""Every console command against the same bad inputs: one line naming the culprit, exit status 2, no traceback, nothing
on disk changed. The table of what is tried is generated from CASES (`python tests/test_bad_input.py` prints it) and
docs/reliability.md must show the current one."""
import configparser
import importlib
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from conftest import in_process, snapshot  # noqa: E402


def _entry_points() -> dict:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    return dict(item.split("=") for item in cfg["DEFAULT"]["console_scripts"].split())


# (command, what is tried, kind, argv with {tmp}, {ckpt}, {file}, {empty}, {tree}, {weights}, {cfg} placeholders,
#  culprit in the message)
CASES = [
    ("mgnet", "wrong type", "type", "--n_iter four", "--n_iter"),
    ("mgnet", "out of range", "range", "--alpha 2", "--alpha"),
    ("mgnet", "missing path", "path", "--dataset imagenet --train_dir {tmp}/nope", "--train_dir"),
    ("mgnet", "empty folder", "path", "--dataset imagenet --train_dir {empty}", "no class folders"),
    ("mgnet", "folder without a checkpoint", "path", "--test --checkpoint {empty}", "no checkpoint file"),
    ("mgnet", "damaged checkpoint", "damaged", "--test --checkpoint {file}", "not a readable PyTorch checkpoint"),
    ("mgnet", "output that is a folder", "output", "--test --checkpoint {ckpt} --results {empty}", "is a directory"),
    ("mgnet", "unwritable output", "output", "--test --checkpoint {ckpt} --results /proc/mgnet.json", "cannot write"),
    ("mgnet", "image size too small", "range", "--img_size 40 --scale 4", "--img_size"),
    ("mgnet", "infinite value", "range", "--limit_train inf", "--limit_train"),
    ("mgnet", "seed out of range", "range", "--seed -1", "--seed"),
    ("mgnet", "plot in a missing folder", "output",
     "--test --checkpoint {ckpt} --exit_sweep --exit_plot {tmp}/no/p.png", "--exit_plot"),
    ("mgnet", "two outputs on one path", "output",
     "--test --checkpoint {ckpt} --exit_sweep --results {tmp}/r.png --exit_plot {tmp}/r.png", "--exit_plot"),
    ("mgnet train", "out of range", "range", "--alpha 2", "--alpha"),
    ("mgnet train", "unknown recipe", "type", "--recipe digits-paperr", "digits-paper"),
    ("mgnet train", "output that is an input", "output", "--config {cfg} --results {cfg}", "is an input"),
    ("mgnet test", "damaged checkpoint", "damaged", "--checkpoint {file}", "not a readable PyTorch checkpoint"),
    ("mgnet test", "output that is a folder", "output", "--checkpoint {ckpt} --results {empty}", "is a directory"),
    ("mgnet test", "output that is an input", "output", "--checkpoint {tmp}/run --results {ckpt}", "is an input"),
    ("mgnet recipes", "unknown recipe", "type", "nope", "nope"),
    ("mgnet predict", "missing image", "path", "{tmp}/nope.png --checkpoint {ckpt}", "nope.png"),
    ("mgnet predict", "folder with no images", "path", "{empty} --checkpoint {ckpt}", "no images"),
    ("mgnet predict", "unreadable image", "damaged", "{file} --checkpoint {ckpt}", "cannot read image"),
    ("mgnet predict", "missing checkpoint", "path", "{tmp}/img.png --checkpoint {tmp}/nope.ckpt", "nope.ckpt"),
    ("mgnet predict", "output in a missing folder", "output",
     "{tmp}/img.png --checkpoint {ckpt} --json {tmp}/no/p.json", "--json"),
    ("mgnet predict", "out of range", "range", "{tmp}/img.png --checkpoint {ckpt} --exit_threshold 2",
     "--exit_threshold"),
    ("mgnet predict", "unavailable device", "range", "{tmp}/img.png --checkpoint {ckpt} --device meta",
     "--device"),
    ("mgnet predict", "output that is an input", "output",
     "{tmp}/img.png --checkpoint {ckpt} --json {tmp}/img.png --force", "input images"),
    ("mgnet export", "missing checkpoint", "path", "{tmp}/nope.ckpt {tmp}/w", "nope.ckpt"),
    ("mgnet export", "damaged checkpoint", "damaged", "{file} {tmp}/w", "not a readable PyTorch checkpoint"),
    ("mgnet export", "output folder holding a model", "output", "{ckpt} {weights}", "--force"),
    ("mgnet export", "output that is a file", "output", "{ckpt} {file}", "is a file"),
    ("mgnet export", "output that is an input", "output", "{weights} {weights} --force", "is an input"),
    ("mgnet corrupt", "wrong type", "type", "{tmp}/out --severities x", "--severities"),
    ("mgnet corrupt", "out of range", "range", "{tmp}/out --severities 9", "--severities"),
    ("mgnet corrupt", "missing path", "path", "{tmp}/out --dataset imagenet --val_dir {tmp}/nope", "--val_dir"),
    ("mgnet corrupt", "empty folder", "path", "{tmp}/out --dataset imagenet --val_dir {empty}", "no class folders"),
    ("mgnet corrupt", "output that is a file", "output", "{file}", "OUT_DIR"),
    ("mgnet corrupt", "seed out of range", "range", "{tmp}/out --seed -1", "--seed"),
    ("mgnet corruptions", "missing checkpoint", "path", "--checkpoint {tmp}/nope.ckpt --corruption_dir {tree}",
     "nope.ckpt"),
    ("mgnet corruptions", "missing tree", "path", "--checkpoint {ckpt} --corruption_dir {tmp}/nope",
     "--corruption_dir"),
    ("mgnet corruptions", "empty tree", "path", "--checkpoint {ckpt} --corruption_dir {empty}", "--corruption_dir"),
    ("mgnet corruptions", "out of range", "range", "--checkpoint {ckpt} --corruption_dir {tree} --severities 0",
     "--severities"),
    ("mgnet corruptions", "output that is a folder", "output",
     "--checkpoint {ckpt} --corruption_dir {tree} --results {empty}", "--results"),
    ("mgnet corruptions", "output that is an input", "output",
     "--checkpoint {ckpt} --corruption_dir {tree} --csv {ckpt}", "is an input"),
    ("mgnet imagenet100", "missing path", "path", "{tmp}/nope {tmp}/out", "nope"),
    ("mgnet imagenet100", "empty folder", "path", "{empty} {tmp}/out", "train"),
    ("mgnet imagenet100", "missing class list", "path", "{empty} {tmp}/out --classes {tmp}/nope.txt", "nope.txt"),
    ("mgnet imagenet100c", "missing path", "path", "{tmp}/nope {tmp}/out", "nope"),
    ("mgnet imagenet100c", "empty folder", "path", "{empty} {tmp}/out", "folders inside"),
    ("mgnet benchmark", "unknown parameter", "type", "--out {tmp}/b -p nope 1", "nope"),
    ("mgnet benchmark", "wrong type", "type", "--out {tmp}/b -p epochs many", "epochs"),
    ("mgnet benchmark", "notebook value out of range", "range", "--out {tmp}/b -p parallel_runs 0", "parallel_runs"),
    ("mgnet benchmark", "seed out of range", "range", "--out {tmp}/b -p seeds [0,-1]", "-p seeds"),
    ("mgnet benchmark", "output that is a file", "output", "--out {file}", "--out"),
    ("mgnet benchmark", "non-empty output folder", "output", "--out {tree}", "--force"),
    ("mgnet benchmark", "missing notebook", "path", "--out {tmp}/b --notebook {tmp}/nope.ipynb", "nope.ipynb"),
    ("mgnet speed", "out of range", "range", "--repeats 0", "--repeats"),
    ("mgnet speed", "wrong type", "type", "--batch_size big", "--batch_size"),
    ("mgnet speed", "unknown device", "range", "--device tpu7", "--device"),
    ("mgnet speed", "output in a missing folder", "output", "--json {tmp}/no/b.json", "--json"),
]


def _main(command: str):
    """The function behind a console command: `mgnet VERB` is `mgnet`'s main with the verb first, as typed."""
    name, *verb = command.split()
    mod, fn = _entry_points()[name].split(":")
    main = getattr(importlib.import_module(mod), fn)
    return lambda argv: main([*verb, *argv])


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    import mgnet
    root = tmp_path_factory.mktemp("bad input")
    (root / "empty").mkdir()
    (root / "file.ckpt").write_bytes(b"this is not a checkpoint")
    (root / "run.yaml").write_text("epochs: 1\n")
    torch.manual_seed(0)
    model = mgnet.MGNet(n_iter=2)
    mgnet.save_checkpoint(model, root / "run" / "best.ckpt")
    model.save_pretrained(root / "weights")
    from PIL import Image
    Image.new("L", (64, 64)).save(root / "img.png")
    (root / "tree" / "fog" / "1" / "0").mkdir(parents=True)
    Image.new("L", (64, 64)).save(root / "tree" / "fog" / "1" / "0" / "a.png")
    return {"tmp": root, "ckpt": root / "run" / "best.ckpt", "file": root / "file.ckpt", "empty": root / "empty",
            "tree": root / "tree", "weights": root / "weights", "cfg": root / "run.yaml"}


@pytest.mark.parametrize("command,what,kind,args,culprit", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input(command, what, kind, args, culprit, places):
    argv = [a.format(**{k: str(v) for k, v in places.items()}) for a in args.split()]
    before = snapshot(places["tmp"])
    r = in_process(_main(command), *argv)
    code, err = r.returncode, r.stderr.strip()
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    last = err.splitlines()[-1] if err else ""
    assert last.startswith(f"{command}: error: ") and culprit in last, last   # the command as the user typed it
    assert snapshot(places["tmp"]) == before, "something on disk changed"


OLD_NAMES = [("mgnet-corrupt", "corrupt", "{tmp}/out --severities 9"), ("mgnet-bench", "speed", "--repeats 0"),
             ("mgnet-corruptions", "corruptions", "--checkpoint {tmp}/nope.ckpt --corruption_dir {tree}"),
             ("mgnet-benchmark", "benchmark", "--out {tmp}/b -p n_itr 2"),
             ("mgnet-imagenet100", "imagenet100", "{tmp}/nope {tmp}/out"),
             ("mgnet-imagenet100c", "imagenet100c", "{tmp}/nope {tmp}/out")]


@pytest.mark.parametrize("old,verb,args", OLD_NAMES)
def test_old_names_still_run_and_errors_name_the_verb(old, verb, args, places):
    """The old console scripts still work one release: they say their new spelling first, and their errors, like every
    verb's, name the form `mgnet VERB`."""
    argv = [a.format(**{k: str(v) for k, v in places.items()}) for a in args.split()]
    r = in_process(getattr(importlib.import_module("mgnet.cli"), _entry_points()[old].split(":")[1]), *argv)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines[0].startswith(f"{old} is now `mgnet {verb}`"), r.stderr
    assert lines[-1].startswith(f"mgnet {verb}: error: ") and "Traceback" not in r.stderr, r.stderr


def table() -> str:
    """docs/reliability.md's table: per command, what is tried against it."""
    rows, by = [], {}
    for command, what, *_ in CASES: by.setdefault(command, []).append(what)
    rows = ["| command | bad inputs tried (each: one line naming the culprit, exit 2, nothing on disk changed) |",
            "|---|---|"]
    rows += [f"| `{c}` | {', '.join(ws)} |" for c, ws in by.items()]
    return "\n".join(rows) + f"\n\n{len(CASES)} cases over {len(by)} entry points, in `tests/test_bad_input.py`."


def test_reliability_page_shows_the_current_table():
    page = (ROOT / "docs" / "reliability.md").read_text()
    m = re.search(r"<!-- bad-input-table -->\n(.*?)\n<!-- /bad-input-table -->", page, re.S)
    assert m, "docs/reliability.md lacks the <!-- bad-input-table --> block"
    assert m.group(1).strip() == table().strip(), \
        "stale table: python tests/test_bad_input.py > table, paste it into docs/reliability.md"


def test_every_console_command_is_tried():
    from mgnet.cli import VERBS
    assert {c for c, *_ in CASES} == {"mgnet", *(f"mgnet {v}" for v in VERBS)}    # every verb, and the original form
    assert set(_entry_points()) == {"mgnet", *(old for old, *_ in OLD_NAMES)}        # every old name as well


if __name__ == "__main__":
    print(table())
