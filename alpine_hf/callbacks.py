"""``Trainer`` callbacks for ALPINE models."""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from compress_utils.emissions import CODECARBON_HINT, EmissionsCallback, check_emissions_country

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
    seen since the previous log, then resets the counters. Under DDP the logged numbers are the main process's
    share of the batches (a sample of the same distribution; no collective in a logging event); use
    :func:`reduce_alpine_stats` for totals over every process.

    Example:
        >>> trainer = Trainer(model=alpine_model, args=args, train_dataset=train,
        ...                   callbacks=[AlpineStatsCallback()])  # doctest: +SKIP
    """

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if model is None or logs is None:
            return
        encoder = find_alpine_encoder(model)
        if not state.is_world_process_zero:
            if encoder is not None:  # other processes only reset, so that their counters do not grow without end
                encoder.reset_alpine_stats()
            return
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


def reduce_alpine_stats(stats: dict, device=None) -> dict:
    """``stats`` (an encoder's ``alpine_stats``) summed over every process of a distributed run; unchanged otherwise.

    Every process must call it (it is a collective). ``device`` is where the reduction runs (the process's device
    for nccl; CPU for gloo).

    Example:
        >>> stats = reduce_alpine_stats(encoder.alpine_stats)  # doctest: +SKIP
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return stats
    scalars = ("sequences", "input_tokens", "flops_stock", "flops_alpine")
    flat = torch.cat([torch.tensor([float(stats[key]) for key in scalars], dtype=torch.float64), stats["kept_tokens"]])
    flat = flat.to(device or "cpu")
    torch.distributed.all_reduce(flat)
    flat = flat.cpu()
    reduced = {key: float(value) for key, value in zip(scalars, flat.tolist())}
    reduced["sequences"] = int(reduced["sequences"])
    reduced["kept_tokens"] = flat[len(scalars) :].clone()
    return reduced


__all__ = [
    "AlpineStatsCallback",
    "CODECARBON_HINT",
    "EmissionsCallback",
    "check_emissions_country",
    "find_alpine_encoder",
    "reduce_alpine_stats",
]
