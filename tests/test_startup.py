"""`mgnet --help` and every verb's `--help` start at once: they load none of the heavy modules (Lightning, fvcore,
torchattacks, papermill, matplotlib), not even torch, nor does `import mgnet`. Read from `sys.modules` in a fresh
Python, not timed (the speed probe prints the start-up time against `import torch`'s)."""
import json
import subprocess
import sys

from mgnet.cli import VERBS

HEAVY = ("lightning", "pytorch_lightning", "fvcore", "torchattacks", "papermill", "matplotlib", "torch")

PROBE = """
import json, sys
from mgnet.cli import main
heavy, seen = {heavy!r}, {{}}
for argv in json.loads(sys.argv[1]):
    before = {{m for m in heavy if m in sys.modules}}
    try: main(argv)
    except SystemExit: pass
    seen[" ".join(argv)] = sorted({{m for m in heavy if m in sys.modules}} - before)
print(json.dumps(seen))
"""


def loaded_by(*argvs) -> dict[str, list[str]]:
    "The heavy modules each command line loads, run one after another in one fresh Python (printed output dropped)."
    r = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(argvs)], capture_output=True,
                       text=True, timeout=600)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_mgnet_loads_nothing_heavy():
    r = subprocess.run([sys.executable, "-c", f"import sys, mgnet; print([m for m in {HEAVY!r} if m in sys.modules])"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_help_loads_nothing_heavy():
    light = [["--help"], *[[v, "--help"] for v in VERBS]]
    seen = loaded_by(*light, ["--epochs", "0"])
    ran = seen.pop("--epochs 0")
    assert seen == {" ".join(a): [] for a in light}
    assert "lightning" in ran and "torch" in ran     # the check can fail: a command that runs loads the training code
