"""Tiny ALPINE models built in code (transformers' ``*ModelTester`` sizes) for fast, deterministic tests.

A uniquely named module (not ``conftest``): several test folders have a ``conftest.py``, and ``from conftest import``
picks whichever was loaded first when pytest is given several folders.
"""

import torch
from transformers import BertConfig, RobertaConfig

from alpine_hf import AlpineBertConfig, AlpineRobertaConfig

TINY = dict(
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=64,
    vocab_size=99,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
# RoBERTa: <s>=0, <pad>=1, </s>=2 (stock defaults). BERT: [PAD]=0, [CLS]=3, [SEP]=4 in these tests.
BERT_SPECIAL = [3, 4]


def tiny_config(family: str, alpine: bool = True, **overrides):
    """A tiny stock or ALPINE config of the given family (``"roberta"`` or ``"bert"``)."""
    settings = {**TINY, **overrides}
    if family == "roberta":
        settings.setdefault("max_position_embeddings", 66)
        return AlpineRobertaConfig(**settings) if alpine else RobertaConfig(**settings)
    settings.setdefault("max_position_embeddings", 64)
    if alpine:
        settings.setdefault("alpine_special_token_ids", BERT_SPECIAL)
        return AlpineBertConfig(**settings)
    return BertConfig(**settings)


def special_ids(family: str) -> tuple[int, int, int]:
    """(cls, sep, pad) ids of the tiny configs."""
    return (0, 2, 1) if family == "roberta" else (3, 4, 0)


def make_batch(family: str, lengths, seed: int = 0, pair_at: int | None = None):
    """Right-padded ``input_ids``/``attention_mask`` of ``<cls> tokens <sep> [<sep> tokens <sep>] <pad>...``."""
    cls, sep, pad = special_ids(family)
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, length in enumerate(lengths):
        body = torch.randint(5, 99, (length,), generator=generator)
        body[0], body[-1] = cls, sep
        if pair_at is not None and length > pair_at + 2:
            body[pair_at], body[pair_at + 1] = sep, sep  # RoBERTa pairs: </s></s>; BERT would use one [SEP]
        input_ids[row, :length] = body
        mask[row, :length] = 1
    return input_ids, mask
