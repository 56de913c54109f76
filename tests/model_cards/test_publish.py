"""``zoo publish``: folders that would not load are refused with nothing written; ``--to-cache`` round trips."""

import json
import os
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
import zoo_testing
from zoo_testing import read_results

from model_cards.cli import main
from model_cards.publish import (
    PublishError,
    content_revision,
    missing_pieces,
    publish_to_cache,
    publish_to_hub,
    repo_cache_folder,
)


@pytest.fixture(scope="module")
def xtc_folder(tmp_path_factory):
    """A saved tiny XTC student (remote code in auto_map) with its tokenizer."""
    folder = tmp_path_factory.mktemp("xtc") / "checkpoint"
    model, tokenizer = zoo_testing.xtc_student()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _shard(folder: Path):
    """Pretend the weights were sharded and one shard went missing."""
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


BREAKAGES = {
    "config": (lambda f: (f / "config.json").unlink(), "config.json"),
    "weights": (lambda f: (f / "model.safetensors").unlink(), "weights (model.safetensors or pytorch_model.bin)"),
    "shard": (_shard, "weight shard model-00002-of-00002.safetensors"),
    "tokenizer": (lambda f: [(f / n).unlink() for n in ("tokenizer.json", "tokenizer_config.json")], "tokenizer"),
    "modeling code": (lambda f: (f / "modeling_xtc.py").unlink(), "modeling_xtc.py (remote code"),
    "configuration code": (lambda f: (f / "configuration_xtc.py").unlink(), "configuration_xtc.py (remote code"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_refuses_a_folder_that_would_not_load_and_writes_nothing(xtc_folder, tmp_path, breakage, capsys, monkeypatch):
    folder = tmp_path / "broken"
    shutil.copytree(xtc_folder, folder)
    breaker, named = BREAKAGES[breakage]
    breaker(folder)
    assert any(named in piece for piece in missing_pieces(folder)), missing_pieces(folder)
    cache = tmp_path / "cache"
    with pytest.raises(PublishError, match="nothing was published") as error:
        publish_to_cache(folder, "codecompress-hf/broken", cache_dir=cache)
    assert named in str(error.value)
    assert main(["publish", str(folder), "--repo-id", "org/broken", "--to-cache", "--cache-dir", str(cache)]) == 1
    assert named in capsys.readouterr().err
    assert not cache.exists()  # nothing written

    class NoUploads:
        def __init__(self, *args, **kwargs):
            raise AssertionError("an invalid folder must not reach the Hub")

    monkeypatch.setattr(huggingface_hub, "HfApi", NoUploads)
    with pytest.raises(PublishError, match="nothing was published"):
        publish_to_hub(folder, "codecompress-hf/broken", token="hf_test")


def test_complete_folder_has_nothing_missing(xtc_folder):
    assert missing_pieces(xtc_folder) == []
    assert missing_pieces(xtc_folder / "nope") == [f"folder {xtc_folder / 'nope'} does not exist"]


@pytest.mark.parametrize("repo_id", ["noorg", "a/b/c", "org/na me", "org/a--b", ""])
def test_bad_repo_id_is_refused(xtc_folder, tmp_path, repo_id):
    with pytest.raises(PublishError, match="ORG/NAME"):
        publish_to_cache(xtc_folder, repo_id, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


MODELS = {
    "alpine": (lambda: (zoo_testing.alpine_classifier(), zoo_testing.roberta_tokenizer()),
               "AutoModelForSequenceClassification"),
    "flab": (zoo_testing.flab_non_uniform, "AutoModelForCausalLM"),
    "xtc": (zoo_testing.xtc_student, "AutoModelForCausalLM"),
}  # fmt: skip


@pytest.mark.parametrize("family", list(MODELS))
def test_to_cache_round_trip_loads_by_repo_id(family, tmp_path):
    import transformers

    build, auto = MODELS[family]
    model, tokenizer = build()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cache, repo_id = tmp_path / "hub", f"codecompress-hf/tiny-{family}"
    revision = publish_to_cache(folder, repo_id, cache_dir=cache)
    repo = repo_cache_folder(repo_id, cache)
    assert revision == content_revision(folder) and (repo / "refs" / "main").read_text() == revision
    snapshot = repo / "snapshots" / revision
    assert sorted(os.listdir(snapshot)) == sorted(os.listdir(folder))
    assert all((snapshot / name).is_symlink() and (snapshot / name).resolve().parent == repo / "blobs"
               for name in os.listdir(snapshot))  # fmt: skip
    ids = torch.tensor([tokenizer("def add(a, b):\n    return a + b\n")["input_ids"][:12]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    for pinned in (None, revision):
        loaded = getattr(transformers, auto).from_pretrained(
            repo_id, revision=pinned, cache_dir=cache, local_files_only=True, trust_remote_code=True
        )
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    reloaded = transformers.AutoTokenizer.from_pretrained(repo_id, cache_dir=cache, local_files_only=True)
    assert reloaded("def add(a, b):")["input_ids"] == tokenizer("def add(a, b):")["input_ids"]


def test_revision_is_deterministic_and_ignores_the_card(xtc_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(xtc_folder, folder)
    first = publish_to_cache(folder, "org/model", cache_dir=tmp_path / "cache")
    assert publish_to_cache(folder, "org/model", cache_dir=tmp_path / "cache") == first
    (folder / "README.md").write_text("# a card that names the revision\n")
    assert content_revision(folder) == first  # the card is not part of the hash: it names the revision
    assert publish_to_cache(folder, "org/model", cache_dir=tmp_path / "cache") == first
    snapshot = repo_cache_folder("org/model", tmp_path / "cache") / "snapshots" / first
    assert (snapshot / "README.md").read_text() == "# a card that names the revision\n"
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "pad_token_id": 1}))
    second = publish_to_cache(folder, "org/model", cache_dir=tmp_path / "cache", ref="dev")
    refs = repo_cache_folder("org/model", tmp_path / "cache") / "refs"
    assert second != first and (refs / "dev").read_text() == second and (refs / "main").read_text() == first
    assert not [p for p in refs.parent.rglob(".*")]  # no temporary files left


def test_cli_to_cache_prints_the_revision(tiny_zoo, tmp_path, capsys):
    settings, _ = tiny_zoo
    folder = Path(settings.output_dir) / "xtc-gpt2-1w8a6l"
    args = ["publish", str(folder), "--repo-id", "codecompress-hf/xtc-gpt2-1w8a6l", "--to-cache"]
    assert main([*args, "--cache-dir", str(tmp_path)]) == 0
    revision = capsys.readouterr().out.strip().splitlines()[-1]
    assert revision == content_revision(folder) and f'"{revision}"' in (folder / "README.md").read_text()


class FakeApi:
    """Records what publish_to_hub asks of the Hub."""

    calls: list = []

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private))

    def create_branch(self, repo_id, branch, exist_ok=False):
        self.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return type("CommitInfo", (), {"oid": "c0ffee" * 6 + "abcd"})()

    def upload_file(self, **kwargs):
        self.calls.append(("upload_file", kwargs))


def test_hub_upload_pins_the_card_to_the_model_commit(tiny_zoo, monkeypatch):
    settings, _ = tiny_zoo
    folder = Path(settings.output_dir) / "alpine-minilm"
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    commit = publish_to_hub(folder, "my-org/alpine", revision="v1", private=True, token="hf_test")
    assert commit == "c0ffee" * 6 + "abcd"
    kinds = [call[0] for call in FakeApi.calls]
    assert kinds == ["init", "create_repo", "create_branch", "upload_folder", "upload_file"]
    assert FakeApi.calls[1] == ("create_repo", "my-org/alpine", True)
    upload = FakeApi.calls[3][1]
    assert (
        upload["folder_path"] == str(folder)
        and upload["revision"] == "v1"
        and "README.md" in upload["ignore_patterns"]
    )
    card = FakeApi.calls[4][1]
    text = card["path_or_fileobj"].decode()
    assert card["path_in_repo"] == "README.md" and f'repo, revision = "my-org/alpine", "{commit}"' in text
    assert read_results(folder)["command"] in text


def test_hub_upload_needs_network_and_token(xtc_folder, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE=1 is set.*--to-cache"):
        publish_to_hub(xtc_folder, "org/model", token="hf_test")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(PublishError, match="No Hugging Face token found"):
        publish_to_hub(xtc_folder, "org/model")

    class Unreachable(FakeApi):
        def create_repo(self, *args, **kwargs):
            raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub, "HfApi", Unreachable)
    with pytest.raises(PublishError, match="failed: ConnectionError: no route to host"):
        publish_to_hub(xtc_folder, "org/model", token="hf_test")
