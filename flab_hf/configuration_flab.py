# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Configurations of Flab-Pruner decoders whose layers have different FFN widths.

Stock Qwen2/Qwen3/Llama configs hold one ``intermediate_size`` for every layer. After Flab-Pruner's FFN pruning
with a per-layer list of neuron counts, each layer has its own width, stored here as ``intermediate_sizes``.
Uniform results are saved as stock checkpoints and never need these classes.

Transformers 5.23 also has a generic per-layer format, ``per_layer_config={layer: {attribute: value}}``
(``transformers.integrations.heterogeneity``), accepted by every config. It cannot replace these classes yet: the
stock Qwen2/Qwen3/Llama modeling code reads ``config.intermediate_size``, which a heterogeneous config refuses to
answer (``AmbiguousGlobalPerLayerAttributeError``), so a stock model cannot be built from it. The Flab configs accept
it as input for the attributes Flab models can vary per layer (:data:`PER_LAYER_ATTRIBUTES`), turning it into
``intermediate_sizes``.

This file travels with saved checkpoints (``trust_remote_code``): it imports only huggingface_hub and transformers.
"""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import LlamaConfig, Qwen2Config, Qwen3Config

# what a Flab model can vary from layer to layer (the FFN width); heads, KV heads, skipped sublayers... cannot
PER_LAYER_ATTRIBUTES = ("intermediate_size",)


def sizes_from_per_layer_config(per_layer_config, base_sizes: list[int]) -> list[int]:
    """Apply Transformers' ``per_layer_config`` overrides (``{layer: {"intermediate_size": width}}``) to
    ``base_sizes`` (one FFN width per layer); raise a ``ValueError`` for anything a Flab model cannot vary per layer.

    Example:
        >>> sizes_from_per_layer_config({"1": {"intermediate_size": 48}}, [64, 64, 64])
        [64, 48, 64]
    """
    if not isinstance(per_layer_config, dict):
        raise ValueError(
            f"`per_layer_config` must map layer indices to attribute overrides, e.g. "
            f"{{0: {{'intermediate_size': 64}}}}, got {per_layer_config!r}."
        )
    sizes = list(base_sizes)
    for key, overrides in per_layer_config.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"`per_layer_config` keys must be layer indices, got {key!r}.") from None
        if not 0 <= index < len(sizes):
            raise ValueError(f"`per_layer_config` names layer {index}, but the model has {len(sizes)} layers.")
        unsupported = sorted(set(overrides) - set(PER_LAYER_ATTRIBUTES))
        if unsupported:
            raise ValueError(
                f"`per_layer_config` sets {unsupported} for layer {index}; Flab models vary only "
                f"{list(PER_LAYER_ATTRIBUTES)} per layer. Use the stock model class for other heterogeneous layouts."
            )
        if "intermediate_size" in overrides:
            sizes[index] = overrides["intermediate_size"]
    return sizes


def check_intermediate_sizes(sizes, num_hidden_layers: int) -> None:
    """Raise a ``ValueError`` naming the value and the fix unless ``sizes`` is one positive int per layer.

    Example:
        >>> check_intermediate_sizes([64, 48], 2)
        >>> check_intermediate_sizes([64], 2)
        Traceback (most recent call last):
        ...
        ValueError: `intermediate_sizes` must hold one width per layer (2 layers), got 1 values: [64].
    """
    if not isinstance(sizes, (list, tuple)):
        raise ValueError(f"`intermediate_sizes` must be a list of positive ints (one per layer), got {sizes!r}.")
    if len(sizes) != num_hidden_layers:
        raise ValueError(
            f"`intermediate_sizes` must hold one width per layer ({num_hidden_layers} layers), got {len(sizes)} "
            f"values: {list(sizes)}."
        )
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"`intermediate_sizes` holds {size!r}; every FFN width must be an int >= 1.")


class FlabConfigMixin:
    """Per-layer FFN widths shared by the Flab configurations.

    Attributes:
        intermediate_sizes: FFN width of each decoder layer; ``None`` means ``intermediate_size`` everywhere.
            ``intermediate_size`` is kept as the widest layer so that stock code reading it stays safe.

    A ``per_layer_config`` argument (Transformers' generic per-layer overrides) is folded into
    ``intermediate_sizes`` here instead of reaching ``PreTrainedConfig``, whose heterogeneous mode would make the
    stock layer constructors fail on ``config.intermediate_size``.
    """

    def __post_init__(self, **kwargs):
        # Checked here rather than in a ``validate_*`` hook so that users get a plain ``ValueError``.
        per_layer_config = kwargs.pop("per_layer_config", None)
        if per_layer_config is not None:
            base = self.intermediate_sizes
            if base is None:
                base = [self.intermediate_size] * self.num_hidden_layers
            else:
                check_intermediate_sizes(base, self.num_hidden_layers)
            self.intermediate_sizes = sizes_from_per_layer_config(per_layer_config, base)
        if self.intermediate_sizes is None:
            self.intermediate_sizes = [self.intermediate_size] * self.num_hidden_layers
        else:
            check_intermediate_sizes(self.intermediate_sizes, self.num_hidden_layers)
            self.intermediate_sizes = list(self.intermediate_sizes)
            self.intermediate_size = max(self.intermediate_sizes)
        super().__post_init__(**kwargs)


@strict
class FlabQwen2Config(FlabConfigMixin, Qwen2Config):
    """Qwen2 configuration with one FFN width per layer.

    Example:
        >>> from flab_hf import FlabQwen2Config
        >>> FlabQwen2Config(num_hidden_layers=2, intermediate_sizes=[64, 48]).intermediate_size
        64
    """

    model_type = "flab_qwen2"
    # typed Any so that __post_init__ checks it and raises a plain ValueError (strict type checks raise their own)
    intermediate_sizes: Any = None


@strict
class FlabQwen3Config(FlabConfigMixin, Qwen3Config):
    """Qwen3 configuration with one FFN width per layer.

    Example:
        >>> from flab_hf import FlabQwen3Config
        >>> FlabQwen3Config(num_hidden_layers=2, intermediate_sizes=[64, 48]).intermediate_sizes
        [64, 48]
    """

    model_type = "flab_qwen3"
    # typed Any so that __post_init__ checks it and raises a plain ValueError (strict type checks raise their own)
    intermediate_sizes: Any = None


@strict
class FlabLlamaConfig(FlabConfigMixin, LlamaConfig):
    """Llama configuration (SmolLM2, Llama 2/3, CodeLlama) with one FFN width per layer.

    Example:
        >>> from flab_hf import FlabLlamaConfig
        >>> FlabLlamaConfig(num_hidden_layers=2, intermediate_sizes=[64, 48]).intermediate_sizes
        [64, 48]
    """

    model_type = "flab_llama"
    # typed Any so that __post_init__ checks it and raises a plain ValueError (strict type checks raise their own)
    intermediate_sizes: Any = None


__all__ = [
    "FlabLlamaConfig",
    "FlabQwen2Config",
    "FlabQwen3Config",
    "PER_LAYER_ATTRIBUTES",
    "check_intermediate_sizes",
    "sizes_from_per_layer_config",
]
