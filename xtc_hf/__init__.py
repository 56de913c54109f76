"""XTC for GPT-2: layer reduction and 1-bit/2-bit/8-bit weights with int8 activations by knowledge distillation,
saved packed (really small) and run with int8 matrix products (really faster).

Example:
    >>> from transformers import GPT2LMHeadModel
    >>> from xtc_hf import XTCRecipeConfig, xtc_compress
    >>> teacher = GPT2LMHeadModel.from_pretrained("runs/xtc/teacher/.../final")  # doctest: +SKIP
    >>> student = xtc_compress(teacher, XTCRecipeConfig(student_layers="odd", weight_bits=1), train_dataset,  # doctest: +SKIP
    ...                        tokenizer=tokenizer, output_dir="runs/xtc/1w8a6l")
    >>> student.save_pretrained("xtc-1w8a6l")  # doctest: +SKIP
"""

from transformers import AutoModelForCausalLM

from compress_utils.registration import register_auto_classes

from .callbacks import DistillationCallback, TimeBudgetCallback, hidden_state_loss, soft_cross_entropy
from .configuration_xtc import XTCGPT2Config
from .convergence import HeldOutKLCallback, heldout_kl
from .modeling_xtc import (
    XTCEmbedding,
    XTCGPT2LMHeadModel,
    XTCGPT2Model,
    XTCGPT2PreTrainedModel,
    XTCLinear,
    check_gpt2_shaped,
    fake_quantize_tokens,
    fake_quantize_weight,
    int8_linear,
    int8_matmul,
    pack_codes,
    quantize_tokens,
    quantize_weight,
    unpack_codes,
)
from .optimum_quantizer import XTCQuantizer
from .quantizer_xtc import XTCHfQuantizer, XTCQuantizationConfig, register_xtc_quantizer
from .recipe import XTCRecipeConfig, hidden_layer_map, resolve_student_layers, xtc_compress

register_auto_classes({XTCGPT2Config: {AutoModelForCausalLM: XTCGPT2LMHeadModel}})

__all__ = [
    "DistillationCallback",
    "HeldOutKLCallback",
    "TimeBudgetCallback",
    "XTCEmbedding",
    "XTCGPT2Config",
    "XTCGPT2LMHeadModel",
    "XTCGPT2Model",
    "XTCGPT2PreTrainedModel",
    "XTCHfQuantizer",
    "XTCLinear",
    "XTCQuantizationConfig",
    "XTCQuantizer",
    "XTCRecipeConfig",
    "check_gpt2_shaped",
    "fake_quantize_tokens",
    "fake_quantize_weight",
    "heldout_kl",
    "hidden_layer_map",
    "hidden_state_loss",
    "int8_linear",
    "int8_matmul",
    "pack_codes",
    "quantize_tokens",
    "quantize_weight",
    "register_xtc_quantizer",
    "resolve_student_layers",
    "soft_cross_entropy",
    "unpack_codes",
    "xtc_compress",
]
