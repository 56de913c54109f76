# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Configurations of ALPINE token-pruned encoders (RoBERTa family and BERT).

This file travels with saved checkpoints (``trust_remote_code``): it imports only torch, transformers and
huggingface_hub, and files of its own folder by relative import.
"""

import json
import os

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, RobertaConfig

LAYER_MODES = ("all", "even", "odd", "none")


def resolve_alpine_layers(layers, num_hidden_layers: int) -> list[int]:
    """Turn an ``alpine_layers`` setting into the sorted list of layer indices that prune.

    Example:
        >>> resolve_alpine_layers("even", 6)
        [0, 2, 4]
        >>> resolve_alpine_layers([5, 1], 6)
        [1, 5]
    """
    if isinstance(layers, str):
        if layers not in LAYER_MODES:
            raise ValueError(
                f"`alpine_layers` must be one of {LAYER_MODES} or a list of layer indices, got {layers!r}."
            )
        if layers == "all":
            return list(range(num_hidden_layers))
        if layers == "even":
            return list(range(0, num_hidden_layers, 2))
        if layers == "odd":
            return list(range(1, num_hidden_layers, 2))
        return []
    indices = list(layers)
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_hidden_layers:
            raise ValueError(
                f"`alpine_layers` holds {index!r}, which is not a layer index of this {num_hidden_layers}-layer "
                f"model; use integers in [0, {num_hidden_layers - 1}] or one of {LAYER_MODES}."
            )
    return sorted(set(indices))


_SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<s>", "</s>")


def _special_ids_from_tokenizer(folder: str) -> list[int]:
    """CLS/SEP ids from a checkpoint folder's ``tokenizer.json`` (BERT configs do not store them)."""
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        added = json.load(handle).get("added_tokens", [])
    return sorted(token["id"] for token in added if token.get("content") in _SPECIAL_TOKENS)


class AlpineConfigMixin:
    """ALPINE settings shared by the RoBERTa and BERT configurations.

    Attributes:
        alpine_alpha: width of the keep window ``[mu - alpha*sigma, mu + alpha*sigma]``; smaller prunes more.
        alpine_layers: ``"all"``, ``"even"``, ``"odd"``, ``"none"`` or a list of layer indices that prune.
        alpine_merge: average the pruned rows of each sequence into one kept row (paper's RQ3).
        alpine_scoring: name of a registered importance-scoring function (``"attention"`` is the paper's Eq. 14).
        alpine_special_token_ids: token ids that are never pruned and never scored (CLS/BOS, SEP/EOS). ``None``
            uses the config's ``bos_token_id``/``eos_token_id`` (RoBERTa) or ``cls_token_id``/``sep_token_id``.
            Position 0 and the last real token of each sequence are always treated as special.
    """

    def __post_init__(self, **kwargs):
        # Checked here rather than in a ``validate_*`` hook so that users get a plain ``ValueError``.
        self.check_alpine_settings()
        super().__post_init__(**kwargs)

    def check_alpine_settings(self):
        """Raise a ``ValueError`` naming the setting, its value and the fix if an ALPINE setting is invalid."""
        alpha = self.alpine_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"`alpine_alpha` must be a number > 0 (the keep-window width), got {alpha!r}.")
        resolve_alpine_layers(self.alpine_layers, self.num_hidden_layers)
        if not isinstance(self.alpine_scoring, str) or not self.alpine_scoring:
            raise ValueError(
                f"`alpine_scoring` must be the name of a registered scoring function, got {self.alpine_scoring!r}."
            )

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """Read a stock or ALPINE config; refuse checkpoints of another architecture."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        source = config_dict.get("model_type")
        if source not in cls.accepted_model_types:
            raise ValueError(
                f"{pretrained_model_name_or_path!r} holds a {source!r} model but {cls.__name__} loads only "
                f"{sorted(cls.accepted_model_types)} checkpoints; use "
                f"{'AlpineBertConfig/AlpineBert*' if cls.model_type == 'alpine_roberta' else 'AlpineRobertaConfig/AlpineRoberta*'}"
                " for the other family, or a stock Transformers class for other architectures."
            )
        config_dict["model_type"] = cls.model_type  # a stock checkpoint becomes an ALPINE one, silently
        if config_dict.get("alpine_special_token_ids") is None and os.path.isdir(str(pretrained_model_name_or_path)):
            ids = _special_ids_from_tokenizer(str(pretrained_model_name_or_path))
            if ids:
                config_dict["alpine_special_token_ids"] = ids
        return config_dict, kwargs

    @property
    def alpine_layer_indices(self) -> list[int]:
        """The sorted indices of the layers that prune tokens."""
        return resolve_alpine_layers(self.alpine_layers, self.num_hidden_layers)

    @property
    def alpine_special_ids(self) -> list[int]:
        """Token ids that are always kept and excluded from the score statistics."""
        if self.alpine_special_token_ids is not None:
            return list(self.alpine_special_token_ids)
        names = ("bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")
        ids = []
        for name in names:
            value = getattr(self, name, None)
            values = value if isinstance(value, list) else [value]
            ids.extend(v for v in values if isinstance(v, int) and v != self.pad_token_id)
        return sorted(set(ids))


@strict
class AlpineRobertaConfig(AlpineConfigMixin, RobertaConfig):
    """RoBERTa configuration (CodeBERT, GraphCodeBERT, UniXcoder) with ALPINE token pruning.

    Example:
        >>> from alpine_hf import AlpineRobertaConfig
        >>> config = AlpineRobertaConfig(alpine_alpha=1.0, alpine_layers="even", num_hidden_layers=4)
        >>> config.alpine_layer_indices
        [0, 2]
    """

    model_type = "alpine_roberta"
    accepted_model_types = frozenset({"roberta", "xlm-roberta", "alpine_roberta"})

    alpine_alpha: float | int = 1.0
    alpine_layers: str | list[int] = "all"
    alpine_merge: bool = True
    alpine_scoring: str = "attention"
    alpine_special_token_ids: list[int] | None = None


@strict
class AlpineBertConfig(AlpineConfigMixin, BertConfig):
    """BERT configuration with ALPINE token pruning.

    BERT configs carry no CLS/SEP ids; the model treats position 0 and the last real token as special, and
    ``alpine_special_token_ids`` (set by ``from_pretrained`` of a stock checkpoint through ``AlpinePruningConfig`` or
    by hand, e.g. ``[101, 102]`` for uncased BERT vocabularies) adds every further SEP of sequence pairs.

    Example:
        >>> from alpine_hf import AlpineBertConfig
        >>> AlpineBertConfig(alpine_layers=[0, 1], num_hidden_layers=2).alpine_layer_indices
        [0, 1]
    """

    model_type = "alpine_bert"
    accepted_model_types = frozenset({"bert", "alpine_bert"})

    alpine_alpha: float | int = 1.0
    alpine_layers: str | list[int] = "all"
    alpine_merge: bool = True
    alpine_scoring: str = "attention"
    alpine_special_token_ids: list[int] | None = None


__all__ = ["AlpineBertConfig", "AlpineRobertaConfig", "resolve_alpine_layers"]
