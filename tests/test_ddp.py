"""Lightning DDP on 2 CPU processes (gloo): a tiny training completes, and the validation accuracy it reports
(synchronised across the processes, each validating its own shard) equals a single-process evaluation of the saved
checkpoint."""
import json
from pathlib import Path

import pytest

import mgnet
from mgnet.checkpoint import read_checkpoint
from mgnet.datamodule import MGNetData


def test_ddp_two_cpu_processes(tmp_path, mgnet_cmd):
    r = mgnet_cmd("--devices", 2, "--epochs", 2, "--limit_train", 4, "--n_iter", 2, "--batch_size", 32,
                  "--learning_rate", 0.05, "--log_dir", tmp_path / "logs", "--results", tmp_path / "r.json",
                  cwd=tmp_path,
                  timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "r.json").read_text())
    ck = read_checkpoint(res["checkpoint"])
    reported = [v["best_model_score"] for k, v in ck["callbacks"].items() if "'monitor': 'val/acc'" in k][0].item()
    model = mgnet.load_checkpoint(res["checkpoint"])
    single = mgnet.evaluate(model, MGNetData(model.run.replace(test=True)).val_dataloader(), progress=False)
    assert reported == pytest.approx(single[-1], abs=1e-6)
    assert res["clean_acc"] == pytest.approx(single)
    last = read_checkpoint(Path(res["checkpoint"]).parent / "last.ckpt")
    assert res["config"]["devices"] == 2 and last["global_step"] == 2 * 4      # 2 epochs of 4 steps on each process
    during = [v for k, v in last["callbacks"].items() if k.startswith("SaveDuringEpoch")]
    assert during and during[0]["best_model_path"].endswith("last.ckpt")     # saved during an epoch in DDP too
