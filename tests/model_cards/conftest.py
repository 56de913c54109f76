"""A tiny zoo, built once per test session: every entry with a budget of seconds (tiny BERT for ALPINE, tiny Llama
for Flab, tiny GPT-2 teacher for XTC)."""

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


def tiny_overrides(dense_folder, bert_folder=None) -> dict:
    alpine = {**TINY_ALPINE, "model": str(bert_folder)} if bert_folder else TINY_ALPINE
    return {"alpine-minilm": alpine, "xtc": TINY_XTC, "flab": {**TINY_FLAB, "model": str(dense_folder)}}


def tiny_bert(folder) -> None:
    """A 2-layer, 32-wide random BERT with all-MiniLM-L6-v2's tokenizer, saved to ``folder``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from compress_utils.embedded import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """``(settings, results)`` of a complete tiny zoo (all five entries, with cards and index)."""
    import zoo_testing

    from model_cards.zoo import ZooSettings, build_zoo

    root = tmp_path_factory.mktemp("tiny-zoo")
    dense = root / "tiny-llama"
    zoo_testing.llama(layers=4).save_pretrained(dense)
    zoo_testing.bpe_tokenizer().save_pretrained(dense)
    tiny_bert(root / "tiny-bert")
    overrides = tiny_overrides(dense, root / "tiny-bert")
    settings = ZooSettings(
        output_dir=str(root / "zoo"), work_dir=str(root / "work"), overrides=overrides, progress=False
    )
    results = build_zoo(None, settings)
    return settings, results


def read_results(folder) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())
