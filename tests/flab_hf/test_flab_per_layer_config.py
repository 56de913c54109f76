"""Per-layer FFN widths and Transformers' generic ``per_layer_config``.

Transformers 5.23 accepts ``per_layer_config`` on every config but its Qwen2/Qwen3/Llama modeling code cannot build
from it (the first test pins that); Flab configs read it for the one attribute Flab models vary per layer.
"""

import pytest
import torch
from flab_testing import FAMILIES, FAMILY_NAMES
from transformers.integrations.heterogeneity import AmbiguousGlobalPerLayerAttributeError

from flab_hf import (
    FlabLlamaConfig,
    FlabLlamaForCausalLM,
    FlabLlamaModel,
    FlabQwen2Config,
    FlabQwen2ForCausalLM,
    FlabQwen2Model,
    FlabQwen3Config,
    FlabQwen3ForCausalLM,
    FlabQwen3Model,
)

FLAB = {
    "llama": (FlabLlamaConfig, FlabLlamaForCausalLM),
    "qwen2": (FlabQwen2Config, FlabQwen2ForCausalLM),
    "qwen3": (FlabQwen3Config, FlabQwen3ForCausalLM),
}
WIDTHS = [24, 64, 40]


def _settings(family):
    settings = dict(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    if family == "qwen3":
        settings["head_dim"] = 8
    return settings


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_stock_model_cannot_build_per_layer_ffn_widths(family):
    """The evidence that Flab still needs its own classes with transformers 5.23: the stock config takes the
    per-layer widths, the stock model constructor does not (its MLP reads the global `config.intermediate_size`).
    If this starts failing, stock models build heterogeneous FFNs and a stock save format becomes possible."""
    config_class, model_class = FAMILIES[family]
    config = config_class(
        **_settings(family), per_layer_config={0: {"intermediate_size": 24}, 2: {"intermediate_size": 40}}
    )
    assert config.is_heterogeneous and config.per_layer_config[2].intermediate_size == 40
    with pytest.raises(AmbiguousGlobalPerLayerAttributeError, match="intermediate_size"):
        model_class(config)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_flab_config_reads_per_layer_config(family, tmp_path):
    config_class, model_class = FLAB[family]
    stock_class, _ = FAMILIES[family]
    overrides = {"0": {"intermediate_size": 24}, "2": {"intermediate_size": 40}}  # JSON keys are strings
    from_overrides = config_class(**_settings(family), per_layer_config=overrides)
    assert from_overrides.intermediate_sizes == WIDTHS and from_overrides.intermediate_size == 64
    assert not from_overrides.is_heterogeneous  # folded into intermediate_sizes, so stock layer code still works
    # a config dict in Transformers' heterogeneous format (as a stock config writes it) reads the same way
    stock_dict = stock_class(**_settings(family), per_layer_config=overrides).to_dict()
    stock_dict.pop("model_type")
    assert config_class.from_dict(stock_dict).intermediate_sizes == WIDTHS

    torch.manual_seed(0)
    model = model_class(from_overrides).eval()
    assert [layer.mlp.down_proj.in_features for layer in model.model.layers] == WIDTHS
    explicit = model_class(config_class(**_settings(family), intermediate_sizes=WIDTHS)).eval()
    explicit.load_state_dict(model.state_dict())  # same shapes, so the same weights load without complaint
    ids = torch.randint(0, 99, (2, 7))
    with torch.no_grad():
        expected = model(ids).logits
        torch.testing.assert_close(explicit(ids).logits, expected, rtol=0, atol=0)
    model.save_pretrained(tmp_path)
    reloaded = model_class.from_pretrained(tmp_path).eval()
    assert reloaded.config.intermediate_sizes == WIDTHS and "per_layer_config" not in reloaded.config.to_dict()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, expected, rtol=0, atol=0)


def test_per_layer_config_overrides_given_widths():
    config = FlabLlamaConfig(
        **_settings("llama"), intermediate_sizes=[8, 16, 24], per_layer_config={1: {"intermediate_size": 4}}
    )
    assert config.intermediate_sizes == [8, 4, 24] and config.intermediate_size == 24


@pytest.mark.parametrize(
    ("per_layer_config", "match"),
    [
        ({0: {"num_key_value_heads": 1}}, r"\['num_key_value_heads'\].*vary only \['intermediate_size'\]"),
        ({0: {"skip": ["mlp"]}}, "skip"),
        ({3: {"intermediate_size": 8}}, "layer 3, but the model has 3 layers"),
        ({"first": {"intermediate_size": 8}}, "layer indices"),
        ({0: {"intermediate_size": 0}}, "FFN width must be an int >= 1"),
        ([64, 64, 64], "must map layer indices"),
    ],
)
def test_per_layer_config_rejects_what_flab_cannot_build(per_layer_config, match):
    with pytest.raises(ValueError, match=match):
        FlabLlamaConfig(**_settings("llama"), per_layer_config=per_layer_config)


@pytest.mark.parametrize(
    ("model_class", "config_class"),
    [
        (FlabLlamaForCausalLM, FlabLlamaConfig),
        (FlabLlamaModel, FlabLlamaConfig),
        (FlabQwen2ForCausalLM, FlabQwen2Config),
        (FlabQwen2Model, FlabQwen2Config),
        (FlabQwen3ForCausalLM, FlabQwen3Config),
        (FlabQwen3Model, FlabQwen3Config),
    ],
)
def test_model_classes_declare_their_heterogeneous_layouts(model_class, config_class):
    """Each declared per-layer attribute really varies per layer in a built model (not just a declared constant)."""
    settings = _settings("qwen3" if "Qwen3" in model_class.__name__ else "llama")
    config = config_class(**settings, intermediate_sizes=WIDTHS)
    assert all(hasattr(config, name) for name in model_class.supported_per_layer_attributes)
    model = model_class(config)
    layers = model.model.layers if hasattr(model, "model") else model.layers
    assert [layer.mlp.down_proj.in_features for layer in layers] == WIDTHS
    assert [layer.mlp.gate_proj.out_features for layer in layers] == WIDTHS
