"""``optimum-cli alpine convert|flab prune|xtc compress``: found by the real optimum-cli in the
``optimum.commands.register`` namespace, light at start-up, and sharing their arguments with our own CLIs."""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, RobertaConfig, RobertaModel

from alpine_hf import AlpineRobertaModel
from alpine_hf.recipe import AlpinePruningConfig, apply_alpine

REPO = Path(__file__).resolve().parents[2]
OPTIMUM_CLI = os.path.join(os.path.dirname(sys.executable), "optimum-cli")
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def optimum_cli(*args, cwd, timeout=300):
    return subprocess.run(
        [OPTIMUM_CLI, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def test_namespace_module_sits_next_to_the_real_optimum():
    spec = importlib.util.find_spec("optimum.commands.register")
    assert spec is not None, "codecompress-hf is not installed (run `make install`)"
    locations = [os.path.abspath(path) for path in spec.submodule_search_locations]
    assert str(REPO / "optimum" / "commands" / "register") in locations
    # PEP 420 on our side: an __init__.py here would shadow the real optimum package
    for folder in ("optimum", "optimum/commands", "optimum/commands/register"):
        assert not (REPO / folder / "__init__.py").exists()
    assert not importlib.util.find_spec("optimum.commands.base").origin.startswith(str(REPO / "optimum"))


def test_optimum_cli_lists_and_runs_our_commands(tmp_path):
    result = optimum_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    listed = set(re.search(r"\{([^}]*)\}", result.stdout).group(1).split(","))
    assert {"alpine", "flab", "xtc", "export", "env"} <= listed  # ours, next to optimum's own
    for command, option in (("alpine convert", "--num-labels"), ("flab prune", "--ffn-neurons"), ("xtc compress", "--teacher")):  # fmt: skip
        result = optimum_cli(*command.split(), "--help", cwd=tmp_path)
        assert result.returncode == 0 and option in result.stdout, result.stderr[-2000:]
    result = optimum_cli("xtc", "compress", "--output-dir", "x", cwd=tmp_path)  # argparse errors come from our parser
    assert result.returncode == 2 and "--teacher" in result.stderr


START_UP = """
import json, sys
sys.argv = ["optimum-cli", "--help"]
from optimum.commands.optimum_cli import main
try:
    main()
except SystemExit:  # argparse exits after printing the help
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_optimum_cli_start_up_does_not_import_torch(tmp_path):
    """optimum-cli imports every registered module on each start (even for `optimum-cli export`): ours stays light.

    Our subcommands' options come from the recipe dataclasses (torch, transformers), so they are filled in only when
    that subcommand is parsed or its help printed (`optimum-cli xtc compress --help` is tested above)."""
    result = subprocess.run(
        [sys.executable, "-c", START_UP], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "xtc" in result.stdout, result.stderr[-2000:]
    imported = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "optimum.commands.register.codecompress_hf" in imported
    assert not imported & {"torch", "transformers", "alpine_hf", "flab_hf", "xtc_hf"}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings} | {
        action.dest for action in parser._actions if not action.option_strings
    }


@pytest.mark.parametrize(
    ("package", "command", "class_name", "front_door_options"),
    [
        ("alpine_hf", "convert", "AlpineConvertCommand", {"--quiet"}),
        ("flab_hf", "prune", "FlabPruneCommand", {"--quiet", "--threads"}),
        ("xtc_hf", "compress", "XTCCompressCommand", {"--quiet"}),
    ],
)
def test_both_front_doors_share_one_argument_definition(package, command, class_name, front_door_options):
    from optimum.commands.register import codecompress_hf

    ours = importlib.import_module(f"{package}.cli").build_parser()
    subparser = next(a for a in ours._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    assert subparser.get_default("func").__name__ == f"run_{command}"
    via_optimum = argparse.ArgumentParser()
    getattr(codecompress_hf, class_name).parse_args(via_optimum)
    assert _options(via_optimum) == {"-h", "--help"}  # filled lazily, when parsed or its help is printed
    via_optimum.format_help()
    # optimum-cli has no top-level --quiet/--threads, so its subcommand adds them; nothing else differs
    assert _options(via_optimum) - _options(subparser) == front_door_options
    assert _options(subparser) <= _options(via_optimum)


def test_optimum_cli_alpine_convert_end_to_end(tmp_path):
    torch.manual_seed(0)
    config = RobertaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=99,
        max_position_embeddings=66, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    RobertaModel(config).save_pretrained(tmp_path / "stock")
    result = optimum_cli(
        "alpine", "convert", tmp_path / "stock", tmp_path / "alpine", "--layers", "0", "--alpha", "0.5",
        "--no-tokenizer", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Saved AlpineRobertaModel" in result.stdout
    loaded = AutoModel.from_pretrained(tmp_path / "alpine").eval()
    assert isinstance(loaded, AlpineRobertaModel)
    assert loaded.config.alpine_layers == [0] and loaded.config.alpine_alpha == 0.5
    expected_model = apply_alpine(
        RobertaModel.from_pretrained(tmp_path / "stock"), AlpinePruningConfig(alpha=0.5, layers=[0])
    ).eval()
    ids = torch.tensor([[0, *range(10, 40), 2], [0, *range(50, 70), 2, *[1] * 10]])
    mask = (ids != 1).long()
    with torch.no_grad():
        got, expected = loaded(input_ids=ids, attention_mask=mask), expected_model(input_ids=ids, attention_mask=mask)
    assert got.last_hidden_state.shape[1] < ids.shape[1]  # ALPINE really pruned tokens after layer 0
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, rtol=0, atol=0)
