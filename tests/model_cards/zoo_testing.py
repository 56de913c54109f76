"""Tiny checkpoints of the three families, built in code and saved the way the zoo saves them.

A uniquely named module (not ``conftest``): several test folders have a ``conftest.py``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CODE = [
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n        self.items.append(item)\n",
    "for i in range(10):\n    print(i * i)\n",
    "import os\nimport sys\n\ndef main(argv):\n    return len(argv)\n",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.lru_cache(maxsize=1)
def _bpe_json() -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CODE * 4, trainer=trainer)
    return tokenizer.to_str()


def bpe_tokenizer():
    """A byte-level BPE fast tokenizer (~300 tokens, SmolLM2-style special tokens and a chat template)."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_bpe_json()),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def roberta_tokenizer(vocab_size: int = 99):
    """A word-level tokenizer with RoBERTa's special ids (<s>=0, <pad>=1, </s>=2, <unk>=3) and ``vocab_size`` ids."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    words = sorted({word for text in CODE for word in text.split()})[: vocab_size - len(vocab)]
    vocab.update({word: index + 4 for index, word in enumerate(words)})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from tokenizers import processors

    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>",
    )  # fmt: skip


def alpine_classifier():
    """A tiny ALPINE RoBERTa classifier (hidden 32, 4 layers, vocab 99) pruning every layer."""
    from alpine_hf import AlpineRobertaConfig, AlpineRobertaForSequenceClassification

    torch.manual_seed(0)
    config = AlpineRobertaConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, vocab_size=99,
        max_position_embeddings=66, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2,
        alpine_layers="all", alpine_alpha=0.7,
    )  # fmt: skip
    return AlpineRobertaForSequenceClassification(config).eval()


def llama(layers: int = 4, vocab_size: int | None = None, embed_std: float | None = None):
    """A tiny random Llama (hidden 32, FFN 64) matching :func:`bpe_tokenizer`, weights large enough to matter.

    ``embed_std`` redraws the (tied) embeddings with that standard deviation: the default 0.02 gives nearly uniform
    next-token distributions (every KL tiny), a larger one peaked distributions a distillation can visibly match.
    """
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size or len(bpe_tokenizer()), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and "embed" not in name:
                parameter.normal_(0, 0.15)
            elif parameter.dim() == 2 and embed_std is not None:
                parameter.normal_(0, embed_std)
    return model


def flab_non_uniform():
    """A tiny Flab-pruned Llama with per-layer FFN widths (a ``FlabLlamaForCausalLM``) and its tokenizer."""
    from flab_hf import FlabConfig, flab_prune

    config = FlabConfig(layers_to_prune=1, ffn_neurons=[8, 24, 40], calibration_samples=2, calibration_length=16,
                        progress=False)  # fmt: skip
    model, tokenizer, _ = flab_prune(llama(), bpe_tokenizer(), CODE * 3, config)
    return model.eval(), tokenizer


def xtc_student():
    """A tiny GPT-2 compressed to XTC 1W8A on 2 of its 4 layers, packed (as saved by the zoo), and its tokenizer."""
    from xtc_hf import XTCGPT2LMHeadModel

    tokenizer = bpe_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=32, n_head=2, vocab_size=len(tokenizer), n_positions=64, bos_token_id=0,
                        eos_token_id=0, pad_token_id=0)  # fmt: skip
    teacher = GPT2LMHeadModel(config).eval()
    student = XTCGPT2LMHeadModel.from_gpt2(teacher, teacher_layers=[1, 3], weight_bits=1, activation_bits=8)
    return student.pack_().eval(), tokenizer


# budget overrides in the zoo's nested form: a dict under a recipe config's field sets that config's fields
# two seeds: the cards' mean +- std path runs for real
# the tiny BERT has 2 layers: the zoo's plan (every layer but the first, alpha 0.75) is spelled for it
TINY_PLAN = "layers=1;alpha=0.75"
TINY_ALPINE = {"finetune": {"train_pairs": 16, "eval_pairs": 8, "max_length": 64, "batch_size": 8, "seeds": 2,
                            "modes": ["none", TINY_PLAN]}}  # fmt: skip
# a 12-block (so 6L keeps 6), 64-wide teacher on 40 files: the zoo tests check the pipeline and its files, not quality
# (2 learning-curve samples: 50 would cost 40 s of generation here)
TINY_TEACHER = {"n_layer": 12, "n_embd": 64, "n_head": 2, "n_positions": 256, "vocab_size": 512, "block_size": 32,
                "max_files": 40, "minutes": 1.0, "steps": 3, "curve_samples": 2}  # fmt: skip
TINY_XTC = {"teacher": TINY_TEACHER, "recipe": {"layer_reduction_steps": 2, "quantization_steps": 2}, "samples": 2,
            "train_files": 40}  # fmt: skip
# distillation: 512 training tokens (16 steps of 2 x 16) from 20,000 characters of code and 2 answers of 8 tokens,
# the curve every 128 tokens on 2 validation windows. On the tiny zoo's Llama (embed_std=0.3) this lowers the
# held-out KL to dense by ~14% (0.558 -> 0.480) and the validation KL by ~8%; learning rates from 5e-4 to 2e-3 all
# lower both, 1e-2 overshoots.
TINY_DISTILL = {"train_tokens": 512, "block_size": 16, "batch_size": 2, "learning_rate": 1e-3, "curve_every": 128,
                "bf16": False}  # fmt: skip
TINY_FLAB = {
    "base_model": "test-org/tiny-llama", "corpus_chars": 30000, "vocab_packages": ["json"],
    "prune": {"layers_to_prune": 1, "ffn_neurons": [8, 16, 24], "calibration_samples": 2, "calibration_length": 16,
              "answer_prompts": 2, "answer_tokens": 8},
    "eval_windows": 4, "eval_length": 64, "humaneval": 1, "humaneval_max_new_tokens": 4,
    "distill": TINY_DISTILL, "answers": 2, "answer_tokens": 8, "train_chars": 20000, "train_package_chars": 16000,
    "curve_windows": 2,
}  # fmt: skip


def tiny_overrides(dense_folder, bert_folder=None) -> dict:
    alpine = TINY_ALPINE
    if bert_folder:
        alpine = {"finetune": {**TINY_ALPINE["finetune"], "model": str(bert_folder)}}
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


def read_results(folder) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())
