"""Saved ALPINE checkpoints load with ``trust_remote_code=True`` in a process where ``alpine_hf`` cannot be imported."""

import json
import os

import pytest
import torch
from alpine_testing import make_batch, tiny_config
from fresh_process import run_fresh_python

from alpine_hf import AlpineBertForSequenceClassification, AlpineRobertaForSequenceClassification

CLASSIFIERS = {"roberta": AlpineRobertaForSequenceClassification, "bert": AlpineBertForSequenceClassification}

FRESH = """
import json, sys
import torch
from transformers import AutoModel, AutoModelForSequenceClassification
folder, inputs_path = sys.argv[1], sys.argv[2]
inputs = torch.load(inputs_path)
classifier = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = classifier(**inputs).logits
    kept = encoder(**inputs).kept_lengths
print(json.dumps({"cls": type(classifier).__name__, "enc": type(encoder).__name__, "module": type(classifier).__module__,
                  "logits": logits.tolist(), "kept": kept.tolist(), "alpha": classifier.config.alpine_alpha,
                  "layers": classifier.config.alpine_layers,
                  "alpha_per_layer": [classifier.config.alpine_alpha_for(i)
                                      for i in range(classifier.config.num_hidden_layers)]}))
"""


def run_fresh(folder, inputs, tmp_path):
    inputs_path = tmp_path / "inputs.pt"
    torch.save(inputs, inputs_path)
    return run_fresh_python(FRESH, folder, inputs_path, cwd=tmp_path, modules_dir=tmp_path / "modules")[0]


SETTINGS = {
    "all layers, one alpha": {"alpine_layers": "all", "alpine_alpha": 0.7},
    # an explicit layer list and one alpha per layer (layer 1 does not prune: its value is unused)
    "layer list, per-layer alpha": {"alpine_layers": [0, 2, 3], "alpine_alpha": [0.4, 3.0, 1.2, 0.6]},
}


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("family", ["roberta", "bert"])
def test_save_and_load_in_fresh_process_without_alpine_hf(family, settings, tmp_path):
    model = CLASSIFIERS[family](tiny_config(family, **SETTINGS[settings])).eval()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    assert {"modeling_alpine.py", "configuration_alpine.py", "config.json"} <= set(os.listdir(folder))
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"} <= set(auto_map)
    input_ids, mask = make_batch(family, [20, 12], seed=7)
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    with torch.no_grad():
        expected = model(**inputs).logits
        kept = model.base_model(**inputs).kept_lengths
    loaded = run_fresh(folder, inputs, tmp_path)
    assert loaded["module"].startswith("transformers_modules")
    assert loaded["cls"] == type(model).__name__
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, atol=1e-5, rtol=1e-5)
    assert loaded["kept"] == kept.tolist() and kept[-1].max() < 20  # the settings pruned, and identically
    assert (
        loaded["alpha"] == SETTINGS[settings]["alpine_alpha"]
        and loaded["layers"] == SETTINGS[settings]["alpine_layers"]
    )
    assert loaded["alpha_per_layer"] == [model.config.alpine_alpha_for(i) for i in range(4)]
