"""``Trainer`` callbacks for ALPINE models."""

from __future__ import annotations

import logging

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def find_alpine_encoder(model):
    """The ALPINE encoder inside ``model`` (a bare encoder, a task model, or a wrapped/PEFT model), or ``None``."""
    for module in model.modules():
        if hasattr(module, "alpine_stats") and hasattr(module, "reset_alpine_stats"):
            return module
    return None


class AlpineStatsCallback(TrainerCallback):
    """Log ALPINE's mean kept length per layer and its analytic FLOPs ratio with the Trainer's logs.

    At every logging step, adds ``alpine/kept_len_layer_<i>`` (mean real rows after layer ``i``),
    ``alpine/input_len`` and ``alpine/flops_ratio`` (stock FLOPs / ALPINE FLOPs, paper Eq. 10 + 13) over the batches
    seen since the previous log, then resets the counters. Acts on the main process only.

    Example:
        >>> trainer = Trainer(model=alpine_model, args=args, train_dataset=train,
        ...                   callbacks=[AlpineStatsCallback()])  # doctest: +SKIP
    """

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if not state.is_world_process_zero or model is None or logs is None:
            return
        encoder = find_alpine_encoder(model)
        if encoder is None:
            logger.warning("AlpineStatsCallback: the model has no ALPINE encoder; nothing to log.")
            return
        stats = encoder.alpine_stats
        if stats["sequences"] == 0:
            return
        sequences = stats["sequences"]
        entries = {"alpine/input_len": round(stats["input_tokens"] / sequences, 2)}
        for index, kept in enumerate(stats["kept_tokens"].tolist()):
            entries[f"alpine/kept_len_layer_{index}"] = round(kept / sequences, 2)
        entries["alpine/flops_ratio"] = round(stats["flops_stock"] / max(stats["flops_alpine"], 1.0), 4)
        logs.update(entries)
        if state.log_history:  # the Trainer appended its copy of `logs` before calling callbacks
            state.log_history[-1].update(entries)
        encoder.reset_alpine_stats()


__all__ = ["AlpineStatsCallback", "find_alpine_encoder"]
