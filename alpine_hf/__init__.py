"""ALPINE adaptive token pruning for RoBERTa-family (CodeBERT, GraphCodeBERT, UniXcoder) and BERT encoders.

Example:
    >>> from alpine_hf import AlpineBertForSequenceClassification
    >>> model = AlpineBertForSequenceClassification.from_pretrained(  # doctest: +SKIP
    ...     "sentence-transformers/all-MiniLM-L6-v2", num_labels=2, alpine_alpha=1.0, alpine_layers="all")
"""

from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from compress_utils.registration import register_auto_classes

from .configuration_alpine import AlpineBertConfig, AlpineRobertaConfig, resolve_alpine_layers
from .modeling_alpine import (
    ALPINE_SCORING_FUNCTIONS,
    AlpineBertForMaskedLM,
    AlpineBertForSequenceClassification,
    AlpineBertModel,
    AlpineModelOutput,
    AlpineRobertaForMaskedLM,
    AlpineRobertaForSequenceClassification,
    AlpineRobertaModel,
    AlpineScoringInputs,
    alpine_keep_mask,
    alpine_repack,
    register_alpine_scoring,
    sdpa_attention,
)

_AUTO_CLASSES = {
    AlpineRobertaConfig: {
        AutoModel: AlpineRobertaModel,
        AutoModelForSequenceClassification: AlpineRobertaForSequenceClassification,
        AutoModelForMaskedLM: AlpineRobertaForMaskedLM,
    },
    AlpineBertConfig: {
        AutoModel: AlpineBertModel,
        AutoModelForSequenceClassification: AlpineBertForSequenceClassification,
        AutoModelForMaskedLM: AlpineBertForMaskedLM,
    },
}
register_auto_classes(_AUTO_CLASSES)

__all__ = [
    "ALPINE_SCORING_FUNCTIONS",
    "AlpineBertConfig",
    "AlpineBertForMaskedLM",
    "AlpineBertForSequenceClassification",
    "AlpineBertModel",
    "AlpineModelOutput",
    "AlpineRobertaConfig",
    "AlpineRobertaForMaskedLM",
    "AlpineRobertaForSequenceClassification",
    "AlpineRobertaModel",
    "AlpineScoringInputs",
    "alpine_keep_mask",
    "alpine_repack",
    "register_alpine_scoring",
    "resolve_alpine_layers",
    "sdpa_attention",
]
