"""Flab-Pruner: vocabulary, layer and FFN pruning of Qwen2/Qwen3/Llama code decoders, with recovery by distillation or LoRA.

Example:
    >>> from flab_hf import FlabConfig, flab_prune
    >>> pruned, pruned_tokenizer, report = flab_prune(model, tokenizer, corpus, FlabConfig(layers_to_prune=4))  # doctest: +SKIP
    >>> report["params"]["ratio"]  # doctest: +SKIP
"""

from transformers import AutoModel, AutoModelForCausalLM

from compress_utils.registration import register_auto_classes

from .callbacks import LoRARecoveryCallback
from .configuration_flab import FlabLlamaConfig, FlabQwen2Config, FlabQwen3Config, check_intermediate_sizes
from .distillation import (
    DistillationConfig,
    FlabDistillationCallback,
    RecoveryCurveCallback,
    distill_recover,
    hidden_layer_map,
)
from .modeling_flab import (
    FlabLlamaForCausalLM,
    FlabLlamaModel,
    FlabMLP,
    FlabQwen2ForCausalLM,
    FlabQwen2Model,
    FlabQwen3ForCausalLM,
    FlabQwen3Model,
)
from .pruning import (
    FFN_RULES,
    PAPER_FFN_RULES,
    SUPPORTED_MODEL_TYPES,
    count_parameters,
    ffn_keep_indices,
    prune_vocabulary,
    remove_layers_,
    select_layers_block,
    select_layers_cosine,
    select_layers_kl,
)
from .quality import quality, text_perplexity
from .recipe import FlabConfig, flab_prune, save_pruned
from .recovery import RecoveryConfig, lora_recover, teacher_verified_samples

_AUTO_CLASSES = {
    FlabQwen2Config: {AutoModel: FlabQwen2Model, AutoModelForCausalLM: FlabQwen2ForCausalLM},
    FlabQwen3Config: {AutoModel: FlabQwen3Model, AutoModelForCausalLM: FlabQwen3ForCausalLM},
    FlabLlamaConfig: {AutoModel: FlabLlamaModel, AutoModelForCausalLM: FlabLlamaForCausalLM},
}
register_auto_classes(_AUTO_CLASSES)

__all__ = [
    "DistillationConfig",
    "FFN_RULES",
    "FlabConfig",
    "FlabDistillationCallback",
    "FlabLlamaConfig",
    "FlabLlamaForCausalLM",
    "FlabLlamaModel",
    "FlabMLP",
    "FlabQwen2Config",
    "FlabQwen2ForCausalLM",
    "FlabQwen2Model",
    "FlabQwen3Config",
    "FlabQwen3ForCausalLM",
    "FlabQwen3Model",
    "LoRARecoveryCallback",
    "PAPER_FFN_RULES",
    "RecoveryConfig",
    "RecoveryCurveCallback",
    "SUPPORTED_MODEL_TYPES",
    "check_intermediate_sizes",
    "count_parameters",
    "distill_recover",
    "ffn_keep_indices",
    "flab_prune",
    "hidden_layer_map",
    "lora_recover",
    "prune_vocabulary",
    "quality",
    "remove_layers_",
    "save_pruned",
    "select_layers_block",
    "select_layers_cosine",
    "select_layers_kl",
    "teacher_verified_samples",
    "text_perplexity",
]
