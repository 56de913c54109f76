"""Training speed on Linux CPUs: glibc's allocator settings.

glibc's ``malloc`` serves every allocation above its mmap threshold (at most 32 MB: a batch's logits, activations,
gradients) with fresh pages from the kernel and gives them back on ``free``, so every training step page-faults and
zero-fills gigabytes again. Measured by ``python -m benchmarks cpu-allocator`` (a distillation step of
SmolLM2-135M-Instruct, 8 x 256 tokens, bf16 autocast, 2 idle AVX-512 cores; benchmarks/results/cpu_allocator.json):
7.5 s per step, 1.48M page faults and 5.5 s of kernel CPU time per step with the defaults; 4.7 s, 54k faults and
1.3 s with :data:`MALLOC_TUNABLES` (freed memory stays in the process, in transparent huge pages), for 25% more peak
RSS. The numbers a run computes do not change, only where its memory comes from.

glibc reads the settings when the process starts, so they go into the environment: the Makefile exports them for
every target, and :func:`allocator_hint` tells a user who starts Python without them (once per process, when a
training run starts on a CPU).

Example:
    >>> from compress_utils.allocator import MALLOC_TUNABLES, tuned_environment
    >>> tuned_environment({})["GLIBC_TUNABLES"] == MALLOC_TUNABLES
    True
"""

from __future__ import annotations

import logging
import os
import platform
import sys

logger = logging.getLogger(__name__)

# never return freed memory to the kernel (no mmap'd chunks, a 16 GiB trim threshold); back the heap with
# transparent huge pages (glibc >= 2.35; older ones ignore the setting). The Makefile reads this line.
MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184:glibc.malloc.hugetlb=1"

_hinted = False


def _names(tunables: str) -> set[str]:
    return {item.split("=", 1)[0] for item in tunables.split(":") if item}


def is_glibc() -> bool:
    """Whether this Python runs on glibc (most Linux distributions; not musl, macOS or Windows, where the settings
    mean nothing)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def allocator_tuned(environ=None) -> bool:
    """Whether the environment (default: this process's) sets every tunable of :data:`MALLOC_TUNABLES`, or there is
    nothing to set (not glibc)."""
    environ = os.environ if environ is None else environ
    return not is_glibc() or _names(MALLOC_TUNABLES) <= _names(environ.get("GLIBC_TUNABLES", ""))


def tuned_environment(environ=None) -> dict:
    """A copy of ``environ`` (default: ``os.environ``) whose ``GLIBC_TUNABLES`` holds :data:`MALLOC_TUNABLES`
    (settings of the same names are replaced, others kept): for a child process that trains."""
    environ = dict(os.environ if environ is None else environ)
    ours = _names(MALLOC_TUNABLES)
    kept = [item for item in environ.get("GLIBC_TUNABLES", "").split(":") if item and item.split("=")[0] not in ours]
    environ["GLIBC_TUNABLES"] = ":".join([*kept, MALLOC_TUNABLES])
    return environ


def allocator_hint(device="cpu") -> bool:
    """Log, once per process, how to start Python for faster CPU training when this one runs on glibc without
    :data:`MALLOC_TUNABLES`; returns whether it logged. Nothing on a GPU, where the activations live on the device."""
    global _hinted
    if _hinted or str(device).split(":")[0] != "cpu" or allocator_tuned():
        return False
    _hinted = True
    logger.warning(
        "training on a CPU with glibc's default allocator, which zero-fills fresh pages for every large tensor of "
        "every step; start Python with GLIBC_TUNABLES=%s for ~1.6x faster steps (measured in "
        "compress_utils.allocator; `make` targets set it).",
        MALLOC_TUNABLES,
    )
    return True


__all__ = ["MALLOC_TUNABLES", "allocator_hint", "allocator_tuned", "is_glibc", "tuned_environment"]
