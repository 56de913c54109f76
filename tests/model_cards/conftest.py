"""A tiny zoo, built once per test session: every entry with a budget of seconds (tiny BERT for ALPINE, tiny Llama
for Flab, tiny GPT-2 teacher for XTC)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # zoo_testing, importable from every test module here

import zoo_testing  # noqa: E402
from zoo_testing import tiny_bert, tiny_overrides  # noqa: E402


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """``(settings, results)`` of a complete tiny zoo (all five entries, with cards and index)."""
    from model_cards.zoo import ZooSettings, build_zoo

    root = tmp_path_factory.mktemp("tiny-zoo")
    dense = root / "tiny-llama"
    zoo_testing.llama(layers=4, embed_std=0.3).save_pretrained(dense)  # peaked: distillation visibly helps
    zoo_testing.bpe_tokenizer().save_pretrained(dense)
    tiny_bert(root / "tiny-bert")
    overrides = tiny_overrides(dense, root / "tiny-bert")
    settings = ZooSettings(
        output_dir=str(root / "zoo"), work_dir=str(root / "work"), overrides=overrides, progress=False
    )
    results = build_zoo(None, settings)
    return settings, results
