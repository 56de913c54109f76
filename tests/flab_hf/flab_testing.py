"""Tiny random Qwen2, Qwen3 and Llama models and a small byte-level BPE tokenizer, built in code.

A uniquely named module (not ``conftest``): several test folders of this repository have a ``conftest.py``, and
``from conftest import ...`` would pick whichever was imported first.
"""

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n",
    "for i in range(10):\n    print(i * i)\n",
    "import os\nimport sys\n\ndef main(argv):\n    return len(argv)\n",
    "x = {'key': [1, 2, 3], 'other': (4, 5)}\nif x:\n    y = x['key'][0]\n",
]
PROSE = [
    "The quick brown fox jumps over the lazy dog while zebras quietly graze in Vermont.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein; élan, façade, naïve cooperation.",
    "Quantum chromodynamics describes gluons, quarks and hadronization phenomena.",
]
FAMILY_NAMES = ["llama", "qwen2", "qwen3"]
FAMILIES = {
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    "llama": (LlamaConfig, LlamaForCausalLM),
}


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((CODE + PROSE) * 4, trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer():
    """A fresh byte-level BPE fast tokenizer (~420 tokens) trained on a few code and prose snippets."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )


def tiny_model(family: str = "llama", layers: int = 4, tie: bool = True, vocab_size: int | None = None, **overrides):
    """A tiny random causal LM of ``family`` (hidden 32, FFN 64) matching :func:`tiny_tokenizer`."""
    config_class, model_class = FAMILIES[family]
    settings = dict(
        vocab_size=vocab_size or len(tiny_tokenizer()),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=tie,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    if family == "qwen3":
        settings["head_dim"] = 8
    settings.update(overrides)
    torch.manual_seed(0)
    model = model_class(config_class(**settings)).eval()
    # larger random weights than the 0.02 default so that layers and neurons matter measurably
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and "embed" not in name:
                parameter.normal_(0, 0.15)
    return model
