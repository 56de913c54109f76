"""``flab-hf`` command line on a tiny saved model and a directory corpus."""

import json

import pytest

from flab_hf.cli import build_parser, main
from flab_hf.data import split_of, stdlib_texts


def test_prune_command(folders, capsys):
    model_dir, corpus_dir, output = folders
    args = ["--quiet", "prune", "--model", str(model_dir), "--corpus", str(corpus_dir), "--output", str(output),
            "--layers", "1", "--ffn-neurons", "8,16,24", "--calibration-samples", "2", "--calibration-length", "16"]  # fmt: skip
    assert main(args) == 0
    config = json.loads((output / "config.json").read_text())
    assert config["model_type"] == "flab_qwen2" and config["intermediate_sizes"] == [56, 48, 40]
    assert json.loads(capsys.readouterr().out)["removed_layers"]


def test_prune_command_bad_input_writes_nothing(folders, capsys):
    model_dir, corpus_dir, output = folders
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "prune", "--model", str(model_dir), "--corpus", str(corpus_dir), "--output", str(output),
              "--layers", "9"])  # fmt: skip
    assert exit_info.value.code == 2 and "layers_to_prune" in capsys.readouterr().err
    assert not output.exists()


def test_parser_has_all_commands():
    parser = build_parser()
    for command in ("prune --output x", "recover --model m --output x"):
        assert parser.parse_args(command.split()).command == command.split()[0]
    for moved in ("eval --model m", "bench"):  # `python -m benchmarks flab-humaneval|flab`
        with pytest.raises(SystemExit):
            parser.parse_args(moved.split())


def test_stdlib_splits_are_disjoint_and_stable():
    assert {split_of(f"pkg/module_{i}.py") for i in range(200)} == {"train", "valid", "test"}
    test = stdlib_texts("test", max_chars=200_000)
    assert test and all(isinstance(text, str) for text in test)
    with pytest.raises(ValueError, match="split"):
        stdlib_texts("dev")
