"""``zoo build`` with a tiny budget: entry folder, resume by skipping, index, bad entry names."""

import json
import os

import pytest

from model_cards.cli import main
from model_cards.zoo import ZooSettings, build_entry, is_complete

TINY = {"alpine-minilm": {"train_pairs": 16, "eval_pairs": 8, "max_length": 64, "batch_size": 8}}


def test_zoo_builds_alpine_entry_and_skips_it_when_complete(tmp_path):
    args = ["build", "alpine-minilm", "--output-dir", str(tmp_path / "zoo"), "--work-dir", str(tmp_path / "work")]
    assert main([*args, "--overrides", json.dumps(TINY)]) == 0
    folder = tmp_path / "zoo" / "alpine-minilm"
    assert is_complete(folder)
    assert {"modeling_alpine.py", "configuration_alpine.py", "tokenizer.json"} <= set(os.listdir(folder))
    results = json.loads((folder / "results.json").read_text())
    assert set(results["modes"]) == {"none", "all"} and "retention_f1" in results["modes"]["all"]
    assert "| alpine-minilm |" in (tmp_path / "zoo" / "README.md").read_text()
    assert not [name for name in os.listdir(tmp_path / "zoo") if name.startswith(".")]  # nothing half-written
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    settings = ZooSettings(output_dir=str(tmp_path / "zoo"), work_dir=str(tmp_path / "work"), overrides=TINY)
    assert build_entry("alpine-minilm", settings) == results
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_unknown_entry_lists_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["build", "bert-xxl", "--output-dir", str(tmp_path)])
    assert "valid entries: alpine-minilm, xtc-gpt2-1w8a6l, xtc-gpt2-teacher" in capsys.readouterr().err


def test_zoo_builds_xtc_entries_with_results_and_index(tmp_path):
    tiny = {"xtc": {"minutes": 1.0, "teacher_steps": 3, "steps": 2, "samples": 2}}
    settings = ZooSettings(output_dir=str(tmp_path / "zoo"), work_dir=str(tmp_path / "work"), overrides=tiny)
    from model_cards.zoo import build_zoo

    results = build_zoo(["xtc-gpt2-teacher", "xtc-gpt2-1w8a6l"], settings)
    student = tmp_path / "zoo" / "xtc-gpt2-1w8a6l"
    assert is_complete(student) and is_complete(tmp_path / "zoo" / "xtc-gpt2-teacher")
    assert {"modeling_xtc.py", "configuration_xtc.py"} <= set(os.listdir(student))
    assert results["xtc-gpt2-1w8a6l"]["disk_ratio"] > 10  # packed 1-bit weights, measured on the files
    index = (tmp_path / "zoo" / "README.md").read_text()
    assert "| xtc-gpt2-1w8a6l | line completion | ES |" in index and "| xtc-gpt2-teacher |" in index
