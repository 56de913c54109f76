"""Auto-class registration: what makes ``AutoModel*.from_pretrained`` build a method's classes, in one loop.

Example:
    >>> from transformers import AutoModel
    >>> register_auto_classes({MyConfig: {AutoModel: MyModel}})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

from transformers import AutoConfig


def register_auto_classes(classes: Mapping[type, Mapping[type, type]]) -> None:
    """Register each config with ``AutoConfig`` and each model with its Auto class, in-process and for remote code.

    In-process registration lets ``AutoModel*.from_pretrained`` of a saved folder work without
    ``trust_remote_code``; ``register_for_auto_class`` makes ``save_pretrained`` copy the code and write ``auto_map``
    so the checkpoint also loads where the library is not installed.

    Args:
        classes: ``{config class: {Auto class: model class}}``, e.g. ``{Cfg: {AutoModelForCausalLM: Model}}``.

    Example:
        >>> register_auto_classes({MyConfig: {AutoModelForCausalLM: MyForCausalLM}})  # doctest: +SKIP
    """
    for config_class, models in classes.items():
        if not getattr(config_class, "model_type", ""):
            raise ValueError(f"`{config_class.__name__}.model_type` must be set to register it, got an empty value.")
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)


__all__ = ["register_auto_classes"]
