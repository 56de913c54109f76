# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Real Python code for training and evaluation: the running interpreter's standard library.

Files are split by :func:`compress_utils.corpus.split_of` (80/10/10 train/valid/test by a hash of the relative path),
the one split rule every method shares.

Example:
    >>> from xtc_hf.data import stdlib_code
    >>> files = stdlib_code("test")  # doctest: +SKIP
    >>> files[0]["path"], len(files[0]["text"]) > 0  # doctest: +SKIP
    ('asyncio/base_futures.py', True)
"""

from __future__ import annotations

import logging

from compress_utils.corpus import SKIPPED_DIRS, SPLITS, read_sources, split_of, stdlib_source_dir

logger = logging.getLogger(__name__)


def stdlib_code(split: str, root: str | None = None, max_files: int | None = None) -> list[dict[str, str]]:
    """Python files of one split as ``{"path", "text"}`` dicts, sorted by path.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        root: folder to read (default: the running interpreter's standard library).
        max_files: keep only the first ``max_files`` files (sorted by path) of the split.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    root = stdlib_source_dir() if root is None else root
    # empty files (package markers) carry no code to learn from
    files = [{"path": path, "text": text} for path, text in read_sources(root, split) if text.strip()]
    files.sort(key=lambda item: item["path"])
    if max_files is not None:
        files = files[:max_files]
    logger.info("%d %s files from %s", len(files), split, root)
    return files


def stdlib_dataset(split: str, root: str | None = None, max_files: int | None = None):
    """The same files as a ``datasets.Dataset`` with ``path`` and ``text`` columns."""
    from datasets import Dataset

    return Dataset.from_list(stdlib_code(split, root=root, max_files=max_files))


def pack_blocks(texts, tokenizer, block_size: int, eos_token_id: int | None = None) -> list[list[int]]:
    """Tokenise texts, join them with EOS and cut the stream into ``block_size``-token blocks (the last partial one
    is dropped), the usual causal-LM packing.

    Example:
        >>> pack_blocks(["a = 1\\n"], tokenizer, block_size=4)  # doctest: +SKIP
        [[64, 796, 352, 198]]
    """
    if block_size < 2:
        raise ValueError(f"`block_size` must be >= 2, got {block_size}.")
    eos = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
    stream: list[int] = []
    blocks = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            stream.append(eos)
        while len(stream) >= block_size:
            blocks.append(stream[:block_size])
            stream = stream[block_size:]
    return blocks


def lm_dataset(blocks: list[list[int]]):
    """A ``datasets.Dataset`` of fixed-length causal-LM examples (``input_ids`` and ``labels``)."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": blocks, "labels": [list(block) for block in blocks]})


__all__ = [
    "SKIPPED_DIRS",
    "SPLITS",
    "lm_dataset",
    "pack_blocks",
    "split_of",
    "stdlib_code",
    "stdlib_dataset",
    "stdlib_source_dir",
]
