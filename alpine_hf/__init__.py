"""ALPINE adaptive token pruning for RoBERTa-family (CodeBERT, GraphCodeBERT, UniXcoder) and BERT encoders.

Example:
    >>> from alpine_hf import AlpineBertForSequenceClassification
    >>> model = AlpineBertForSequenceClassification.from_pretrained(  # doctest: +SKIP
    ...     "sentence-transformers/all-MiniLM-L6-v2", num_labels=2, alpine_alpha=1.0, alpine_layers="all")
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

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
for _config, _models in _AUTO_CLASSES.items():
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    _config.register_for_auto_class()
    for _auto, _model in _models.items():
        _auto.register(_config, _model, exist_ok=True)
        _model.register_for_auto_class(_auto.__name__)

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
