"""``FlabConfig`` validation and ``flab_prune`` end to end on tiny models."""

import os

import pytest
import torch
from flab_testing import CODE, FAMILY_NAMES, tiny_model, tiny_tokenizer

from flab_hf import FlabConfig, flab_prune, save_pruned

SMALL = dict(calibration_samples=2, calibration_length=16, progress=False)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_flab_prune_report_and_dense_untouched(family):
    dense = tiny_model(family, layers=4)
    before = {name: p.clone() for name, p in dense.state_dict().items()}
    model, tokenizer, report = flab_prune(
        dense, tiny_tokenizer(), CODE * 3, FlabConfig(layers_to_prune=2, ffn_neurons=16, **SMALL)
    )
    assert all(torch.equal(before[name], p) for name, p in dense.state_dict().items())
    assert len(dense.model.layers) == 4 and len(model.model.layers) == 2
    assert report["params_before"]["total"] > report["params_after"]["total"]
    assert report["params_after"]["total"] == sum(p.numel() for p in model.parameters())
    assert [step["stage"] for step in report["steps"]] == ["vocab", "layer", "layer", "layers", "ffn"]
    assert report["ffn_rule"] == min(report["ffn_rule_kl"], key=report["ffn_rule_kl"].get)  # auto: every rule competes
    assert set(report["times"]) == {"vocab_s", "layers_s", "ffn_s"}
    assert len(report["removed_layers"]) == 2 and report["vocab"]["after"] == len(tokenizer)
    ids = torch.tensor([tokenizer(CODE[0])["input_ids"]])
    assert model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=2).shape == (1, ids.shape[1] + 5)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(layers_to_prune=-1), "layers_to_prune"), (dict(layer_method="angle"), "layer_method"),
     (dict(ffn_rule="largest"), "ffn_rule"), (dict(ffn_neurons=-3), "ffn_neurons"),
     (dict(calibration_length=0), "calibration_length"), (dict(auto_rules=("top", "x")), "auto_rules")],
)  # fmt: skip
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlabConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(layers_to_prune=4), "4 decoder layers"), (dict(ffn_neurons=64), "narrowest FFN"),
     (dict(ffn_neurons=[1, 2]), "one count per remaining layer"),
     (dict(calibration_length=500), "exceeds the model's context")],
)  # fmt: skip
def test_bad_input_writes_nothing(kwargs, message, tmp_path):
    settings = {**SMALL, "layers_to_prune": 1, "ffn_neurons": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        flab_prune(tiny_model("llama", layers=4), tiny_tokenizer(), CODE, FlabConfig(**settings))
    assert os.listdir(tmp_path) == []


def test_explicit_calibration_longer_than_context():
    with pytest.raises(ValueError, match="context"):
        flab_prune(
            tiny_model("llama"),
            tiny_tokenizer(),
            CODE,
            FlabConfig(layers_to_prune=1, ffn_neurons=8, **SMALL),
            calibration=torch.ones(1, 129, dtype=torch.long),
        )


def test_save_is_atomic(tmp_path, monkeypatch):
    model, tokenizer, report = flab_prune(tiny_model("llama", layers=2), tiny_tokenizer(), CODE * 3,
                                          FlabConfig(layers_to_prune=1, ffn_neurons=8, **SMALL))  # fmt: skip

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tokenizer, "save_pretrained", fail)
    with pytest.raises(OSError):
        save_pruned(model, tokenizer, tmp_path / "out", report)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    save_pruned(model, tokenizer, tmp_path / "out", report)
    with pytest.raises(FileExistsError, match=r"`folder`=.*not empty"):
        save_pruned(model, tokenizer, tmp_path / "out", report)
