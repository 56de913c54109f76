# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""The ``xtc`` quantization method for Transformers' quantizer registry.

A packed XTC checkpoint's ``config.json`` carries the standard ``quantization_config`` key::

    "quantization_config": {"quant_method": "xtc", "weight_bits": 1, "activation_bits": 8,
                            "weight_granularity": "matrix", "quantize_embeddings": true,
                            "modules": ["transformer.h.*.attn.c_attn", ..., "transformer.wte"],
                            "modules_to_not_convert": ["transformer.wpe"], "weight_format": "packed"}

``from_pretrained`` hands such a config to the quantizer registered for its ``quant_method``. This module registers
:class:`XTCQuantizationConfig` and :class:`XTCHfQuantizer` under ``"xtc"`` (``register_quantization_config`` /
``register_quantizer``), so loading gives a typed ``model.config.quantization_config``, ``model.hf_quantizer`` and
``model.is_quantized`` like any Transformers-quantized model, and Transformers' own guards apply (``Trainer`` refuses
to fine-tune the packed model, whose weights are integer buffers; ``.half()``/``.float()`` are refused).

The modules themselves are already XTC layers: ``XTCGPT2LMHeadModel`` builds packed ``XTCLinear``/``XTCEmbedding``
layers from ``config.packed``, so the quantizer checks that the description matches the model instead of swapping
modules. Where the quantizer is not registered (code written before it existed), Transformers logs "Unknown
quantization type, got xtc ... we will skip the quantization" and loads the model with its own code unchanged.

This file travels with saved checkpoints (``trust_remote_code``): it imports only transformers and
``constants_xtc`` from its own folder (``configuration_xtc`` imports this file to register it, not the reverse).
"""

from transformers.quantizers import HfQuantizer
from transformers.quantizers.auto import (
    AUTO_QUANTIZATION_CONFIG_MAPPING,
    AUTO_QUANTIZER_MAPPING,
    register_quantization_config,
    register_quantizer,
)
from transformers.utils.quantization_config import QuantizationConfigMixin

from .constants_xtc import ACTIVATION_BITS, GRANULARITIES, QUANT_METHOD, WEIGHT_BITS

# the settings both the quantization config and the model config hold; they must agree
_SHARED_SETTINGS = (
    "weight_bits",
    "activation_bits",
    "weight_granularity",
    "quantize_embeddings",
    "embedding_bits",
    "embedding_int8_rows",
    "position_embedding_bits",
)


class XTCQuantizationConfig(QuantizationConfigMixin):
    """``quantization_config`` of XTC GPT-2 checkpoints (``quant_method="xtc"``).

    Args:
        weight_bits: 1 (binary), 2 (ternary), 4, 8 or 32.
        activation_bits: 8 (dynamic symmetric per-token int8) or 32.
        weight_granularity: one weight scale per ``"matrix"`` or per ``"row"`` (embeddings: always per row).
        quantize_embeddings: whether the word embeddings (and the tied LM head) are quantised.
        embedding_bits: bits of the word embeddings and tied LM head when they differ from ``weight_bits`` (8 = per-row
            int8); ``None`` (absent from the JSON) = ``weight_bits``.
        embedding_int8_rows: how many word-embedding rows (the most frequent tokens) keep 8-bit codes under lower
            ``embedding_bits``; ``None`` (absent) = none.
        position_embedding_bits: bits of the position embeddings (per position); ``None`` (absent) = float.
        modules: the quantised modules (``*`` = every block).
        modules_to_not_convert: modules kept in floating point.
        weight_format: ``"packed"`` (codes packed into ``uint8`` buffers, with float32 scales).

    Example:
        >>> XTCQuantizationConfig(weight_bits=2).to_dict()["quant_method"]
        'xtc'
    """

    def __init__(
        self,
        weight_bits: int = 1,
        activation_bits: int = 8,
        weight_granularity: str = "matrix",
        quantize_embeddings: bool = True,
        embedding_bits: int | None = None,
        embedding_int8_rows: int | None = None,
        position_embedding_bits: int | None = None,
        modules: list[str] | None = None,
        modules_to_not_convert: list[str] | None = None,
        weight_format: str = "packed",
        **kwargs,
    ):
        self.quant_method = QUANT_METHOD
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.weight_granularity = weight_granularity
        self.quantize_embeddings = quantize_embeddings
        if embedding_bits is not None:  # only when set, so descriptions written before it existed re-save unchanged
            self.embedding_bits = embedding_bits
        if embedding_int8_rows is not None:
            self.embedding_int8_rows = embedding_int8_rows
        if position_embedding_bits is not None:
            self.position_embedding_bits = position_embedding_bits
        self.modules = list(modules) if modules is not None else None
        self.modules_to_not_convert = list(modules_to_not_convert) if modules_to_not_convert is not None else None
        self.weight_format = weight_format
        kwargs.pop("quant_method", None)
        for key, value in kwargs.items():  # keys a newer version may add: kept, so they survive a re-save
            setattr(self, key, value)
        self.post_init()

    def post_init(self):
        """Raise a ``ValueError`` naming the key, its value and the allowed values."""
        if isinstance(self.weight_bits, bool) or self.weight_bits not in WEIGHT_BITS:
            raise ValueError(
                f"`quantization_config.weight_bits` must be one of {WEIGHT_BITS}, got {self.weight_bits!r}."
            )
        if isinstance(self.activation_bits, bool) or self.activation_bits not in ACTIVATION_BITS:
            raise ValueError(
                f"`quantization_config.activation_bits` must be one of {ACTIVATION_BITS}, got {self.activation_bits!r}."
            )
        if self.weight_granularity not in GRANULARITIES:
            raise ValueError(
                f"`quantization_config.weight_granularity` must be one of {GRANULARITIES}, "
                f"got {self.weight_granularity!r}."
            )
        for name in ("embedding_bits", "position_embedding_bits"):
            bits = getattr(self, name, None)
            if bits is not None and (isinstance(bits, bool) or bits not in WEIGHT_BITS):
                raise ValueError(
                    f"`quantization_config.{name}` must be absent, null or one of {WEIGHT_BITS}, got {bits!r}."
                )
        rows = getattr(self, "embedding_int8_rows", None)
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ValueError(f"`quantization_config.embedding_int8_rows` must be absent, null or >= 1, got {rows!r}.")
        if self.weight_format != "packed":
            raise ValueError(f"`quantization_config.weight_format` must be 'packed', got {self.weight_format!r}.")


class XTCHfQuantizer(HfQuantizer):
    """Transformers' side of ``quant_method="xtc"``: checks a packed XTC checkpoint against its description.

    XTC weights come out of quantisation-aware distillation (``xtc_hf.xtc_compress``), not out of a pass at load
    time, so only pre-quantized checkpoints load (``requires_calibration``); passing ``XTCQuantizationConfig()`` to
    ``from_pretrained`` of a float model raises Transformers' "does require the model to be pre-quantized" error.
    """

    requires_calibration = True

    def _process_model_before_weight_loading(self, model, **kwargs):
        config = model.config
        model_type = getattr(config, "model_type", None)
        if model_type == "xtc_gpt2" and not type(model).__name__.startswith("XTC"):
            # the usual mistake: a stock GPT-2 class given a packed XTC folder
            raise ValueError(
                f"This is a packed XTC GPT-2 checkpoint (low-bit packed weights, model_type 'xtc_gpt2'), which the "
                f"stock {type(model).__name__} cannot load. Load it with "
                "`AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`, or `import xtc_hf` and "
                "`xtc_hf.XTCGPT2LMHeadModel.from_pretrained(path)`."
            )
        if model_type != "xtc_gpt2" or not hasattr(config, "xtc_quantization_config"):
            raise ValueError(
                f"`quant_method: xtc` describes XTC GPT-2 checkpoints (model_type 'xtc_gpt2'), but this checkpoint is "
                f"a {model_type!r} model ({type(model).__name__}). Save XTC models with "
                "`XTCGPT2LMHeadModel.save_pretrained`, or remove `quantization_config` from its config.json."
            )
        if not config.packed:
            raise ValueError(
                "This checkpoint has `quant_method: xtc` but `packed: false`; only packed XTC checkpoints carry a "
                "quantization_config. Remove the key from config.json, or pack the model (`model.pack_()`) and save."
            )
        for name in _SHARED_SETTINGS:
            described, built = getattr(self.quantization_config, name, None), getattr(config, name, None)
            if described != built:
                raise ValueError(
                    f"`quantization_config.{name}` is {described!r} but the model config's `{name}` is {built!r}; "
                    "config.json was edited or is corrupted. Re-save the model with `save_pretrained`."
                )
        return model

    def is_serializable(self):
        return True

    @property
    def is_trainable(self) -> bool:
        # packed weights are integer buffers: train the unpacked model (XTCGPT2LMHeadModel.from_gpt2) instead
        return False


def register_xtc_quantizer() -> bool:
    """Register ``quant_method="xtc"`` with Transformers (idempotent); returns whether this call registered it.

    The first registration wins: ``import xtc_hf`` and every ``trust_remote_code`` load of an XTC checkpoint call
    this, and Transformers refuses to register a method twice.
    """
    registered = False
    if QUANT_METHOD not in AUTO_QUANTIZATION_CONFIG_MAPPING:
        register_quantization_config(QUANT_METHOD)(XTCQuantizationConfig)
        registered = True
    if QUANT_METHOD not in AUTO_QUANTIZER_MAPPING:
        register_quantizer(QUANT_METHOD)(XTCHfQuantizer)
        registered = True
    return registered


__all__ = ["XTCHfQuantizer", "XTCQuantizationConfig", "register_xtc_quantizer"]
