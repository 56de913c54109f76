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


__all__ = ["distributed_state", "is_distributed"]
