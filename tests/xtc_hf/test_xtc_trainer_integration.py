"""Trainer checkpoints written by ``xtc_compress`` (quantisation-aware student, not yet packed) carry their remote
code and load without ``xtc_hf``; CO2 tracking of the stages. (Resuming from them: ``test_xtc_recipe.py``.)"""

import json
import os
import sys

import pytest
import torch
from datasets import Dataset
from fresh_process import run_fresh_python

from xtc_hf import XTCGPT2LMHeadModel, XTCRecipeConfig, xtc_compress
from xtc_hf.recipe import stage_reports

FRESH = """
import json, sys
import torch
from transformers import AutoModelForCausalLM
folder, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(input_ids=ids).logits
print(json.dumps({"cls": type(model).__name__, "module": type(model).__module__, "packed": model.config.packed,
                  "logits": logits.tolist()}))
"""


@pytest.fixture
def token_dataset():
    torch.manual_seed(2)
    return Dataset.from_dict({"input_ids": torch.randint(1, 99, (16, 16)).tolist()})


def recipe(**overrides):
    settings = dict(layer_reduction_steps=2, quantization_steps=3, batch_size=4, logging_steps=1, save_steps=2,
                    bf16=False, learning_rate=1e-3)  # fmt: skip
    return XTCRecipeConfig(**{**settings, **overrides})


def test_quantization_stage_checkpoint_loads_without_xtc_hf(tiny_gpt2, token_dataset, input_ids, tmp_path):
    xtc_compress(tiny_gpt2, recipe(student_layers="all"), token_dataset, output_dir=str(tmp_path / "run"))
    (stage,) = os.listdir(tmp_path / "run")
    (name,) = os.listdir(tmp_path / "run" / stage / "checkpoints")  # save_total_limit=1 keeps the last one
    checkpoint = tmp_path / "run" / stage / "checkpoints" / name
    assert name == "checkpoint-3"
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == "xtc_gpt2" and config["packed"] is False  # mid-training: float weights + STE
    code = {reference.split(".")[0] + ".py" for reference in config["auto_map"].values()}
    assert {"configuration_xtc.py", "modeling_xtc.py"} <= code <= set(os.listdir(checkpoint))

    model = XTCGPT2LMHeadModel.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
    loaded, _ = run_fresh_python(
        FRESH, checkpoint, json.dumps(input_ids.tolist()), cwd=tmp_path, modules_dir=tmp_path / "modules"
    )
    assert loaded["module"].startswith("transformers_modules") and loaded["cls"] == "XTCGPT2LMHeadModel"
    assert loaded["packed"] is False
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, atol=1e-5, rtol=1e-5)


def test_stage_reports_record_emissions(tiny_gpt2, token_dataset, tmp_path):
    config = recipe(weight_bits=32, activation_bits=32, num_student_layers=2, track_emissions="usa")
    assert config.track_emissions == "USA"
    xtc_compress(tiny_gpt2, config, token_dataset, output_dir=str(tmp_path))
    (report,) = stage_reports(str(tmp_path)).values()
    emissions = report["emissions"]
    assert emissions["country_iso_code"] == "USA" and emissions["energy_kwh"] > 0
    assert emissions["emissions_kg_co2eq"] > 0 and emissions["machines"] == 1
    assert recipe().track_emissions is None


def test_recipe_config_track_emissions_errors(monkeypatch):
    with pytest.raises(ValueError, match="'QQQ'"):
        XTCRecipeConfig(track_emissions="QQQ")
    monkeypatch.setitem(sys.modules, "codecarbon.input", None)
    with pytest.raises(ImportError, match=r"pip install 'codecarbon==3\.3\.2'"):
        XTCRecipeConfig(track_emissions="FRA")
