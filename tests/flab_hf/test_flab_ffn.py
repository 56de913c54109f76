"""FFN pruning rules, rule selection by KL, per-layer widths and the Flab model classes."""

import pytest
import torch
from flab_testing import FAMILY_NAMES, tiny_model

from flab_hf import FlabLlamaConfig, FlabLlamaForCausalLM, FlabQwen2Config, ffn_keep_indices
from flab_hf.pruning import (
    CalibrationRunner,
    ffn_plan,
    ffn_rule_kl,
    ffn_widths,
    mean_kl,
    prune_ffn_,
    resolve_ffn_neurons,
    select_ffn_rule,
    to_saveable,
)


def test_rules():
    assert ffn_keep_indices("top", 8, 3).tolist() == [0, 1, 2, 3, 4]
    assert ffn_keep_indices("bottom", 8, 3).tolist() == [3, 4, 5, 6, 7]
    assert ffn_keep_indices("middle", 8, 4).tolist() == [2, 3, 4, 5]
    random = ffn_keep_indices("random", 8, 3, seed=5)
    assert random.tolist() == ffn_keep_indices("random", 8, 3, seed=5).tolist() == sorted(random.tolist())
    assert len(set(random.tolist())) == 5
    importance = torch.tensor([0.1, 5, 0.2, 4, 0.3, 3, 0.4, 2])
    assert ffn_keep_indices("importance", 8, 4, importance=importance).tolist() == [1, 3, 5, 7]
    with pytest.raises(ValueError, match="ffn_rule"):
        ffn_keep_indices("largest", 8, 3)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_rule_selection_and_pruned_forward(family):
    model = tiny_model(family, layers=2)
    ids = torch.randint(3, 300, (4, 12), generator=torch.Generator().manual_seed(0))
    runner = CalibrationRunner(model, ids, batch_size=2)
    references = runner.full_log_probs()
    counts = resolve_ffn_neurons(model, [16, 40])
    selection = select_ffn_rule(model, runner, references, counts, progress=False)
    assert set(selection["kl"]) == {"top", "bottom", "middle", "random", "importance"}
    paper = {rule: selection["kl"][rule] for rule in ("top", "bottom", "middle", "random")}
    assert selection["chosen"] == min(paper, key=paper.get)
    assert ffn_widths(model) == [64, 64]  # trying rules leaves the model unchanged
    plan = ffn_plan(model, selection["chosen"], counts)
    prune_ffn_(model, plan)
    assert ffn_widths(model) == [48, 24]
    assert mean_kl(references, runner.full_log_probs()) == pytest.approx(paper[selection["chosen"]], rel=1e-5)
    saveable = to_saveable(model)
    assert saveable.config.model_type == f"flab_{family}"
    assert saveable.config.intermediate_sizes == [48, 24]
    with torch.no_grad():
        torch.testing.assert_close(saveable(ids).logits, model(ids).logits, atol=1e-6, rtol=1e-6)


def test_uniform_widths_stay_stock(tmp_path):
    model = tiny_model("qwen2", layers=2)
    prune_ffn_(model, ffn_plan(model, "top", [8, 8]))
    saveable = to_saveable(model)
    assert saveable is model and saveable.config.model_type == "qwen2" and saveable.config.intermediate_size == 56


def test_zero_neurons_is_identity():
    model = tiny_model("llama", layers=2)
    ids = torch.randint(3, 300, (2, 10))
    runner = CalibrationRunner(model, ids, batch_size=2)
    references = runner.full_log_probs()
    assert ffn_rule_kl(model, runner, references, ffn_plan(model, "top", [0, 0])) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("neurons, message", [(64, "remove an int"), ([8], "one count per"), ([8, 70], "layer 1")])
def test_too_many_neurons(neurons, message):
    with pytest.raises(ValueError, match=message):
        resolve_ffn_neurons(tiny_model("llama", layers=2), neurons)


@pytest.mark.parametrize("sizes", [[64], [64, 0], [64, "8"], "64"])
def test_config_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="intermediate_sizes"):
        FlabQwen2Config(num_hidden_layers=2, intermediate_sizes=sizes)


def test_flab_model_builds_per_layer_widths():
    config = FlabLlamaConfig(
        hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=3,
        intermediate_sizes=[64, 8, 30], vocab_size=50,
    )  # fmt: skip
    model = FlabLlamaForCausalLM(config)
    assert [layer.mlp.down_proj.in_features for layer in model.model.layers] == [64, 8, 30]
    assert config.intermediate_size == 64
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 50)


def test_global_budget_follows_importance_with_a_cap():
    from flab_hf.pruning import allocate_ffn_budget

    importance = [torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.1, 0.2, 5.0, 6.0])]
    assert allocate_ffn_budget(importance, 3) == [1, 2]
    assert allocate_ffn_budget(importance, 0) == [0, 0]
    # the cap: layer 1's two weakest neurons are half its width, so the next ones come from layer 0
    assert allocate_ffn_budget([torch.zeros(4), torch.ones(4)], 3, max_share=0.5) == [2, 1]
    with pytest.raises(ValueError, match="total=5"):
        allocate_ffn_budget(importance, 5)


def test_flab_prune_splits_the_ffn_budget_by_importance():
    from flab_testing import CODE

    from flab_hf import FlabConfig, flab_prune

    torch.manual_seed(0)
    model = tiny_model(layers=3, initializer_range=0.2)
    config = FlabConfig(vocab=False, layers_to_prune=0, ffn_neurons=16, ffn_allocation="importance",
                        calibration_samples=2, calibration_length=16, progress=False)  # fmt: skip
    from flab_testing import tiny_tokenizer

    pruned, _, report = flab_prune(model, tiny_tokenizer(), CODE * 4, config)
    assert sum(report["ffn_counts"]) == 48 and report["ffn_rule"] in report["ffn_rule_kl"]
    assert ffn_widths(pruned) == [64 - count for count in report["ffn_counts"]]
    assert "importance" in report["ffn_rule_kl"]  # the default `auto` chooses among all rules, ours included
    with pytest.raises(ValueError, match="ffn_allocation"):
        FlabConfig(ffn_allocation="greedy")
    with pytest.raises(ValueError, match="one int"):
        FlabConfig(ffn_neurons=[1, 2], ffn_allocation="importance")
