"""Atomic writes (moved to :mod:`compress_utils.io`; kept as an import path for older code)."""

from compress_utils.io import atomic_dir, atomic_write

__all__ = ["atomic_dir", "atomic_write"]
