# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Configuration of XTC-compressed GPT-2 models (layer-reduced and/or 1-, 2- or 8-bit weights, 8-bit activations).

Paper: de Moor, "Compressing a CodeGPT Model Using Hybrid Layer Reduction and Extreme Quantisation through Knowledge
Distillation" (TU Delft, 2023), after Wu et al., "Extreme Compression for Pre-trained Transformers Made Simple and
Efficient" (XTC, NeurIPS 2022).

This file travels with saved checkpoints (``trust_remote_code``): it imports only transformers, huggingface_hub and its
own folder (``constants_xtc``, ``quantizer_xtc``; neither imports this file, so the imports form no circle).
"""

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

from .constants_xtc import ACTIVATION_BITS, GRANULARITIES, QUANT_METHOD, WEIGHT_BITS

XTC_KERNELS = (
    "auto",
    "int8",
    "onednn",
    "float",
)  # how packed layers with 8-bit activations multiply (see modeling_xtc)
QUANTIZED_BLOCK_MODULES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


@strict
class XTCGPT2Config(GPT2Config):
    """GPT-2 configuration plus the XTC compression settings needed to rebuild a compressed model.

    Attributes:
        weight_bits: 1 (binary, ``sign(W) * mean|W|``), 2 (ternary, threshold ``0.7 * mean|W|``), 8 (symmetric
            int8) or 32 (full precision) for every block Linear (and the word embeddings if quantised).
        activation_bits: 8 (symmetric dynamic per-token int8 inputs of every quantised Linear) or 32.
        weight_granularity: ``"matrix"`` (one scale per weight matrix, XTC's default) or ``"row"`` (one scale per
            output row). Word embeddings always use one scale per row.
        quantize_embeddings: also quantise the word embeddings (and hence the tied LM head), at ``weight_bits`` unless
            ``embedding_bits`` says otherwise. LayerNorms and biases always stay in floating point, position
            embeddings unless ``position_embedding_bits`` is set.
        embedding_bits: bits of the word embeddings and the tied LM head, independently of the blocks' ``weight_bits``
            (one scale per row): 8 = symmetric per-row int8 with float scales (most of a layer-reduced model's
            remaining float bytes and time are there, and 8 bits keep the output distribution far closer than 1);
            ``None`` = ``weight_bits`` if ``quantize_embeddings`` else 32 (the behaviour before this setting). See
            :attr:`word_embedding_bits`.
        embedding_int8_rows: how many word-embedding (and LM-head) rows keep 8-bit codes when ``embedding_bits`` is
            lower, ``None`` = none. The recipe gives them to the tokens most frequent in its training data, the
            rows a code model predicts most (4 bits cost a row ~13% of its values, 8 bits 0.7%), for half a byte per
            weight more on disk. The rows are the ``transformer.wte.int8_row_ids`` buffer.
        position_embedding_bits: bits of the position embeddings (one scale per position), ``None`` = float. At 512
            positions of width 256 they are a fifth of a 1-bit 6-layer model with 4-bit word embeddings; 8 bits keep
            each position's vector within half a percent of its largest entry.
        teacher_layers: the teacher block each of the ``n_layer`` blocks was initialised from (``None`` = 0..n-1).
        packed: weights are stored packed (1-bit 8 per byte, 2-bit 4 per byte, 8-bit 1 per byte) with their scales
            instead of as floating-point parameters; set by ``XTCGPT2LMHeadModel.pack_()``.
        xtc_kernel: how packed layers with 8-bit activations compute their products: ``"int8"``
            (``torch._int_mm``), ``"onednn"`` (oneDNN's u8 x s8 product: fast on AVX2 CPUs, where ``_int_mm`` is
            not; 1- and 2-bit layers of 16 tokens or more), ``"float"`` (an fp32 product of the same integer codes)
            or ``"auto"`` (the fastest on the device, timed once per process). Every kernel gives bit-identical
            results. Not a property of the weights: change it with ``XTCGPT2LMHeadModel.set_xtc_kernel``.
        quantization_config: (not a field; packed quantised configs only) the Transformers-standard description of
            the quantisation, ``{"quant_method": "xtc", "weight_bits": ..., ...}`` (see :meth:`xtc_quantization_config`),
            written to ``config.json`` so that tools reading ``quantization_config`` see how the model is quantised.

    Example:
        >>> from xtc_hf import XTCGPT2Config
        >>> config = XTCGPT2Config(n_layer=6, teacher_layers=[1, 3, 5, 7, 9, 11], weight_bits=1, activation_bits=8)
        >>> config.is_quantized
        True
    """

    model_type = "xtc_gpt2"

    weight_bits: int = 1
    activation_bits: int = 8
    weight_granularity: str = "matrix"
    quantize_embeddings: bool = True
    embedding_bits: int | None = None
    embedding_int8_rows: int | None = None
    position_embedding_bits: int | None = None
    teacher_layers: list[int] | None = None
    packed: bool = False
    xtc_kernel: str = "auto"

    def __post_init__(self, **kwargs):
        # Checked here rather than in a ``validate_*`` hook so that users get a plain ``ValueError``.
        self.check_xtc_settings()
        super().__post_init__(**kwargs)
        if self.packed and self.is_quantized and getattr(self, "quantization_config", None) is None:
            # checkpoints packed before `quantization_config` existed get it on load, so they look the same
            self.quantization_config = self.xtc_quantization_config()

    def check_xtc_settings(self):
        """Raise a ``ValueError`` naming the setting, its value and the fix if an XTC setting is invalid."""
        if isinstance(self.weight_bits, bool) or self.weight_bits not in WEIGHT_BITS:
            raise ValueError(
                f"`weight_bits` must be one of {WEIGHT_BITS} (1 = binary, 2 = ternary, 4 = int4, 8 = int8, 32 = float), "
                f"got {self.weight_bits!r}."
            )
        if isinstance(self.activation_bits, bool) or self.activation_bits not in ACTIVATION_BITS:
            raise ValueError(
                f"`activation_bits` must be one of {ACTIVATION_BITS} (8 = int8 per token, 32 = float), "
                f"got {self.activation_bits!r}."
            )
        if self.weight_granularity not in GRANULARITIES:
            raise ValueError(f"`weight_granularity` must be one of {GRANULARITIES}, got {self.weight_granularity!r}.")
        if self.embedding_bits is not None:
            if isinstance(self.embedding_bits, bool) or self.embedding_bits not in WEIGHT_BITS:
                raise ValueError(
                    f"`embedding_bits` must be None (follow `weight_bits`) or one of {WEIGHT_BITS}, got "
                    f"{self.embedding_bits!r}."
                )
            if self.embedding_bits < 32 and not self.quantize_embeddings:
                raise ValueError(
                    f"`embedding_bits={self.embedding_bits}` quantises the word embeddings but `quantize_embeddings` is "
                    "False; drop one of the two settings."
                )
        rows = self.embedding_int8_rows
        if rows is not None:
            if isinstance(rows, bool) or not isinstance(rows, int) or not 0 < rows <= self.vocab_size:
                raise ValueError(
                    f"`embedding_int8_rows` must be None or an integer in [1, {self.vocab_size}] (`vocab_size`), got "
                    f"{rows!r}."
                )
            if not self.word_embedding_bits < 8:
                raise ValueError(
                    f"`embedding_int8_rows={rows}` keeps rows at 8 bits among lower-bit word embeddings, but they are "
                    f"{self.word_embedding_bits}-bit; set `embedding_bits` to 1, 2 or 4, or drop `embedding_int8_rows`."
                )
        bits = self.position_embedding_bits
        if bits is not None and (isinstance(bits, bool) or bits not in WEIGHT_BITS):
            raise ValueError(
                f"`position_embedding_bits` must be None (float position embeddings) or one of {WEIGHT_BITS}, got "
                f"{bits!r}."
            )
        if self.xtc_kernel not in XTC_KERNELS:
            raise ValueError(f"`xtc_kernel` must be one of {XTC_KERNELS}, got {self.xtc_kernel!r}.")
        if self.teacher_layers is not None:
            layers = list(self.teacher_layers)
            if len(layers) != self.n_layer:
                raise ValueError(
                    f"`teacher_layers` lists {len(layers)} layers but `n_layer` is {self.n_layer}; give one teacher "
                    "layer index per student block."
                )
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers) or len(set(layers)) != len(
                layers
            ):
                raise ValueError(f"`teacher_layers` must be distinct non-negative integers, got {layers!r}.")
        if self.add_cross_attention:
            raise ValueError(
                "`add_cross_attention=True` is not supported by XTC GPT-2 models; use a decoder-only GPT-2."
            )

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """Read an XTC config; refuse a stock GPT-2 checkpoint, whose ``Conv1D`` weights need converting."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        source = config_dict.get("model_type")
        if source != cls.model_type:
            raise ValueError(
                f"{pretrained_model_name_or_path!r} holds a {source!r} model, not an XTC one. Convert a GPT-2 "
                "checkpoint with `XTCGPT2LMHeadModel.from_gpt2(GPT2LMHeadModel.from_pretrained(path), ...)` or "
                "compress it with `xtc_hf.xtc_compress`."
            )
        return config_dict, kwargs

    @property
    def word_embedding_bits(self) -> int:
        """Bits of the word embeddings and tied LM head: ``embedding_bits`` if set, else ``weight_bits`` when
        ``quantize_embeddings``, else 32.

        Example:
            >>> XTCGPT2Config(n_layer=2, weight_bits=1).word_embedding_bits
            1
            >>> XTCGPT2Config(n_layer=2, weight_bits=1, embedding_bits=8).word_embedding_bits
            8
        """
        if self.embedding_bits is not None:
            return self.embedding_bits
        return self.weight_bits if self.quantize_embeddings else 32

    @property
    def position_bits(self) -> int:
        """Bits of the position embeddings: ``position_embedding_bits`` if set, else 32 (float)."""
        return 32 if self.position_embedding_bits is None else self.position_embedding_bits

    @property
    def is_quantized(self) -> bool:
        """Whether any weight (blocks, word or position embeddings) or activation is quantised."""
        return min(self.weight_bits, self.activation_bits, self.word_embedding_bits, self.position_bits) < 32

    def xtc_quantization_config(self) -> dict:
        """The ``quantization_config`` of a packed checkpoint with these settings (``quant_method: "xtc"``).

        ``modules`` are the quantised modules (``*`` = every block; the LM head is the tied word embedding) and
        ``modules_to_not_convert`` those kept in floating point; LayerNorms and biases are never quantised.

        Example:
            >>> XTCGPT2Config(n_layer=2, weight_bits=2).xtc_quantization_config()["modules"][-1]
            'transformer.wte'
        """
        # 32-bit block weights with 8-bit activations still quantise the blocks' inputs; only 8-bit embeddings on a
        # float model leave the blocks alone
        blocks = self.weight_bits < 32 or self.activation_bits < 32
        modules = [f"transformer.h.*.{name}" for name in QUANTIZED_BLOCK_MODULES] if blocks else []
        embeddings = self.word_embedding_bits < 32
        # `embedding_bits` and `position_embedding_bits` only when set: older checkpoints keep their description
        extra = {} if self.embedding_bits is None else {"embedding_bits": self.embedding_bits}
        if self.embedding_int8_rows is not None:
            extra["embedding_int8_rows"] = self.embedding_int8_rows
        if self.position_embedding_bits is not None:
            extra["position_embedding_bits"] = self.position_embedding_bits
        positions = self.position_bits < 32
        return {
            "quant_method": QUANT_METHOD,
            "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
            "weight_granularity": self.weight_granularity,
            "quantize_embeddings": self.quantize_embeddings,
            **extra,
            "modules": modules
            + (["transformer.wte"] if embeddings else [])
            + (["transformer.wpe"] if positions else []),
            "modules_to_not_convert": ([] if positions else ["transformer.wpe"])
            + ([] if embeddings else ["transformer.wte"])
            + ([] if blocks else ["transformer.h"]),
            "weight_format": "packed",
        }


# `quant_method: "xtc"` in config.json is understood by Transformers wherever this file is imported: by `import xtc_hf`
# and by every `trust_remote_code` load, which imports the configuration first (tools such as lm-evaluation-harness
# parse `quantization_config` right after `AutoConfig`, before any model code). The quantizer file travels with the
# checkpoint, found by this relative import; it imports the constants from ``constants_xtc``, never this file.
from .quantizer_xtc import register_xtc_quantizer  # noqa: E402

register_xtc_quantizer()

__all__ = [
    "ACTIVATION_BITS",
    "GRANULARITIES",
    "QUANTIZED_BLOCK_MODULES",
    "QUANT_METHOD",
    "WEIGHT_BITS",
    "XTCGPT2Config",
]
