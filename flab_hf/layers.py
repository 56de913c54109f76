# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Layer pruning (paper Sec. 3.3): :func:`select_layers_kl` (greedy, iterative, paper Algorithm 2),
:func:`select_layers_cosine` (ShortGPT's one-shot Block Influence, the released code's score) or
:func:`select_layers_block` (the contiguous block of layers whose removal costs the least KL), then
:func:`remove_layers_`.

Example:
    >>> from flab_hf.layers import remove_layers_, select_layers_kl
    >>> choice = select_layers_kl(model, runner, references, n=2)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from .calibration import (
    CalibrationRunner,
    kl_divergence,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- layers


def check_layer_count(model, n: int) -> None:
    total = len(model.model.layers)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < total:
        raise ValueError(
            f"`layers_to_prune={n!r}` but the model has {total} decoder layers; prune an int in [0, {total - 1}] "
            "(at least one layer must remain)."
        )


def select_layers_kl(model, runner: CalibrationRunner, references, n: int, progress: bool = True) -> dict:
    """Greedy iterative layer removal minimising KL to ``references`` (paper Algorithm 2).

    At each step every remaining layer is tried; the hidden states entering each layer are computed once per step
    and reused, so trying layer ``j`` runs only the layers after it. Does not change ``model``.

    Returns ``{"removed": original indices in removal order, "kl": KL after each step, "scores": per-step KL of
    every candidate}``.
    """
    check_layer_count(model, n)
    layers = list(model.model.layers)
    current = list(range(len(layers)))
    removed, kls, scores = [], [], []
    main = runner.state is None or runner.state.is_main_process
    bar = tqdm(
        total=sum(len(current) - s for s in range(n)), desc="flab: KL layer search", disable=not progress or not main
    )
    for _ in range(n):
        # running KL sums per candidate: storing every candidate's log-probs would take candidates x calibration x
        # vocabulary floats
        totals = [0.0] * len(current)
        tokens = 0
        for b in range(len(runner.batches)):
            hidden = runner.embed(b)
            prefixes = []
            for position in range(len(current)):
                prefixes.append(hidden)
                hidden = runner.run(b, hidden, [layers[current[position]]])
            for position in range(len(current)):
                rest = [layers[i] for i in current[position + 1 :]]
                log_q = runner.log_probs(runner.run(b, prefixes[position], rest))
                totals[position] += float(kl_divergence(references[b], log_q).sum())
            tokens += references[b].shape[0] * references[b].shape[1]
        # sums over this process's batches -> sums over the whole calibration set (a no-op in one process)
        summed = runner.all_sum(torch.tensor([*totals, tokens], dtype=torch.float64)).tolist()
        totals, tokens = summed[:-1], summed[-1]
        step_scores = {}
        for position in range(len(current)):
            step_scores[current[position]] = totals[position] / tokens
            bar.update(1)
        best = min(step_scores, key=step_scores.get)
        removed.append(best)
        kls.append(step_scores[best])
        scores.append(step_scores)
        current.remove(best)
        logger.info("KL layer search: removed layer %d (KL %.4f)", best, step_scores[best])
    bar.close()
    return {"removed": removed, "kl": kls, "scores": scores}


def select_layers_block(model, runner: CalibrationRunner, references, n: int, progress: bool = True) -> dict:
    """Remove the contiguous block of ``n`` layers whose removal gives the lowest KL to ``references``.

    Every window ``[start, start + n)`` is tried once (``layers - n + 1`` candidates, against the greedy search's
    ``~n * layers``); the hidden state entering each window is computed once and reused. The greedy search may pick
    layers far apart, each removal breaking the interface between its neighbours; one block breaks a single one,
    which recovery then has to bridge (LLM-Streamline prunes one contiguous block too).
    Does not change ``model``.

    Returns ``{"removed": the block's original indices, "kl": its KL, "scores": {start: KL of the window}}``.
    """
    check_layer_count(model, n)
    if n == 0:
        return {"removed": [], "kl": 0.0, "scores": {}}
    layers = list(model.model.layers)
    starts = range(len(layers) - n + 1)
    totals = [0.0] * len(starts)
    tokens = 0
    main = runner.state is None or runner.state.is_main_process
    for b in tqdm(range(len(runner.batches)), desc="flab: KL block search", disable=not progress or not main):
        hidden = runner.embed(b)
        for start in starts:
            log_q = runner.log_probs(runner.run(b, hidden, layers[start + n :]))
            totals[start] += float(kl_divergence(references[b], log_q).sum())
            hidden = runner.run(b, hidden, [layers[start]])
        tokens += references[b].shape[0] * references[b].shape[1]
    summed = runner.all_sum(torch.tensor([*totals, tokens], dtype=torch.float64)).tolist()
    scores = {start: total / summed[-1] for start, total in zip(starts, summed[:-1])}
    best = min(scores, key=scores.get)
    logger.info("KL block search: removed layers %d-%d (KL %.4f)", best, best + n - 1, scores[best])
    return {"removed": list(range(best, best + n)), "kl": scores[best], "scores": scores}


def select_layers_cosine(model, runner: CalibrationRunner, n: int) -> dict:
    """ShortGPT's one-shot Block Influence: remove the ``n`` layers whose output is most similar to their input.

    ``BI_i = 1 - mean_token cos(h_i, h_{i+1})``; the released Flab-Pruner code uses this score. Does not change
    ``model``. Returns ``{"removed": original indices, "scores": BI per layer}``.
    """
    check_layer_count(model, n)
    layers = list(model.model.layers)
    totals = torch.zeros(len(layers), dtype=torch.float64)
    count = 0
    for b in range(len(runner.batches)):
        hidden = runner.embed(b)
        for index, layer in enumerate(layers):
            out = runner.run(b, hidden, [layer])
            totals[index] += torch.cosine_similarity(hidden.float(), out.float(), dim=-1).sum().double()
            hidden = out
        count += runner.batches[b].numel()
    summed = runner.all_sum(torch.cat([totals, torch.tensor([count], dtype=torch.float64)]))
    totals, count = summed[:-1], summed[-1].item()
    influence = 1 - totals / count
    removed = sorted(torch.argsort(influence)[:n].tolist())
    return {"removed": removed, "scores": {i: float(v) for i, v in enumerate(influence)}}


def remove_layers_(model, indices: Iterable[int]) -> PreTrainedModel:
    """Delete decoder layers in place; renumber ``layer_idx`` and shorten ``layer_types``/``intermediate_sizes``."""
    indices = set(indices)
    total = len(model.model.layers)
    if any(not 0 <= i < total for i in indices) or len(indices) >= total:
        raise ValueError(f"cannot remove layers {sorted(indices)} from a {total}-layer model; keep at least one.")
    kept = [i for i in range(total) if i not in indices]
    model.model.layers = nn.ModuleList([model.model.layers[i] for i in kept])
    for new_index, layer in enumerate(model.model.layers):
        # the KV cache is indexed by layer_idx: stale numbers break generate() with cache
        layer.self_attn.layer_idx = new_index
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_index
    config = model.config
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[i] for i in kept]
    if getattr(config, "intermediate_sizes", None) is not None:
        config.intermediate_sizes = [config.intermediate_sizes[i] for i in kept]
    config.num_hidden_layers = len(kept)
    return model


__all__ = [
    "check_layer_count",
    "remove_layers_",
    "select_layers_cosine",
    "select_layers_kl",
]
