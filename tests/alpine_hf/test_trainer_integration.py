"""The ALPINE fine-tuning ``Trainer`` (``finetune_trainer``, what ``python -m benchmarks alpine-finetune`` runs): its ``checkpoint-N``
folders carry the remote code and load without ``alpine_hf``; training resumes from them; CO2 tracking."""

import json
import os
import sys

import datasets
import pytest
import torch
from alpine_testing import make_batch, tiny_config
from fresh_process import run_fresh_python
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from alpine_hf import AlpineRobertaForSequenceClassification
from alpine_hf.callbacks import EmissionsCallback
from benchmarks.alpine_finetune import FinetuneConfig, finetune_trainer

FRESH = """
import json, sys
import torch
import transformers
folder, auto, inputs_path = sys.argv[1:4]
model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(**torch.load(inputs_path)).logits
print(json.dumps({"cls": type(model).__name__, "module": type(model).__module__, "logits": logits.tolist()}))
"""


def run_fresh(folder, auto: str, inputs: dict, tmp_path) -> dict:
    torch.save(inputs, tmp_path / "inputs.pt")
    return run_fresh_python(
        FRESH, folder, auto, tmp_path / "inputs.pt", cwd=tmp_path, modules_dir=tmp_path / "modules"
    )[0]


def tokenizer():
    """A word-level tokenizer over the tiny vocabulary: `DataCollatorWithPadding` only needs its pad token (1)."""
    vocab = {f"t{i}": i for i in range(99)}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t3")), pad_token="t1")


def train_data(n: int = 24) -> datasets.Dataset:
    input_ids, mask = make_batch("roberta", [20 - (i % 7) for i in range(n)], seed=5)
    rows = [ids[: int(m.sum())].tolist() for ids, m in zip(input_ids, mask)]  # unpadded: the collator pads
    return datasets.Dataset.from_dict({"input_ids": rows, "labels": [i % 2 for i in range(n)]})


def make_trainer(output_dir, config=None, **overrides):
    torch.manual_seed(0)
    model = AlpineRobertaForSequenceClassification(tiny_config("roberta", alpine_layers="all", alpine_alpha=0.8))
    config = config or FinetuneConfig(batch_size=4, learning_rate=1e-3, bf16=False)
    settings = dict(max_steps=6, save_steps=3, save_total_limit=None, logging_steps=1, disable_tqdm=True)
    return finetune_trainer(model, train_data(), tokenizer(), config, str(output_dir), **{**settings, **overrides})


def test_checkpoint_has_remote_code_loads_without_alpine_hf_and_resumes(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    trainer.train()
    final = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    checkpoint = tmp_path / "run" / "checkpoint-3"
    auto_map = json.loads((checkpoint / "config.json").read_text())["auto_map"]
    code = {reference.split(".")[0] + ".py" for reference in auto_map.values()}
    assert code == {"configuration_alpine.py", "modeling_alpine.py"}
    assert code <= set(os.listdir(checkpoint))

    input_ids, mask = make_batch("roberta", [18, 11], seed=9)
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    at_step_3 = AlpineRobertaForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        expected = at_step_3(**inputs).logits
    assert not torch.allclose(expected, trainer.model.eval()(**inputs).logits)  # the checkpoint is not the end
    loaded = run_fresh(checkpoint, "AutoModelForSequenceClassification", inputs, tmp_path)
    assert loaded["module"].startswith("transformers_modules") and loaded["cls"] == type(at_step_3).__name__
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, atol=1e-5, rtol=1e-5)

    resumed = make_trainer(tmp_path / "run")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 6
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final[name], atol=1e-6, rtol=1e-5, msg=name)


def test_track_emissions_records_energy_and_co2(tmp_path):
    from codecarbon.input import DataSource

    config = FinetuneConfig(batch_size=4, learning_rate=1e-3, bf16=False, track_emissions="fra")
    assert config.track_emissions == "FRA"
    trainer = make_trainer(tmp_path, config, max_steps=2, save_strategy="no")
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, EmissionsCallback)]
    trainer.train()
    emissions = callback.emissions
    assert emissions["energy_kwh"] > 0 and emissions["duration_s"] > 0 and emissions["machines"] == 1
    assert emissions["energy_kwh"] == pytest.approx(emissions["cpu_energy_kwh"] + emissions["ram_energy_kwh"])
    # kg CO2eq = kWh x the grid's carbon intensity (g/kWh) of the country we named, not a guessed one
    intensity = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"]
    assert emissions["emissions_kg_co2eq"] == pytest.approx(emissions["energy_kwh"] * intensity / 1000, rel=1e-6)
    assert FinetuneConfig().track_emissions is None  # off by default
    assert not any(isinstance(c, EmissionsCallback) for c in make_trainer(tmp_path).callback_handler.callbacks)


def test_track_emissions_errors_name_the_value_and_the_fix(monkeypatch):
    with pytest.raises(ValueError, match="'ZZZ'"):
        FinetuneConfig(track_emissions="ZZZ")
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    monkeypatch.setitem(sys.modules, "codecarbon.input", None)
    with pytest.raises(ImportError, match=r"track_emissions='FRA'.*pip install 'codecarbon==3\.3\.2'"):
        FinetuneConfig(track_emissions="FRA")
