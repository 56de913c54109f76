"""Distributed-run helpers shared by the methods (``accelerate launch`` / torchrun, gloo between CPU processes).

Example:
    >>> from compress_utils.distributed import distributed_state
    >>> distributed_state() is None  # a single process
    True
"""

from __future__ import annotations

import os

import torch


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is up (a collective would block until every process joins).

    Example:
        >>> is_distributed()
        False
    """
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def distributed_state():
    """accelerate's ``PartialState`` if this process is one of several (``accelerate launch``, torchrun), else ``None``.

    Without CUDA the processes talk over gloo (accelerate needs ``cpu=True`` for that).

    Example:
        >>> state = distributed_state()
        >>> state is None or state.num_processes > 1
        True
    """
    if not is_distributed() and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return state if state.num_processes > 1 else None


def my_share(items: list):
    """``(this process's contiguous share of items, state)`` under ``accelerate launch``; ``(items, None)`` in one process.

    Contiguous shares in process order: gathering them (``accelerate.utils.gather_object``) gives the items' order.

    Example:
        >>> my_share([1, 2, 3])
        ([1, 2, 3], None)
    """
    state = distributed_state()
    if state is None:
        return items, None
    with state.split_between_processes(items) as mine:
        return list(mine), state


__all__ = ["distributed_state", "is_distributed", "my_share"]
