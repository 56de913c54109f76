"""Trainer checkpoints of Flab models: a non-uniform ``flab_llama`` checkpoint-N carries its remote code, loads
without ``flab_hf`` and resumes; LoRA recovery checkpoints hold the adapter and resume; CO2 tracking."""

import json
import os
import sys

import pytest
import torch
import transformers
from flab_testing import CODE, tiny_model, tiny_tokenizer
from fresh_process import run_fresh_python
from transformers import Trainer, TrainingArguments

from flab_hf import FlabConfig, flab_prune
from flab_hf.recovery import RecoveryConfig, lora_recover

FRESH = """
import json, sys
import torch
from transformers import AutoModelForCausalLM
folder, ids_path = sys.argv[1:3]
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(torch.load(ids_path)).logits
print(json.dumps({"cls": type(model).__name__, "module": type(model).__module__, "logits": logits.tolist()}))
"""


def run_fresh(folder, ids, tmp_path) -> dict:
    torch.save(ids, tmp_path / "ids.pt")
    return run_fresh_python(FRESH, folder, tmp_path / "ids.pt", cwd=tmp_path, modules_dir=tmp_path / "modules")[0]


def pruned_model():
    """A non-uniform pruned tiny Llama (``FlabLlamaForCausalLM``, FFN widths 56/40/24) and its tokenizer."""
    config = FlabConfig(layers_to_prune=1, ffn_neurons=[8, 24, 40], calibration_samples=2, calibration_length=16,
                        progress=False)  # fmt: skip
    model, tokenizer, report = flab_prune(tiny_model("llama", layers=4), tiny_tokenizer(), CODE * 3, config)
    return model, tokenizer


def samples():
    out = []
    for snippet in CODE:
        first, _, rest = snippet.partition("\n")
        out.append({"prompt": first + "\n", "target": rest})
    return (out * 2)[:8]


def test_flab_llama_checkpoint_has_remote_code_loads_without_flab_hf_and_resumes(tmp_path):
    model, tokenizer = pruned_model()
    assert type(model).__name__ == "FlabLlamaForCausalLM"
    ids = torch.tensor([tokenizer(text)["input_ids"][:16] for text in (CODE[0] * 3, CODE[3] * 3)])
    data = [{"input_ids": row.tolist(), "labels": row.tolist()} for row in ids.repeat(4, 1)]

    def trainer(model):
        args = TrainingArguments(
            output_dir=str(tmp_path / "run"), max_steps=4, save_steps=2, per_device_train_batch_size=2,
            learning_rate=1e-3, logging_steps=1, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
        )  # fmt: skip
        return Trainer(model=model, args=args, train_dataset=data)

    start = {name: value.clone() for name, value in model.state_dict().items()}
    first = trainer(model.train())
    first.train()
    final = {name: value.clone() for name, value in first.model.state_dict().items()}
    checkpoint = tmp_path / "run" / "checkpoint-2"
    saved = json.loads((checkpoint / "config.json").read_text())
    assert saved["model_type"] == "flab_llama" and saved["intermediate_sizes"] == [56, 40, 24]
    code = {reference.split(".")[0] + ".py" for reference in saved["auto_map"].values()}
    assert code == {"configuration_flab.py", "modeling_flab.py"} and code <= set(os.listdir(checkpoint))

    expected_model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, trust_remote_code=True).eval()
    with torch.no_grad():
        expected = expected_model(ids).logits
    loaded = run_fresh(checkpoint, ids, tmp_path)
    assert loaded["module"].startswith("transformers_modules") and loaded["cls"] == "FlabLlamaForCausalLM"
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, atol=1e-5, rtol=1e-5)

    again, _ = pruned_model()
    assert all(torch.equal(value, start[name]) for name, value in again.state_dict().items())
    resumed = trainer(again.train())
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final[name], atol=1e-6, rtol=1e-5, msg=name)


class _Interrupted(Exception):
    pass


def test_lora_recovery_checkpoints_hold_the_adapter_and_resume(tmp_path, monkeypatch):
    def recover(checkpoint_dir):
        model, tokenizer = pruned_model()
        config = RecoveryConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, epochs=2, batch_size=2, learning_rate=5e-3,
                                progress=False, checkpoint_dir=str(checkpoint_dir), save_steps=2)  # fmt: skip
        return lora_recover(model, tokenizer, samples(), config)

    uninterrupted, log = recover(tmp_path / "full")
    assert log["steps"] == 8 and log["resumed_from"] is None

    # a crash during step 5, after the step-4 checkpoint
    calls = {"n": 0, "crash_at": 5}
    original = Trainer.training_step

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["crash_at"]:
            raise _Interrupted
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", counting)
    with pytest.raises(_Interrupted):
        recover(tmp_path / "crashed")
    checkpoint = tmp_path / "crashed" / "checkpoint-4"
    files = set(os.listdir(checkpoint))
    # peft checkpoint: the LoRA adapter (and optimizer state), not the pruned model it applies to
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "trainer_state.json"} <= files
    assert "model.safetensors" not in files
    adapter = json.loads((checkpoint / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip

    calls.update(n=0, crash_at=None)
    resumed, resumed_log = recover(tmp_path / "crashed")
    assert resumed_log["resumed_from"] == str(checkpoint) and resumed_log["steps"] == 8
    assert calls["n"] == 4  # steps 5-8 only: the first four were restored from the checkpoint, not repeated
    assert resumed_log["train_losses"] == pytest.approx(log["train_losses"], rel=1e-5)
    reference = uninterrupted.state_dict()
    for name, value in resumed.state_dict().items():
        torch.testing.assert_close(value, reference[name], atol=1e-6, rtol=1e-5, msg=name)


def test_lora_recovery_records_emissions():
    model, tokenizer = pruned_model()
    config = RecoveryConfig(lora_r=4, lora_alpha=8, epochs=1, batch_size=4, progress=False, track_emissions="DEU")
    _, log = lora_recover(model, tokenizer, samples(), config)
    emissions = log["emissions"]
    assert emissions["country_iso_code"] == "DEU" and emissions["energy_kwh"] > 0
    assert emissions["emissions_kg_co2eq"] > 0 and emissions["machines"] == 1
    assert "emissions" not in lora_recover(*pruned_model(), samples(), RecoveryConfig(epochs=1, progress=False))[1]


def test_recovery_config_track_emissions_errors(monkeypatch):
    with pytest.raises(ValueError, match="'XX'"):
        RecoveryConfig(track_emissions="XX")
    monkeypatch.setitem(sys.modules, "codecarbon.input", None)
    with pytest.raises(ImportError, match=r"pip install 'codecarbon==3\.3\.2'"):
        RecoveryConfig(track_emissions="FRA")
