# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""FFN neuron pruning (paper Sec. 3.4): :func:`ffn_keep_indices`, :func:`select_ffn_rule` and :func:`prune_ffn_`
remove K intermediate neurons per layer (Top/Bottom/Middle/Random-K, best by KL).

Example:
    >>> from flab_hf.ffn import ffn_plan, prune_ffn_
    >>> prune_ffn_(model, ffn_plan(model, "top", [256] * model.config.num_hidden_layers))  # doctest: +SKIP
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from .calibration import (
    FFN_RULES,
    PAPER_FFN_RULES,
    CalibrationRunner,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- FFN


def ffn_widths(model) -> list[int]:
    return [layer.mlp.down_proj.in_features for layer in model.model.layers]


def resolve_ffn_neurons(model, ffn_neurons) -> list[int]:
    """Neurons to remove per layer, from an int (every layer) or a per-layer list; ``ValueError`` if too many."""
    widths = ffn_widths(model)
    if isinstance(ffn_neurons, int) and not isinstance(ffn_neurons, bool):
        counts = [ffn_neurons] * len(widths)
    elif isinstance(ffn_neurons, (list, tuple)):
        counts = list(ffn_neurons)
        if len(counts) != len(widths):
            raise ValueError(
                f"`ffn_neurons` lists {len(counts)} values but the model has {len(widths)} layers after layer "
                "pruning; give one count per remaining layer or a single int."
            )
    else:
        raise ValueError(f"`ffn_neurons` must be an int or a list of ints, got {ffn_neurons!r}.")
    for index, (count, width) in enumerate(zip(counts, widths)):
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < width:
            raise ValueError(
                f"`ffn_neurons` asks to remove {count!r} neurons from layer {index}, which has {width}; remove an int "
                f"in [0, {width - 1}] (at least one neuron must remain)."
            )
    return counts


def ffn_keep_indices(rule: str, width: int, remove: int, seed: int = 0, importance=None) -> torch.Tensor:
    """Sorted indices of the ``width - remove`` intermediate neurons a rule keeps (paper Sec. 3.4).

    ``top`` keeps the first neurons, ``bottom`` the last, ``middle`` a centred block, ``random`` a seeded sample,
    ``importance`` the highest ``importance`` scores.

    Example:
        >>> ffn_keep_indices("middle", 6, 2).tolist()
        [1, 2, 3, 4]
    """
    keep = width - remove
    if rule == "top":
        return torch.arange(keep)
    if rule == "bottom":
        return torch.arange(remove, width)
    if rule == "middle":
        start = remove // 2
        return torch.arange(start, start + keep)
    if rule == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.sort(torch.randperm(width, generator=generator)[:keep]).values
    if rule == "importance":
        if importance is None:
            raise ValueError("the `importance` FFN rule needs importance scores (see `ffn_importance`).")
        return torch.sort(torch.topk(importance.float().cpu(), keep).indices).values
    raise ValueError(f"`ffn_rule` must be one of {FFN_RULES} or 'auto', got {rule!r}.")


@torch.no_grad()
def ffn_importance(model, runner: CalibrationRunner) -> list[torch.Tensor]:
    """Per-layer neuron importance: mean |act(gate x) * up x| on the calibration set times ``||down_proj[:, j]||``."""
    layers = list(model.model.layers)
    sums = [torch.zeros(w, dtype=torch.float64) for w in ffn_widths(model)]
    counts = [0] * len(layers)
    handles = []
    for index, layer in enumerate(layers):

        def hook(module, args, index=index):
            activation = args[0].detach().float().abs()
            sums[index] += activation.reshape(-1, activation.shape[-1]).sum(0).double().cpu()
            counts[index] += activation[..., 0].numel()

        handles.append(layer.mlp.down_proj.register_forward_pre_hook(hook))
    try:
        for b in range(len(runner.batches)):
            runner.run(b, runner.embed(b), layers)
    finally:
        for handle in handles:
            handle.remove()
    if runner.state is not None:  # sums over every process's share of the calibration set
        summed = runner.all_sum(torch.cat([*sums, torch.tensor(counts, dtype=torch.float64)]))
        sums = list(torch.split(summed[: -len(layers)], [len(s) for s in sums]))
        counts = [int(c) for c in summed[-len(layers) :].tolist()]
    norms = [layer.mlp.down_proj.weight.detach().float().norm(dim=0).cpu() for layer in layers]
    return [(s / max(c, 1)).float() * n for s, c, n in zip(sums, counts, norms)]


def allocate_ffn_budget(importance: list[torch.Tensor], total: int, max_share: float = 0.5) -> list[int]:
    """Split a global budget of ``total`` removed neurons over the layers by importance: the ``total`` least important
    neurons of the whole model go, at most ``max_share`` of any one layer's width.

    Importance (:func:`ffn_importance`) is measured in the residual stream's units (activation times the norm of the
    neuron's ``down_proj`` column), so scores of different layers compare directly; the cap keeps a layer whose
    neurons all score low from being emptied.

    Example:
        >>> allocate_ffn_budget([torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.1, 0.2, 5.0, 6.0])], 3)
        [1, 2]
    """
    widths = [len(scores) for scores in importance]
    caps = [int(width * max_share) for width in widths]
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= sum(caps):
        raise ValueError(
            f"`total={total!r}` neurons cannot be removed with at most {max_share:.0%} of each layer "
            f"({sum(caps)} in all); remove an int in [0, {sum(caps)}]."
        )
    order = torch.argsort(torch.cat([scores.float().cpu() for scores in importance]), stable=True).tolist()
    offsets = [0]
    for width in widths:
        offsets.append(offsets[-1] + width)
    layer_of = [index for index, width in enumerate(widths) for _ in range(width)]
    counts = [0] * len(widths)
    removed = 0
    for neuron in order:
        if removed == total:
            break
        layer = layer_of[neuron]
        if counts[layer] < caps[layer]:
            counts[layer] += 1
            removed += 1
    return counts


def _sliced_linears(mlp, keep: torch.Tensor) -> dict[str, nn.Linear]:
    out = {}
    for name, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
        old = getattr(mlp, name)
        index = keep.to(old.weight.device)
        weight = old.weight.detach().index_select(dim, index).clone()
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=old.bias is not None, device="meta")
        new.weight = nn.Parameter(weight)
        if old.bias is not None:
            bias = old.bias.detach()
            new.bias = nn.Parameter((bias.index_select(0, index) if dim == 0 else bias).clone())
        out[name] = new
    return out


def _set_linears(mlp, linears: dict[str, nn.Linear]) -> None:
    for name, module in linears.items():
        setattr(mlp, name, module)
    mlp.intermediate_size = linears["down_proj"].in_features


def ffn_plan(model, rule: str, counts: list[int], seed: int = 0, importance=None) -> list[torch.Tensor]:
    """The kept neuron indices of every layer under ``rule`` (layer ``i`` uses seed ``seed + i`` for ``random``)."""
    widths = ffn_widths(model)
    return [
        ffn_keep_indices(rule, width, count, seed + index, None if importance is None else importance[index])
        for index, (width, count) in enumerate(zip(widths, counts))
    ]


def prune_ffn_(model, plan: list[torch.Tensor]) -> PreTrainedModel:
    """Keep only the planned intermediate neurons of every layer, in place (widths may then differ per layer)."""
    for layer, keep in zip(model.model.layers, plan, strict=True):
        _set_linears(layer.mlp, _sliced_linears(layer.mlp, keep))
    widths = ffn_widths(model)
    if getattr(model.config, "intermediate_sizes", None) is not None:
        model.config.intermediate_sizes = widths
    if len(set(widths)) == 1:
        model.config.intermediate_size = widths[0]
    return model


@torch.no_grad()
def ffn_rule_kl(model, runner, references, plan) -> float:
    """KL to ``references`` if ``plan`` were applied; the model is restored afterwards."""
    layers = list(model.model.layers)
    originals = [
        {name: getattr(layer.mlp, name) for name in ("gate_proj", "up_proj", "down_proj")} for layer in layers
    ]
    widths = [layer.mlp.down_proj.in_features for layer in layers]
    try:
        for layer, keep in zip(layers, plan):
            _set_linears(layer.mlp, _sliced_linears(layer.mlp, keep))
        return runner.mean_kl(references)
    finally:
        for layer, linears, width in zip(layers, originals, widths):
            _set_linears(layer.mlp, linears)
            layer.mlp.intermediate_size = width


def select_ffn_rule(model, runner, references, counts, rules=FFN_RULES, auto_rules=PAPER_FFN_RULES, seed=0,
                    progress=True, importance=None) -> dict:  # fmt: skip
    """KL of every rule in ``rules``; the chosen rule is the lowest-KL one among ``auto_rules``. ``importance``
    (:func:`ffn_importance` of ``model``) is computed when a rule needs it and it is not given."""
    if importance is None and "importance" in rules:
        importance = ffn_importance(model, runner)
    kls = {}
    for rule in tqdm(rules, desc="flab: FFN rules", disable=not progress):
        kls[rule] = ffn_rule_kl(model, runner, references, ffn_plan(model, rule, counts, seed, importance))
        logger.info("FFN rule %s: KL %.4f", rule, kls[rule])
    candidates = [rule for rule in auto_rules if rule in kls]
    chosen = min(candidates, key=kls.get)
    return {"kl": kls, "chosen": chosen, "importance": importance}


__all__ = [
    "allocate_ffn_budget",
    "ffn_importance",
    "ffn_keep_indices",
    "ffn_plan",
    "ffn_rule_kl",
    "ffn_widths",
    "prune_ffn_",
    "resolve_ffn_neurons",
    "select_ffn_rule",
]
