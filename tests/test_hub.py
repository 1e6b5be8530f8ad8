"""`push_to_hub` and `from_pretrained("user/repo")` offline: huggingface_hub's network calls are replaced by a fake Hub
(a folder per repository), so what would be uploaded and what a download gives back are checked without a network."""
import json
import shutil
from pathlib import Path

import huggingface_hub.hub_mixin as hub_mixin
import pytest
import torch
from safetensors.torch import load_file

import mgnet.weights
from mgnet import MGNet, MGNetConfig
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

    monkeypatch.setattr(hub_mixin, "HfApi", FakeApi)
    monkeypatch.setattr(hub_mixin, "hf_hub_download", download)     # config.json, read by the mixin
    monkeypatch.setattr(mgnet.weights, "hf_hub_download", download)  # the weights, read by mgnet
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
