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
    repeated = sorted({index for index in indices if indices.count(index) > 1})
    if repeated:
        raise ValueError(
            f"`alpine_layers={indices!r}` names layer(s) {repeated} more than once; list each pruning layer once, "
            f"e.g. {sorted(set(indices))!r}."
        )
    return sorted(indices)


def check_alpine_alpha(alpha, num_hidden_layers: int | None, name: str = "alpine_alpha"):
    """Raise a ``ValueError`` unless ``alpha`` is a number > 0 or a list of one number > 0 per encoder layer.

    ``num_hidden_layers=None`` checks the values of a list but not its length (the model is not known yet); ``name``
    is the setting named in the error.

    Example:
        >>> check_alpine_alpha([1.5, 1.0, 0.5], num_hidden_layers=3)
        >>> check_alpine_alpha([1.5, 1.0], num_hidden_layers=3)
        Traceback (most recent call last):
        ...
        ValueError: `alpine_alpha` needs one keep-window width per encoder layer (3 values for this 3-layer model), got 2: [1.5, 1.0]; give one value per layer (values of layers that do not prune are unused), or a single number for every layer.
    """
    if not isinstance(alpha, (list, tuple)):
        if not _is_number(alpha) or not alpha > 0:
            raise ValueError(
                f"`{name}` must be a number > 0 (the keep-window width; smaller prunes more) or a list of one such "
                f"number per encoder layer, got {alpha!r}; 1.0 is the default."
            )
        return
    if num_hidden_layers is not None and len(alpha) != num_hidden_layers:
        raise ValueError(
            f"`{name}` needs one keep-window width per encoder layer ({num_hidden_layers} values for this "
            f"{num_hidden_layers}-layer model), got {len(alpha)}: {list(alpha)!r}; give one value per layer (values "
            "of layers that do not prune are unused), or a single number for every layer."
        )
    if not alpha:
        raise ValueError(f"`{name}` is an empty list; give one number > 0 per encoder layer, or a single number.")
    for index, value in enumerate(alpha):
        if not _is_number(value) or not value > 0:
            raise ValueError(
                f"`{name}` holds {value!r} for layer {index} ({list(alpha)!r}); every keep-window width must be a "
                "number > 0 (smaller prunes more), also for layers that do not prune."
            )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        alpine_alpha: width of the keep window ``[mu - alpha*sigma, mu + alpha*sigma]``; smaller prunes more. One number
            for every pruning layer, or a list of one number per encoder layer (``num_hidden_layers`` values; those of
            layers that do not prune are unused); :meth:`alpine_alpha_for` reads it.
        alpine_layers: ``"all"``, ``"even"``, ``"odd"``, ``"none"`` or a list of layer indices that prune (each once).
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
        check_alpine_alpha(self.alpine_alpha, self.num_hidden_layers)
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

    def alpine_alpha_for(self, layer_index: int) -> float:
        """The keep-window width of layer ``layer_index``: ``alpine_alpha``, or its entry for that layer.

        Example:
            >>> config = AlpineBertConfig(num_hidden_layers=3, alpine_alpha=[1.5, 1.0, 0.5], alpine_layers=[1, 2])
            >>> config.alpine_alpha_for(2), AlpineBertConfig(num_hidden_layers=3).alpine_alpha_for(2)
            (0.5, 1.0)
        """
        if (
            isinstance(layer_index, bool)
            or not isinstance(layer_index, int)
            or not 0 <= layer_index < self.num_hidden_layers
        ):
            raise ValueError(
                f"`layer_index` must be a layer of this {self.num_hidden_layers}-layer model (0 to "
                f"{self.num_hidden_layers - 1}), got {layer_index!r}."
            )
        alpha = self.alpine_alpha
        return float(alpha[layer_index] if isinstance(alpha, (list, tuple)) else alpha)

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

    alpine_alpha: float | int | list[float | int] = 1.0
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

    alpine_alpha: float | int | list[float | int] = 1.0
    alpine_layers: str | list[int] = "all"
    alpine_merge: bool = True
    alpine_scoring: str = "attention"
    alpine_special_token_ids: list[int] | None = None


__all__ = ["AlpineBertConfig", "AlpineRobertaConfig", "check_alpine_alpha", "resolve_alpine_layers"]
