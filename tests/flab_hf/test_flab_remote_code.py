"""Pruned checkpoints load in a fresh process where ``flab_hf`` cannot be imported."""

import json
import os

import pytest
import torch
from flab_testing import CODE, FAMILY_NAMES, tiny_model, tiny_tokenizer
from fresh_process import run_fresh_python

from flab_hf import FlabConfig, flab_prune, save_pruned

FRESH = """
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, ids_path = sys.argv[1], sys.argv[2]
ids = torch.load(ids_path)
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    logits = model(ids).logits
    cached = model.generate(ids[:1], max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=tokenizer.pad_token_id)
print(json.dumps({"cls": type(model).__name__, "module": type(model).__module__, "logits": logits.tolist(),
                  "generated": cached.tolist(), "vocab": len(tokenizer), "eos": tokenizer.eos_token_id}))
"""


def run_fresh(folder, ids, tmp_path):
    ids_path = tmp_path / "ids.pt"
    torch.save(ids, ids_path)
    return run_fresh_python(FRESH, folder, ids_path, cwd=tmp_path, modules_dir=tmp_path / "modules")[0]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_non_uniform_checkpoint_loads_without_flab_hf(family, tmp_path):
    config = FlabConfig(layers_to_prune=1, ffn_neurons=[8, 24, 40], calibration_samples=2, calibration_length=16,
                        progress=False)  # fmt: skip
    model, tokenizer, report = flab_prune(tiny_model(family, layers=4), tiny_tokenizer(), CODE * 3, config)
    folder = save_pruned(model, tokenizer, tmp_path / "pruned", report)
    assert {"modeling_flab.py", "configuration_flab.py", "config.json", "flab_report.json"} <= set(os.listdir(folder))
    saved = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert saved["model_type"] == f"flab_{family}" and saved["intermediate_sizes"] == [56, 40, 24]
    ids = torch.tensor([tokenizer(CODE[1])["input_ids"][:20]])
    with torch.no_grad():
        expected = model(ids).logits
        generated = model.generate(ids[:1], max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    loaded = run_fresh(folder, ids, tmp_path)
    assert loaded["module"].startswith("transformers_modules") and loaded["cls"] == type(model).__name__
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, atol=1e-5, rtol=1e-5)
    assert loaded["generated"] == generated.tolist()
    assert loaded["vocab"] == len(tokenizer) and loaded["eos"] == tokenizer.eos_token_id


def test_uniform_checkpoint_is_stock(tmp_path):
    config = FlabConfig(layers_to_prune=1, ffn_neurons=8, calibration_samples=2, calibration_length=16, progress=False)
    model, tokenizer, report = flab_prune(tiny_model("llama", layers=3), tiny_tokenizer(), CODE * 3, config)
    folder = save_pruned(model, tokenizer, tmp_path / "pruned", report)
    saved = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert saved["model_type"] == "llama" and "auto_map" not in saved and saved["intermediate_size"] == 56
    assert "modeling_flab.py" not in os.listdir(folder)
    ids = torch.tensor([[5, 9, 14, 30]])
    loaded = run_fresh(folder, ids, tmp_path)
    assert loaded["cls"] == "LlamaForCausalLM"
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(loaded["logits"]), model(ids).logits, atol=1e-5, rtol=1e-5)
