# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""The three Flab-Pruner operations (paper Sec. 3.2-3.4) on Qwen2, Qwen3 and Llama-family causal LMs, one module per
section, re-exported here; this module adds the conversion to a saveable model and parameter counting.

- :func:`prune_vocabulary` (:mod:`flab_hf.vocabulary`): keep the tokens a code corpus uses (plus special, added and byte-level base tokens),
  rebuild the fast tokenizer with contiguous ids in the original order and slice ``embed_tokens``/``lm_head``.
- :func:`select_layers_kl` (:mod:`flab_hf.layers`; greedy, iterative, paper Algorithm 2), :func:`select_layers_cosine` (ShortGPT's
  one-shot Block Influence, the released code's score) or :func:`select_layers_block` (the contiguous block with the
  lowest KL), then :func:`remove_layers_`.
- :func:`ffn_keep_indices`, :func:`select_ffn_rule` and :func:`prune_ffn_` (:mod:`flab_hf.ffn`): remove K intermediate neurons per layer.
- shared checks and the calibration forward pass: :mod:`flab_hf.calibration`.

All KL values are ``KL(P_ref || P_pruned)`` of next-token distributions averaged over calibration tokens (Eq. 5-6).
"""

from __future__ import annotations

import copy

from transformers import PreTrainedModel

from compress_utils.counting import count_parameters as core_count_parameters
from compress_utils.distributed import distributed_state

from .calibration import (
    FFN_RULES,
    FLAB_CLASSES,
    PAPER_FFN_RULES,
    SUPPORTED_MODEL_TYPES,
    CalibrationRunner,
    check_model,
    kl_divergence,
    mean_kl,
    tokenizer_state,
)
from .ffn import (
    allocate_ffn_budget,
    ffn_importance,
    ffn_keep_indices,
    ffn_plan,
    ffn_rule_kl,
    ffn_widths,
    prune_ffn_,
    resolve_ffn_neurons,
    select_ffn_rule,
)
from .layers import (
    check_layer_count,
    remove_layers_,
    select_layers_block,
    select_layers_cosine,
    select_layers_kl,
)
from .vocabulary import (
    bytes_to_unicode,
    count_token_ids,
    iter_corpus_texts,
    prune_vocabulary,
    rebuild_tokenizer,
    slice_embeddings_,
    vocabulary_to_keep,
)

# --------------------------------------------------------------------------------------------------- saving format


def to_saveable(model: PreTrainedModel) -> PreTrainedModel:
    """A model whose config describes its shapes: stock class if FFN widths are uniform, else a Flab class.

    A uniform stock model is returned unchanged (its ``intermediate_size`` is already set by :func:`prune_ffn_`).
    """
    widths = ffn_widths(model)
    model_type = model.config.model_type
    base_type = model_type.removeprefix("flab_")
    if len(set(widths)) == 1 and not model_type.startswith("flab_"):
        model.config.intermediate_size = widths[0]
        return model
    config_class, model_class = FLAB_CLASSES[base_type]
    if model_type.startswith("flab_"):
        model.config.intermediate_sizes = widths
        model.config.intermediate_size = max(widths)
        return model
    values = model.config.to_dict()
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "intermediate_size"):
        values.pop(key, None)
    config = config_class(**values, intermediate_sizes=widths, intermediate_size=max(widths))
    reference = model.get_input_embeddings().weight
    new = model_class(config).to(device=reference.device, dtype=reference.dtype)
    new.load_state_dict(model.state_dict(), strict=True)
    new.generation_config = copy.deepcopy(model.generation_config)
    new.eval()
    return new


def _component(name: str) -> str:
    if "embed_tokens" in name:
        return "embed_tokens"
    if "lm_head" in name:
        return "lm_head"
    if ".self_attn." in name:
        return "attention"
    if ".mlp." in name:
        return "ffn"
    return "norms"


def count_parameters(model: PreTrainedModel) -> dict[str, int]:
    """Parameters per component (tied ``lm_head`` counted once, under ``embed_tokens``).

    Example:
        >>> count_parameters(model)["total"]  # doctest: +SKIP
    """
    counts = {"embed_tokens": 0, "lm_head": 0, "attention": 0, "ffn": 0, "norms": 0}
    counts.update(core_count_parameters(model, component=_component))
    return counts


__all__ = [
    "CalibrationRunner",
    "FFN_RULES",
    "PAPER_FFN_RULES",
    "SUPPORTED_MODEL_TYPES",
    "allocate_ffn_budget",
    "bytes_to_unicode",
    "check_layer_count",
    "check_model",
    "count_parameters",
    "count_token_ids",
    "distributed_state",
    "ffn_importance",
    "ffn_keep_indices",
    "ffn_plan",
    "ffn_rule_kl",
    "ffn_widths",
    "iter_corpus_texts",
    "kl_divergence",
    "mean_kl",
    "prune_ffn_",
    "prune_vocabulary",
    "rebuild_tokenizer",
    "remove_layers_",
    "resolve_ffn_neurons",
    "select_ffn_rule",
    "select_layers_block",
    "select_layers_cosine",
    "select_layers_kl",
    "slice_embeddings_",
    "to_saveable",
    "tokenizer_state",
    "vocabulary_to_keep",
]
