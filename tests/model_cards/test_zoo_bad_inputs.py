"""Bad input to the zoo's front doors: publish refuses folders that would not load (checked from headers and JSON,
before anything is written), and ``zoo build --overrides`` names what is wrong."""

import json
import os
import shutil

import pytest
import zoo_testing

from model_cards.cli import main
from model_cards.publish import PublishError, missing_pieces, publish_to_cache, safetensors_problem


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved tiny packed XTC student (remote code in auto_map) with its tokenizer."""
    folder = tmp_path_factory.mktemp("xtc") / "checkpoint"
    model, tokenizer = zoo_testing.xtc_student()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])


BREAKAGES = {
    "0-byte weights": (lambda f: (f / "model.safetensors").write_bytes(b""), "too short for a safetensors header"),
    "truncated weights": (lambda f: _truncate(f / "model.safetensors", lambda n: n - 100), "truncated"),
    "header cut": (lambda f: _truncate(f / "model.safetensors", lambda n: 64), "truncated"),
    "padded weights": (lambda f: open(f / "model.safetensors", "ab").write(b"\0" * 16), "truncated or corrupted"),
    "header not JSON": (
        lambda f: (f / "model.safetensors").write_bytes((10).to_bytes(8, "little") + b"{not json}"),
        "header is not valid JSON",
    ),
    "config not JSON": (lambda f: (f / "config.json").write_text("{"), "a valid config.json"),
    "config a list": (lambda f: (f / "config.json").write_text("[]"), "a valid config.json (a JSON object"),
    "tokenizer config not JSON": (
        lambda f: (f / "tokenizer_config.json").write_text("{'a': 1}"),
        "a valid tokenizer_config.json",
    ),
    "index not JSON": (
        lambda f: (f / "model.safetensors.index.json").write_text("nope"),
        "a valid model.safetensors.index.json",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_publish_refuses_corrupt_files_and_writes_nothing(saved, tmp_path, capsys, breakage):
    folder = tmp_path / "broken"
    shutil.copytree(saved, folder)
    breaker, named = BREAKAGES[breakage]
    breaker(folder)
    before = sorted(os.listdir(folder))
    assert any(named in piece for piece in missing_pieces(folder)), missing_pieces(folder)
    cache = tmp_path / "cache"
    with pytest.raises(PublishError, match="nothing was published") as error:
        publish_to_cache(folder, "codecompress-hf/broken", cache_dir=cache)
    assert named in str(error.value)
    assert main(["publish", str(folder), "--repo-id", "org/broken", "--to-cache", "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    assert named in err and str(folder) in err and "Traceback" not in err
    assert not cache.exists() and sorted(os.listdir(folder)) == before


def test_a_complete_safetensors_file_has_no_problem(saved):
    assert safetensors_problem(saved / "model.safetensors") is None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ("[1, 2]", "`--overrides` must map budget keys to settings"),
        ('{"xtc": 3}', "`--overrides` must map budget keys to settings"),
        ("{xtc: {}}", "`--overrides` is not valid JSON"),
        ('{"bert": {"steps": 1}}', "unknown budget key 'bert'"),
        ('{"xtc": {"layers": 1}}', "`overrides['xtc']` has unknown settings ['layers']"),
        ('{"xtc": {"recipe": {"layers": 1}}}', "`overrides['xtc']['recipe']` has unknown settings ['layers']"),
        ('{"flab": {"prune": 4}}', "`overrides['flab']['prune']` must be a dict of FlabConfig settings, got 4."),
        ('{"flab": {"prune": {"layers_to_prune": -1}}}', "`overrides['flab']['prune']`: `layers_to_prune` must be"),
        ('{"flab": {"distill": {"train_tokens": 0}}}', "`overrides['flab']['distill']`: `train_tokens` must be"),
        ('{"flab": {"chat_share": 1.5}}', "`overrides['flab']`: `chat_share` must be a number in [0, 1], got 1.5."),
        ('{"flab": {"answers": 0}}', "`overrides['flab']`: `answers` must be an int >= 1, got 0."),
        (
            '{"flab": {"vocab_packages": ["no_such_package_here"]}}',
            "`overrides['flab']`: vocab_packages='no_such_package_here': no installed package of that import name",
        ),
        ('{"flab": {"recovery_samples": 4}}', "`overrides['flab']` has unknown settings ['recovery_samples']"),
    ],
)
def test_build_overrides_are_checked_before_building(tmp_path, capsys, overrides, named):
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--output-dir", str(tmp_path / "zoo"), "--work-dir", str(tmp_path / "work"),
              "--overrides", overrides])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_card_of_a_missing_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["card", str(tmp_path / "missing")])
    assert exit_info.value.code == 2 and str(tmp_path / "missing") in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_index_naming_a_missing_shard_is_refused(saved, tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(saved, folder)
    index = {"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(PublishError, match="weight shard model-00002-of-00002.safetensors"):
        publish_to_cache(folder, "codecompress-hf/sharded", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
