"""Shared core of the method packages: what ALPINE, Flab-Pruner and XTC all need and none of them owns.

Every method package may import it; it imports no method package. Remote-code files
(``configuration_*``/``modeling_*``) never import it: they travel alone with a checkpoint.

- :mod:`compress_utils.io`: safe folder and file writes (refuse to overwrite, atomic rename, leftover cleanup).
- :mod:`compress_utils.capability`: which of fp32 / bf16 / int8 products are fast here (``bf16="auto"`` resolves by it).
"""

from .capability import fast_int8, fastest_dtype, probe, resolve_bf16
from .io import (
    atomic_dir,
    atomic_write,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    clean_leftovers,
    save_pretrained_atomic,
    save_pretrained_atomic_once,
)

__all__ = [
    "atomic_dir",
    "atomic_write",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "clean_leftovers",
    "fast_int8",
    "fastest_dtype",
    "probe",
    "resolve_bf16",
    "save_pretrained_atomic",
    "save_pretrained_atomic_once",
]
