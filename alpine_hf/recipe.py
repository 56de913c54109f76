"""The ALPINE recipe: a dataclass of settings plus one function that turns a stock encoder into an ALPINE one."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from transformers import PreTrainedModel

from .configuration_alpine import LAYER_MODES, AlpineBertConfig, AlpineRobertaConfig, check_alpine_alpha
from .modeling_alpine import (
    ALPINE_SCORING_FUNCTIONS,
    AlpineBertForMaskedLM,
    AlpineBertForSequenceClassification,
    AlpineBertModel,
    AlpineRobertaForMaskedLM,
    AlpineRobertaForSequenceClassification,
    AlpineRobertaModel,
)

logger = logging.getLogger(__name__)

# stock class name -> ALPINE class with the same module tree (so the state dict transfers unchanged)
_TARGETS = {
    "RobertaModel": AlpineRobertaModel,
    "RobertaForSequenceClassification": AlpineRobertaForSequenceClassification,
    "RobertaForMaskedLM": AlpineRobertaForMaskedLM,
    "BertModel": AlpineBertModel,
    "BertForSequenceClassification": AlpineBertForSequenceClassification,
    "BertForMaskedLM": AlpineBertForMaskedLM,
}


@dataclass
class AlpinePruningConfig:
    """ALPINE settings (paper Sec. III); see :func:`apply_alpine`.

    Example:
        >>> AlpinePruningConfig(alpha=[1.5, 1.0, 0.5], layers=[1, 2]).to_config_kwargs()["alpine_alpha"]
        [1.5, 1.0, 0.5]
    """

    alpha: float | list[float] = field(
        default=1.0,
        metadata={
            "help": "Keep-window width: keep mu - alpha*sigma <= s <= mu + alpha*sigma; one number, or one per "
            "encoder layer (comma-separated; values of layers that do not prune are unused)."
        },
    )
    layers: str | list[int] = field(
        default="all", metadata={"help": f"One of {LAYER_MODES} or a list of layer indices."}
    )
    merge: bool = field(default=True, metadata={"help": "Average the pruned rows of a sequence into one kept row."})
    scoring: str = field(default="attention", metadata={"help": "Registered importance-scoring function."})
    special_token_ids: list[int] | None = field(
        default=None, metadata={"help": "Token ids never pruned (CLS/SEP); None reads them from the config."}
    )

    def __post_init__(self):
        if isinstance(self.alpha, tuple):
            self.alpha = list(self.alpha)
        check_alpine_alpha(self.alpha, num_hidden_layers=None, name="alpha")  # the length is checked by apply_alpine
        if isinstance(self.layers, str) and self.layers not in LAYER_MODES:
            raise ValueError(f"`layers` must be one of {LAYER_MODES} or a list of layer indices, got {self.layers!r}.")
        if not isinstance(self.layers, str) and any(
            isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.layers
        ):
            raise ValueError(f"`layers` must hold layer indices (integers >= 0), got {self.layers!r}.")
        if not isinstance(self.layers, str) and len(set(self.layers)) != len(self.layers):
            raise ValueError(
                f"`layers={list(self.layers)!r}` names a layer more than once; list each pruning layer once, e.g. "
                f"{sorted(set(self.layers))!r}."
            )
        ids = self.special_token_ids
        if ids is not None and any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise ValueError(f"`special_token_ids` must be token ids (integers >= 0) or None, got {ids!r}.")
        if self.scoring not in ALPINE_SCORING_FUNCTIONS:
            raise ValueError(
                f"`scoring={self.scoring!r}` is not registered; choose one of {sorted(ALPINE_SCORING_FUNCTIONS)} "
                "or register yours with `alpine_hf.register_alpine_scoring`."
            )

    def to_config_kwargs(self) -> dict:
        """The settings as ``alpine_*`` config attributes."""
        return {f"alpine_{key}": value for key, value in asdict(self).items()}


def apply_alpine(model: PreTrainedModel, config: AlpinePruningConfig | None = None) -> PreTrainedModel:
    """Return an ALPINE version of a stock BERT/RoBERTa model with the same weights.

    Works on ``BertModel``, ``RobertaModel`` (CodeBERT, GraphCodeBERT, UniXcoder) and their sequence-classification
    and masked-LM heads; the result is an ``AlpineBert*``/``AlpineRoberta*`` model on the same device and dtype, ready
    for ``Trainer`` and ``save_pretrained``. An ALPINE model gets the new settings.

    Example:
        >>> from transformers import BertModel
        >>> from alpine_hf.recipe import AlpinePruningConfig, apply_alpine
        >>> stock = BertModel.from_pretrained(minilm_dir)  # doctest: +SKIP
        >>> model = apply_alpine(stock, AlpinePruningConfig(alpha=1.0, layers="even"))  # doctest: +SKIP
        >>> # a wider window (prunes less) early, a narrower one late: one alpha per layer of the 6-layer MiniLM
        >>> model = apply_alpine(stock, AlpinePruningConfig(alpha=[1.5, 1.5, 1, 1, 0.5, 0.5]))  # doctest: +SKIP
    """
    config = config or AlpinePruningConfig()
    name = type(model).__name__.removeprefix("Alpine")
    if name not in _TARGETS:
        raise ValueError(
            f"`model` is a {type(model).__name__}; ALPINE converts {sorted(_TARGETS)} (BERT and RoBERTa-family "
            "encoders). Load other checkpoints with one of those classes first."
        )
    target = _TARGETS[name]
    config_class = AlpineRobertaConfig if target.config_class is AlpineRobertaConfig else AlpineBertConfig
    settings = model.config.to_dict()
    settings.pop("model_type", None)
    settings.pop("auto_map", None)
    settings.update(config.to_config_kwargs())
    if config.special_token_ids is None:
        settings.pop("alpine_special_token_ids")
    new_config = config_class(**settings)
    new_config._attn_implementation = model.config._attn_implementation
    parameter = next(model.parameters())
    alpine = target(new_config)
    alpine.load_state_dict(model.state_dict(), strict=True)
    alpine.to(device=parameter.device, dtype=parameter.dtype)
    alpine.train(model.training)
    logger.info("Converted %s to %s (%s)", type(model).__name__, target.__name__, config)
    return alpine


__all__ = ["AlpinePruningConfig", "apply_alpine"]
