"""`push_to_hub` and `from_pretrained("user/repo")` offline: huggingface_hub's network calls are replaced by a fake Hub
(a folder per repository), so what would be uploaded and what a download gives back are checked without a network."""
import json
import shutil
from pathlib import Path

import httpx
import huggingface_hub.hub_mixin as hub_mixin
import numpy as np
import pytest
import torch
from conftest import in_process
from huggingface_hub.errors import RepositoryNotFoundError
from PIL import Image
from safetensors.torch import load_file

import mgnet.weights
from mgnet import MGNet, MGNetConfig, load_checkpoint
from mgnet.cli import main
from mgnet.lab.explorer import ImageExplorer
from mgnet.predict_command import predict_main
from mgnet.weights import CARD_MARK, CARD_NAME, CONFIG_NAME, WEIGHTS_NAME


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    "A Hub in `tmp_path/hub/<user>/<repo>`: HfApi's create_repo and upload_folder, and hf_hub_download, use it."
    root, calls = tmp_path / "hub", []

    class FakeApi:
        def __init__(self, token=None): self.token = token

        def create_repo(self, repo_id, private=None, exist_ok=False, **kw):
            calls.append(("create_repo", repo_id, private))
            (root / repo_id).mkdir(parents=True, exist_ok=exist_ok)
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None, **kw):
            calls.append(("upload_folder", repo_id, repo_type, sorted(p.name for p in Path(folder_path).iterdir())))
            shutil.copytree(folder_path, root / repo_id, dirs_exist_ok=True)
            return f"https://huggingface.co/{repo_id}/commit/0"

    def download(repo_id, filename, **kw):
        calls.append(("download", repo_id, filename))
        f = root / repo_id / filename
        if not f.is_file(): raise FileNotFoundError(f"{repo_id}/{filename} is not on the fake Hub")
        return str(f)

    def snapshot(repo_id, allow_patterns=None, **kw):        # the repository's folder, as the Hub's cache would hold it
        calls.append(("snapshot", repo_id, allow_patterns))
        if not (root / repo_id).is_dir():
            url = f"https://huggingface.co/api/models/{repo_id}"
            raise RepositoryNotFoundError(f"404 Client Error. Repository Not Found for url: {url}",
                                          response=httpx.Response(404, request=httpx.Request("GET", url)))
        return str(root / repo_id)

    monkeypatch.setattr(hub_mixin, "HfApi", FakeApi)
    monkeypatch.setattr(hub_mixin, "hf_hub_download", download)     # config.json, read by the mixin
    monkeypatch.setattr(mgnet.weights, "hf_hub_download", download)  # the weights, read by mgnet
    monkeypatch.setattr(mgnet.weights, "snapshot_download", snapshot)  # a Hub id given for a folder (--checkpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                        # a call that slipped past the fakes fails
    return root, calls


def small_model():
    torch.manual_seed(0)
    return MGNet(MGNetConfig(n_iter=2, epochs=3, log_dir="/secret/logs")).eval()


def test_push_to_hub_uploads_a_weights_folder_and_from_pretrained_loads_it(fake_hub):
    root, calls = fake_hub
    m = small_model()
    url = m.push_to_hub("someone/mgnet-digits", private=True)
    assert url.startswith("https://huggingface.co/someone/mgnet-digits")
    assert calls[0] == ("create_repo", "someone/mgnet-digits", True)
    assert calls[1] == ("upload_folder", "someone/mgnet-digits", "model", [CARD_NAME, CONFIG_NAME, WEIGHTS_NAME])
    repo = root / "someone/mgnet-digits"
    cfg = json.loads((repo / CONFIG_NAME).read_text())
    assert cfg["n_iter"] == 2 and "epochs" not in cfg and "log_dir" not in cfg          # the network, not the run
    assert CARD_MARK in (repo / CARD_NAME).read_text() and "library_name: mgnet" in (repo / CARD_NAME).read_text()
    assert set(load_file(repo / WEIGHTS_NAME)) == set(m.state_dict())

    m2 = MGNet.from_pretrained("someone/mgnet-digits")
    assert ("download", "someone/mgnet-digits", CONFIG_NAME) in calls
    assert ("download", "someone/mgnet-digits", WEIGHTS_NAME) in calls
    assert m2.cfg == m.cfg and not m2.training
    x = torch.randn(2, 1, 64, 64)
    assert torch.equal(m2(x).logits, m(x).logits)


def test_save_pretrained_can_push_too(fake_hub, tmp_path):
    root, calls = fake_hub
    m = small_model()
    d = m.save_pretrained(tmp_path / "local", push_to_hub=True, repo_id="someone/copy")
    assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in (root / "someone/copy").iterdir())
    assert (d / WEIGHTS_NAME).read_bytes() == (root / "someone/copy" / WEIGHTS_NAME).read_bytes()
    with pytest.raises(FileNotFoundError, match="someone/absent"):
        MGNet.from_pretrained("someone/absent")


def test_hub_ids_wherever_a_folder_is_taken(fake_hub, tmp_path):
    "load_checkpoint, mgnet predict, mgnet test and the explorer take `user/repo`; one that is not there: one line."
    root, calls = fake_hub
    m = small_model()
    m.push_to_hub("someone/digits")
    m2 = load_checkpoint("someone/digits")
    assert ("snapshot", "someone/digits", [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]) in calls
    x = torch.randn(2, 1, 64, 64)
    assert m2.hub_id == "someone/digits" and torch.equal(m2(x).logits, m.eval()(x).logits)
    (tmp_path / "imgs").mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "imgs" / "a.png")
    p = in_process(predict_main, "imgs", "--checkpoint", "someone/digits", "--json", "p.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(json.loads((tmp_path / "p.json").read_text())["predictions"][0]["glimpses"]) == 2
    t = in_process(main, "test", "--checkpoint", "someone/digits", "--limit_val", 2, "--batch_size", 4,
                   "--results", "t.json", cwd=tmp_path)
    assert t.returncode == 0, t.stderr[-2000:]
    assert len(json.loads((tmp_path / "t.json").read_text())["clean_acc"]) == 2
    ex = ImageExplorer("someone/digits", images=tmp_path / "imgs")
    assert ex.names == ["someone/digits"] and ex.n_items == 1
    for cmd, args in ((predict_main, ("imgs",)), (main, ("test",))):
        r = in_process(cmd, *args, "--checkpoint", "someone/absent", cwd=tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "someone/absent: not a file or folder here, and no such model repository on the Hugging Face Hub" \
            in r.stderr, r.stderr
