"""`mgnet-bench` runs and prints consistent figures (a benchmark, not a timed test: nothing here depends on speed)."""
import json

from conftest import in_process

from mgnet.bench import bench_main


def test_bench_digits(tmp_path, mgnet_cmd):
    r = mgnet_cmd("--settings", "digits", "--repeats", 2, "--batch_size", 16, "--variants", "contiguous", "bf16",
                  "--json", tmp_path / "b.json", command="mgnet-bench")
    assert r.returncode == 0, r.stderr[-3000:]
    (res,) = json.loads((tmp_path / "b.json").read_text())
    inf = res["inference"]
    ratios = [inf[f"mgnet_{k}"]["flop_ratio"] for k in (1, 2, 3, 4)]
    assert ratios == sorted(ratios)
    for v in inf.values():
        assert v["images_per_s"]["min"] <= v["images_per_s"]["median"] <= v["images_per_s"]["max"]
        assert v["seconds"]["runs"] == 2
    assert 0 < res["outside_backbone_share"]["median"] < 1
    assert all(0 < s <= o for s, o in zip(res["sampler_share"].values(), res["outside_backbone_share"].values()))
    assert res["training"]["mgnet"]["images_per_s"]["median"] > 0 and res["data"]["seconds_per_batch"]["median"] > 0
    assert all(v["page_faults_per_step"]["runs"] == 2 for v in res["training"].values())
    for text in ("wall ratio", "FLOP ratio", "time outside the backbone", "training images/s", "peak memory",
                 "contiguous", "bf16", "of which the glimpse sampler", "page faults per training step"):
        assert text in r.stdout, text


def test_bench_bad_flags():
    # the installed command's function, in this process (test_bench_digits runs the installed command)
    r = in_process(bench_main, "--repeats", 0)
    assert r.returncode == 2 and "--repeats" in r.stderr.splitlines()[-1]
    r = in_process(bench_main, "--settings", "imagenet1k")
    assert r.returncode == 2 and "--settings" in r.stderr.splitlines()[-1]


def test_bench_run_share(tmp_path, mgnet_cmd):
    # one epoch of the benchmark's MGNet in a fresh process: the clock inside it counts every batch, and the steps are
    # a part of the run's wall time (start-up, set-up and evaluation are the rest)
    r = mgnet_cmd("--settings", "run", "--run_epochs", 1, "--json", tmp_path / "r.json", command="mgnet-bench")
    assert r.returncode == 0, r.stderr[-3000:]
    (res,) = json.loads((tmp_path / "r.json").read_text())
    assert res["batches"] == {"train": 22, "validation": 6}     # 1437 training digits in 64s, 359 validation ones
    assert 0 < res["train_s"] and 0 < res["validation_s"] and 0 < res["steps_share"] < 1
    assert res["start_s"] > 0 and res["end_s"] > 0
    assert abs(res["train_s"] + res["validation_s"] - res["steps_share"] * res["wall_s"]) < 1e-6
    assert "of which the model's own steps" in r.stdout and "CPU: " in r.stdout


def test_bench_bad_run_epochs():
    r = in_process(bench_main, "--run_epochs", 0)
    assert r.returncode == 2 and "--run_epochs" in r.stderr.splitlines()[-1]
