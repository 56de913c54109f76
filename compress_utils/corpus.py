"""Real Python code for every method: the running interpreter's standard library, with one split rule.

A file's split (80/10/10 train/valid/test) depends only on its path relative to the corpus root, through SHA-256
(not :func:`hash`, which changes between processes), so it is the same on every machine with the same Python version
and never depends on file order, timestamps or which method reads the file.

Example:
    >>> from compress_utils.corpus import read_sources, split_of
    >>> split_of("json/decoder.py") in SPLITS
    True
    >>> path, text = next(read_sources(split="test"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# Third-party code, the standard library's own test suites and two legacy tools are not "the standard library's code".
SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"})
# Upper bounds (exclusive) of each split on a 0..99 bucket.
_SPLIT_BOUNDS = (("train", 80), ("valid", 90), ("test", 100))


def stdlib_source_dir() -> Path:
    """The folder holding the running interpreter's standard-library sources (tens of MB of real Python).

    Example:
        >>> (stdlib_source_dir() / "os.py").is_file()
        True
    """
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` (80/10/10) for a file, from a SHA-256 hash of its relative path.

    Args:
        path: the file's path relative to the corpus root, or (with ``root``) any path under ``root``.
        root: the corpus root ``path`` is relative to; ``None`` means ``path`` is already relative.

    Example:
        >>> split_of("json/decoder.py") in SPLITS
        True
        >>> split_of("/lib/python3/json/decoder.py", "/lib/python3") == split_of("json/decoder.py")
        True
    """
    relative = Path(path)
    if root is not None:
        try:
            relative = relative.relative_to(Path(root))
        except ValueError:
            raise ValueError(f"path={str(path)!r} is not under root={str(root)!r}; pass a file inside root") from None
    # as_posix of a PurePath turns Windows separators into "/", so every OS agrees on the split
    digest = hashlib.sha256(relative.as_posix().encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return next(name for name, bound in _SPLIT_BOUNDS if bucket < bound)


def source_files(root: str | os.PathLike[str] | None = None, suffix: str = ".py") -> list[Path]:
    """The source files under ``root`` (the standard library by default), sorted by relative POSIX path.

    Folders in :data:`SKIPPED_DIRS` and hidden folders are not entered; files that are not valid UTF-8 are skipped.

    Example:
        >>> any(path.name == "os.py" for path in source_files())
        True
    """
    root = stdlib_source_dir() if root is None else Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a directory; pass the folder that holds the sources")
    if not suffix.startswith("."):
        raise ValueError(f"suffix={suffix!r} must start with a dot, e.g. '.py'")
    found = []
    # os.walk with pruning never descends into skipped trees (a venv's site-packages can be huge)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if name not in SKIPPED_DIRS and not name.startswith("."))
        for name in filenames:
            path = Path(dirpath, name)
            if not name.endswith(suffix) or not path.is_file():
                continue
            try:
                path.read_bytes().decode("utf-8")
            except (UnicodeDecodeError, OSError):
                logger.debug("skipping %s: not readable as UTF-8", path)
                continue
            found.append(path)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def package_source_dir(package: str, argument: str = "packages") -> Path:
    """The folder of the installed Python package ``package`` (its import name, e.g. ``"transformers"``).

    A second source of real code beside the standard library; ``argument`` names the setting in the error raised
    when no such package is installed.

    Example:
        >>> package_source_dir("json").name
        'json'
    """
    import importlib.util

    spec = importlib.util.find_spec(package) if isinstance(package, str) and package else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"{argument}={package!r}: no installed package of that import name; pass installed packages (e.g. "
            "'transformers') or none"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def read_sources(
    root: str | os.PathLike[str] | None = None, split: str | None = None, suffix: str = ".py"
) -> Iterator[tuple[str, str]]:
    """``(relative POSIX path, text)`` of the files of ``split`` (all splits when ``None``) under ``root``, sorted.

    Example:
        >>> relative, text = next(read_sources(split="train"))
        >>> split_of(relative)
        'train'
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS} or None, got {split!r}.")
    root = stdlib_source_dir() if root is None else Path(root)
    for path in source_files(root, suffix):
        relative = path.relative_to(root).as_posix()
        if split is not None and split_of(relative) != split:
            continue
        yield relative, path.read_text(encoding="utf-8")


def package_texts(package: str, argument: str = "package") -> list[str]:
    """The ``.py`` sources of the installed ``package`` (its import name), sorted by path; ``argument`` names the
    setting in the error raised when it is not installed.

    Example:
        >>> texts = package_texts("json")
        >>> any("def dumps(" in text for text in texts)
        True
    """
    return [text for _, text in read_sources(package_source_dir(package, argument=argument))]


def text_chunks(texts: list[str], count: int, chars: int = 800) -> list[str]:
    """``count`` slices of ``chars`` characters spread evenly over the concatenated ``texts`` (deterministic): a
    sample of a corpus that reaches its last files too, where taking the first characters would not.

    Example:
        >>> text_chunks(["a" * 40, "b" * 40], 2, chars=10)  # the texts are joined by newlines
        ['aaaaaaaaaa', 'bbbbbbbbbb']
    """
    import torch

    joined = "\n".join(texts)
    slices = len(joined) // chars
    if slices < 1:
        raise ValueError(f"the texts hold {len(joined)} characters, fewer than one chunk of {chars}.")
    starts = torch.linspace(0, slices - 1, steps=min(count, slices)).round().long().tolist()
    return [joined[s * chars : (s + 1) * chars] for s in starts]


__all__ = [
    "SKIPPED_DIRS",
    "SPLITS",
    "package_source_dir",
    "package_texts",
    "read_sources",
    "source_files",
    "split_of",
    "stdlib_source_dir",
    "text_chunks",
]
