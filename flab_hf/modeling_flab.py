# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Qwen2, Qwen3 and Llama decoders whose layers have different FFN widths (Flab-Pruner's FFN pruning).

The module tree and parameter names are the stock ones (``model.layers.<i>.mlp.{gate,up,down}_proj``), so a pruned
state dict loads unchanged; only each layer's MLP is built with its own width from ``config.intermediate_sizes``.

Every class declares the heterogeneous layouts it builds in ``supported_per_layer_attributes``: the config
attributes that may differ from layer to layer, in the vocabulary of Transformers' ``per_layer_config``. Flab models
vary only ``intermediate_size`` (FFN pruning); a pruned layer count is just a smaller ``num_hidden_layers``, and
per-layer heads, KV heads or skipped sublayers are not supported. Check before converting a model::

    >>> FlabLlamaForCausalLM.supported_per_layer_attributes
    ('intermediate_size',)

This file travels with saved checkpoints (``trust_remote_code``): it imports only torch, transformers and
``configuration_flab`` by relative import.
"""

from torch import nn
from transformers import (
    LlamaForCausalLM,
    LlamaModel,
    Qwen2ForCausalLM,
    Qwen2Model,
    Qwen3ForCausalLM,
    Qwen3Model,
)
from transformers.activations import ACT2FN

from .configuration_flab import PER_LAYER_ATTRIBUTES, FlabLlamaConfig, FlabQwen2Config, FlabQwen3Config


class FlabMLP(nn.Module):
    """The gated (SwiGLU) FFN of Qwen2/Qwen3/Llama with an explicit width.

    Example:
        >>> from flab_hf import FlabLlamaConfig
        >>> FlabMLP(FlabLlamaConfig(hidden_size=32, num_hidden_layers=1), 48).down_proj.in_features
        48
    """

    def __init__(self, config, intermediate_size: int):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = intermediate_size
        bias = getattr(config, "mlp_bias", False)  # Llama has the option, Qwen never uses FFN biases
        self.gate_proj = nn.Linear(self.hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(self.hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, self.hidden_size, bias=bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def _use_per_layer_widths(decoder, config) -> None:
    """Give each decoder layer an MLP of its own width (the stock constructor built them all the same)."""
    for layer, width in zip(decoder.layers, config.intermediate_sizes, strict=True):
        layer.mlp = FlabMLP(config, width)


class FlabQwen2Model(Qwen2Model):
    """A ``Qwen2Model`` with per-layer FFN widths."""

    config_class = FlabQwen2Config
    supported_per_layer_attributes = PER_LAYER_ATTRIBUTES

    def __init__(self, config: FlabQwen2Config):
        super().__init__(config)
        _use_per_layer_widths(self, config)
        self.post_init()


class FlabQwen2ForCausalLM(Qwen2ForCausalLM):
    """A ``Qwen2ForCausalLM`` with per-layer FFN widths.

    Example:
        >>> from flab_hf import FlabQwen2Config, FlabQwen2ForCausalLM
        >>> config = FlabQwen2Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        ...                          num_hidden_layers=2, intermediate_sizes=[64, 40], vocab_size=99)
        >>> FlabQwen2ForCausalLM(config).model.layers[1].mlp.intermediate_size
        40
    """

    config_class = FlabQwen2Config
    supported_per_layer_attributes = PER_LAYER_ATTRIBUTES

    def __init__(self, config: FlabQwen2Config):
        super().__init__(config)
        _use_per_layer_widths(self.model, config)
        self.post_init()


class FlabQwen3Model(Qwen3Model):
    """A ``Qwen3Model`` with per-layer FFN widths."""

    config_class = FlabQwen3Config
    supported_per_layer_attributes = PER_LAYER_ATTRIBUTES

    def __init__(self, config: FlabQwen3Config):
        super().__init__(config)
        _use_per_layer_widths(self, config)
        self.post_init()


class FlabQwen3ForCausalLM(Qwen3ForCausalLM):
    """A ``Qwen3ForCausalLM`` with per-layer FFN widths."""

    config_class = FlabQwen3Config
    supported_per_layer_attributes = PER_LAYER_ATTRIBUTES

    def __init__(self, config: FlabQwen3Config):
        super().__init__(config)
        _use_per_layer_widths(self.model, config)
        self.post_init()


class FlabLlamaModel(LlamaModel):
    """A ``LlamaModel`` with per-layer FFN widths."""

    config_class = FlabLlamaConfig
    supported_per_layer_attributes = PER_LAYER_ATTRIBUTES

    def __init__(self, config: FlabLlamaConfig):
        super().__init__(config)
        _use_per_layer_widths(self, config)
        self.post_init()


class FlabLlamaForCausalLM(LlamaForCausalLM):
    """A ``LlamaForCausalLM`` (SmolLM2, Llama 2/3) with per-layer FFN widths."""

    config_class = FlabLlamaConfig
    supported_per_layer_attributes = PER_LAYER_ATTRIBUTES

    def __init__(self, config: FlabLlamaConfig):
        super().__init__(config)
        _use_per_layer_widths(self.model, config)
        self.post_init()


__all__ = [
    "FlabLlamaForCausalLM",
    "FlabLlamaModel",
    "FlabMLP",
    "FlabQwen2ForCausalLM",
    "FlabQwen2Model",
    "FlabQwen3ForCausalLM",
    "FlabQwen3Model",
]
