"""Parameter and disk counting, the two sizes every compression method reports.

Example:
    >>> import torch
    >>> count_parameters(torch.nn.Linear(4, 2))["total"]
    10
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch


def count_parameters(
    model: torch.nn.Module,
    component: Callable[[str], str] | None = None,
    extra: Callable[[torch.nn.Module], int] | None = None,
) -> dict[str, int]:
    """Parameters of ``model`` per component plus ``"total"``; a tensor shared by several modules counts once.

    Args:
        model: any module.
        component: maps a parameter's qualified name to the component it is counted under; ``None`` counts
            everything under ``"total"`` only.
        extra: logical parameters a module holds outside its ``nn.Parameter``s (e.g. a packed 1-bit weight stored as
            a buffer), counted under ``"total"`` (and ``"packed"``).

    Example:
        >>> layer = torch.nn.Linear(4, 2)
        >>> count_parameters(layer, component=lambda name: name.split(".")[-1])
        {'weight': 8, 'bias': 2, 'total': 10}
    """
    counts: dict[str, int] = {}
    seen: set[int] = set()
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        if component is not None:
            key = component(name)
            counts[key] = counts.get(key, 0) + parameter.numel()
    total = sum(parameter.numel() for parameter in {id(p): p for p in model.parameters()}.values())
    if extra is not None:
        packed = sum(extra(module) for module in model.modules())
        if packed:
            counts["packed"] = packed
        total += packed
    counts["total"] = total
    return counts


def disk_bytes(source, *savables, suffix: str = "") -> int:
    """Bytes on disk: of the files in a folder, or of what ``save_pretrained`` writes for the given objects.

    Args:
        source: a folder (``str`` or path) whose files (ending in ``suffix``) are summed, recursively; or an object
            with ``save_pretrained`` (a model, a tokenizer), saved with ``savables`` into a temporary folder.
        suffix: only count files whose name ends with it (e.g. ``".safetensors"`` for the weights alone).

    Example:
        >>> disk_bytes("/path/to/checkpoint", suffix=".safetensors")  # doctest: +SKIP
        >>> disk_bytes(model, tokenizer)  # doctest: +SKIP
    """
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise ValueError(f"`source` must be a folder or an object with save_pretrained, got {str(source)!r}.")
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffix))
    for savable in (source, *savables):
        if not hasattr(savable, "save_pretrained"):
            raise ValueError(
                f"`disk_bytes` measures folders or objects with save_pretrained, got a {type(savable).__name__}."
            )
    with tempfile.TemporaryDirectory(prefix="disk-bytes-") as folder:
        for savable in (source, *savables):
            savable.save_pretrained(folder)
        return disk_bytes(folder, suffix=suffix)


__all__ = ["count_parameters", "disk_bytes"]
