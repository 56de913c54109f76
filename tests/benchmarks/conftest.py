"""Fixtures of the benchmark tests: a tiny BERT checkpoint with the embedded MiniLM tokenizer."""

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from compress_utils.embedded import minilm_dir


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT (hidden 32) saved with the real MiniLM tokenizer, for fine-tuning runs of a few seconds."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
