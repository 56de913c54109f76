"""What a zoo folder's publication holds and its content revision (shared by the model cards and publishing).

Example:
    >>> from model_cards.revision import content_revision
    >>> len(content_revision("zoo/alpine-minilm"))  # doctest: +SKIP
    40
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CARD_FILE = "README.md"


def published_files(folder: str | os.PathLike) -> list[str]:
    """Relative paths (POSIX, sorted) of the files a publication includes: all but hidden files and caches."""
    root = Path(folder)
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_file():
            files.append(relative.as_posix())
    return sorted(files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_revision(folder: str | os.PathLike, exclude: tuple[str, ...] = (CARD_FILE,)) -> str:
    """A 40-hex revision computed from the names and contents of the folder's files (except ``exclude``).

    Example:
        >>> len(content_revision("zoo/alpine-minilm"))  # doctest: +SKIP
        40
    """
    digest = hashlib.sha1(b"codecompress-hf revision v1\n")
    for relative in published_files(folder):
        if relative not in exclude:
            digest.update(f"{relative}\0{_sha256(Path(folder) / relative)}\n".encode())
    return digest.hexdigest()


__all__ = ["CARD_FILE", "content_revision", "published_files"]
