"""``python -m benchmarks xtc-eval --json``: the scores and every sample's target and prediction, on a tiny GPT-2."""

import json

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from benchmarks.cli import main
from benchmarks.xtc_teacher import train_tokenizer


def test_xtc_eval_writes_scores_and_predictions(tmp_path, capsys):
    folder = tmp_path / "tiny-gpt2"
    tokenizer = train_tokenizer(["def f(x):\n    return x + 1\n" * 20, "import os\nprint(os.sep)\n" * 20], 300)
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "scores.json"
    assert main(["--quiet", "xtc-eval", "--model", str(folder), "--samples", "3", "--json", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    assert written["em"] == printed["em"] and written["es"] == printed["es"] and written["n"] == 3
    assert [sorted(row) for row in written["samples"]] == [["path", "prediction", "target"]] * 3
    assert all(row["target"] for row in written["samples"])  # targets are non-blank code lines
    assert written["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
