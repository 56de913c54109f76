"""A tiny zoo, built once per test session: every entry with a budget of seconds (tiny Llama for Flab)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # zoo_testing, importable from every test module here

TINY_ALPINE = {"train_pairs": 16, "eval_pairs": 8, "max_length": 64, "batch_size": 8}
# a 12-block (so 6L keeps 6), 64-wide teacher on 40 files: the zoo tests check the pipeline and its files, not quality
TINY_TEACHER = {"n_layer": 12, "n_embd": 64, "n_head": 2, "n_positions": 256, "vocab_size": 512, "block_size": 32,
                "max_files": 40}  # fmt: skip
TINY_XTC = {"minutes": 1.0, "teacher_steps": 3, "steps": 2, "samples": 2, "teacher": TINY_TEACHER, "train_files": 40}
TINY_FLAB = {
    "base_model": "test-org/tiny-llama", "corpus_chars": 30000, "layers_to_prune": 1, "ffn_neurons": [8, 16, 24],
    "calibration_samples": 2, "calibration_length": 16, "eval_windows": 2, "eval_length": 32, "humaneval": 1,
    "humaneval_max_new_tokens": 4, "recovery_samples": 2, "recovery_epochs": 1.0, "teacher_max_new_tokens": 4,
}  # fmt: skip


def tiny_overrides(dense_folder) -> dict:
    return {"alpine-minilm": TINY_ALPINE, "xtc": TINY_XTC, "flab": {**TINY_FLAB, "model": str(dense_folder)}}


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """``(settings, results)`` of a complete tiny zoo (all five entries, with cards and index)."""
    import zoo_testing

    from model_cards.zoo import ZooSettings, build_zoo

    root = tmp_path_factory.mktemp("tiny-zoo")
    dense = root / "tiny-llama"
    zoo_testing.llama(layers=4).save_pretrained(dense)
    zoo_testing.bpe_tokenizer().save_pretrained(dense)
    settings = ZooSettings(
        output_dir=str(root / "zoo"), work_dir=str(root / "work"), overrides=tiny_overrides(dense), progress=False
    )
    results = build_zoo(None, settings)
    return settings, results


def read_results(folder) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())
