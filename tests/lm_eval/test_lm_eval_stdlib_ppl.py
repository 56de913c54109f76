"""The ``stdlib_code_ppl`` lm-evaluation-harness task on our remote-code checkpoints, through its entry points.

Each checkpoint is saved as a user gets it, then evaluated in a fresh process where this repository's packages cannot
be imported (so the model loads through ``trust_remote_code``): the Flab checkpoint by the ``lm_eval run`` CLI, the
packed XTC checkpoint by ``lm_eval.simple_evaluate`` (see ``API`` for why). The harness's per-file log-likelihoods
and its byte/word perplexities must equal our own computation of the same quantity.
"""

import glob
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

pytest.importorskip("lm_eval")

TASKS = Path(__file__).resolve().parent / "tasks"
sys.path.insert(0, str(TASKS))
from stdlib_code_ppl import read_docs  # noqa: E402  (the task's own document loader)

MAX_LENGTH = 64  # tokens per window: every held-out file needs several, so the rolling windows are exercised
CODE = [  # calibration / tokenizer text; the held-out task documents stay unseen
    "def add(a, b):\n    return a + b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
    "        self.items.append(item)\n",
    "for i in range(10):\n    print(i * i)\n",
    'import os\nimport sys\n\ndef main(argv):\n    """Run."""\n    return len(argv)\n',
    "x = {'key': [1, 2, 3], 'other': (4, 5)}\nif x:\n    y = x['key'][0]\n",
]
BLOCK = """
import sys
for name in ("alpine_hf", "flab_hf", "xtc_hf", "model_cards"):
    sys.modules[name] = None  # as on a user's machine: the checkpoint's own code must do
"""
# `lm_eval run --model hf --model_args pretrained=<folder>,trust_remote_code=True,...`, the command users type
CLI = (
    BLOCK
    + """
from lm_eval.__main__ import cli_evaluate
sys.argv = ["lm_eval", *sys.argv[1:]]
cli_evaluate()
"""
)


def tiny_tokenizer():
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>"],
                                  initial_alphabet=alphabet, show_progress=False)  # fmt: skip
    tokenizer.train_from_iterator(CODE * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")  # fmt: skip


def flab_checkpoint(folder):
    """A tiny Llama pruned by flab_hf to per-layer FFN widths: saved as a `flab_llama` remote-code checkpoint."""
    from flab_hf import FlabConfig, flab_prune, save_pruned

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    dense = LlamaForCausalLM(config).eval()
    recipe = FlabConfig(layers_to_prune=1, ffn_neurons=[8, 24, 40], calibration_samples=2, calibration_length=16,
                        progress=False)  # fmt: skip
    model, tokenizer, report = flab_prune(dense, tokenizer, CODE * 3, recipe)
    save_pruned(model, tokenizer, folder, report)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model_type"] == "flab_llama" and len(set(saved["intermediate_sizes"])) > 1 and "auto_map" in saved
    return model.eval(), tokenizer


def xtc_checkpoint(folder):
    """A tiny GPT-2 compressed by xtc_hf (half the layers, 1-bit packed weights, int8 activations)."""
    from xtc_hf import XTCGPT2LMHeadModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=32, n_head=2, vocab_size=len(tokenizer), n_positions=128,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    model = XTCGPT2LMHeadModel.from_gpt2(GPT2LMHeadModel(config), teacher_layers=[0, 2], weight_bits=1,
                                         activation_bits=8).eval().pack_()  # fmt: skip
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model_type"] == "xtc_gpt2" and "auto_map" in saved
    return model, tokenizer


def rolling_loglikelihood(model, tokenizer, text: str, max_length: int) -> tuple[float, int]:
    """Sum of log p(token | earlier tokens) over a document and its token count.

    The stream ``[BOS] + tokens`` is cut into disjoint chunks of ``max_length`` predicted tokens; each chunk is
    predicted from the ``max_length`` inputs that end just before its last token (fixed-length-model perplexity with
    stride = context, the last, shorter chunk seeing a full context): the harness's ``loglikelihood_rolling``.
    """
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    stream = torch.tensor([prefix] + tokenizer(text)["input_ids"])
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(stream) - 1, max_length):
            end = min(start + max_length, len(stream) - 1)  # predict stream[start + 1 : end + 1]
            inputs = stream[max(0, end - max_length) : end]
            log_probs = model(inputs[None]).logits[0].float().log_softmax(-1)[-(end - start) :]
            total += log_probs.gather(-1, stream[start + 1 : end + 1, None]).sum().item()
    return total, len(stream) - 1


def _run(command, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": "",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]


def run_cli(folder, tmp_path):
    """``lm_eval run`` on the checkpoint folder; returns the aggregated results and the per-file samples."""
    output = tmp_path / "out"
    _run([CLI, "run", "--model", "hf",
          "--model_args", f"pretrained={folder},trust_remote_code=True,dtype=float32,max_length={MAX_LENGTH}",
          "--tasks", "stdlib_code_ppl", "--include_path", str(TASKS), "--batch_size", "4", "--device", "cpu",
          "--output_path", str(output), "--log_samples"], tmp_path)  # fmt: skip
    (results_file,) = glob.glob(str(output / "**" / "results_*.json"), recursive=True)
    (samples_file,) = glob.glob(str(output / "**" / "samples_stdlib_code_ppl_*.jsonl"), recursive=True)
    results = json.loads(Path(results_file).read_text())
    assert results["config"]["model_args"]["trust_remote_code"] in (True, "True")
    samples = [json.loads(line) for line in Path(samples_file).read_text().splitlines() if line.strip()]
    return results["results"], samples


@pytest.mark.parametrize("build", [flab_checkpoint, xtc_checkpoint], ids=["flab_llama", "xtc_gpt2"])
def test_harness_perplexity_equals_our_computation(build, tmp_path):
    """The real ``lm_eval run --model hf`` CLI, loading each checkpoint through its remote code."""
    model, tokenizer = build(tmp_path / "checkpoint")
    results, samples = run_cli(tmp_path / "checkpoint", tmp_path)
    samples = sorted(samples, key=lambda sample: sample["doc_id"])

    docs = read_docs()
    assert [sample["doc_id"] for sample in samples] == list(range(len(docs)))
    total_ll = total_bytes = total_words = 0
    for doc, sample in zip(docs, samples):
        ours, tokens = rolling_loglikelihood(model, tokenizer, doc["text"], MAX_LENGTH)
        assert tokens > 2 * MAX_LENGTH  # several windows per file
        theirs, n_bytes = sample["byte_perplexity"]
        assert n_bytes == len(doc["text"].encode("utf-8"))  # the harness scored the whole, unmodified file
        assert sample["word_perplexity"][1] == len(re.split(r"\s+", doc["text"]))
        assert math.isfinite(theirs) and theirs < 0
        assert theirs == pytest.approx(ours, rel=1e-5)
        total_ll, total_bytes = total_ll + ours, total_bytes + n_bytes
        total_words += len(re.split(r"\s+", doc["text"]))

    scores = results["stdlib_code_ppl"]
    assert all(
        math.isfinite(scores[f"{name},none"]) for name in ("word_perplexity", "byte_perplexity", "bits_per_byte")
    )
    assert scores["byte_perplexity,none"] == pytest.approx(math.exp(-total_ll / total_bytes), rel=1e-5)
    assert scores["bits_per_byte,none"] == pytest.approx(-total_ll / total_bytes / math.log(2), rel=1e-5)
    assert scores["word_perplexity,none"] == pytest.approx(math.exp(-total_ll / total_words), rel=1e-4)


def test_shipped_documents_are_held_out_by_every_package():
    from compress_utils.corpus import split_of

    docs = read_docs()
    assert len(docs) >= 3 and all(doc["text"].strip() for doc in docs)
    assert all(split_of(doc["path"]) == "test" for doc in docs)  # the split every method package holds out
