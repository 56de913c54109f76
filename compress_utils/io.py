"""Safe writes: folders and files appear complete or not at all, and nothing of the user's is lost.

Rules every command and function that writes a folder follows (through :func:`atomic_dir`):

- a non-empty destination is refused unless ``overwrite=True`` (``--overwrite``) is given;
- the current directory, its parents, the home directory and the filesystem root are never replaced, even with
  ``overwrite=True``;
- the destination is checked (writable, not a file) before any long work, with :func:`check_output_dir`;
- the new content is written to a hidden temporary folder beside the destination and renamed into place; a process
  killed mid-save leaves that folder behind, and the next save to the same place removes it;
- folders are created with the user's normal permissions (umask), not ``mkdtemp``'s owner-only 0700.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_PARTIAL = "partial"  # a save in progress (or killed): .<name>.partial-<pid>-<random>
_OLD = "old"  # the previous content during the final swap: .<name>.old-<pid>-<random>


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _protected(path: Path) -> str | None:
    """Why ``path`` may never be replaced, or ``None``."""
    cwd = Path.cwd().resolve()
    if path == Path(path.anchor):
        return "it is the filesystem root"
    if path == Path.home().resolve():
        return "it is the home directory"
    if path == cwd:
        return "it is the current directory"
    if path in cwd.parents:
        return "it contains the current directory"
    return None


def check_output_dir(path: str | os.PathLike, overwrite: bool = False, argument: str = "output") -> Path:
    """Check that a folder can be (re)written at ``path``; call it before any long work. Returns the absolute path.

    Args:
        path: the destination folder.
        overwrite: allow replacing a non-empty folder.
        argument: the name the user gave the destination under (``save_dir``, ``--output``), for the messages.

    Raises:
        FileExistsError: ``path`` is a non-empty folder and ``overwrite`` is false, or it is a file.
        ValueError: ``path`` is the current directory, one of its parents, the home directory or ``/``.
        PermissionError: the folder (or the nearest existing parent it would be created in) is not writable.

    Example:
        >>> check_output_dir("/tmp/new-model")  # doctest: +SKIP
        PosixPath('/tmp/new-model')
    """
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    resolved = target.resolve()
    reason = _protected(resolved)
    if reason is not None:
        raise ValueError(
            f"`{argument}`={os.fspath(path)!r} cannot be written: {reason}, and replacing it would delete files "
            "that are not the model's. Choose a new folder."
        )
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"`{argument}`={os.fspath(path)!r} is a file, not a folder. Choose a folder path.")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(
            f"`{argument}`={os.fspath(path)!r} already exists and is not empty. Choose a new folder, or pass "
            "overwrite=True (--overwrite) to replace it."
        )
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"`{argument}`={os.fspath(path)!r} cannot be created: {str(parent)!r} is not writable.")
    return target


def check_output_file(path: str | os.PathLike, argument: str = "json") -> Path:
    """Check that a file can be written at ``path`` (its folder exists or can be made, and is writable)."""
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if target.is_dir():
        raise IsADirectoryError(f"`{argument}`={os.fspath(path)!r} is a folder; give a file path.")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"`{argument}`={os.fspath(path)!r} cannot be written: {str(parent)!r} is not writable.")
    if target.exists() and not os.access(target, os.W_OK):
        raise PermissionError(f"`{argument}`={os.fspath(path)!r} exists and is not writable.")
    return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporary folders that killed saves to ``path`` left beside it; return what was removed.

    Only folders named by :func:`atomic_dir` for this very destination and owned by a process that no longer runs
    are touched. A previous content caught mid-swap (the destination missing) is put back, not removed.
    """
    target = Path(os.path.abspath(os.fspath(path)))
    removed = []
    if not target.parent.is_dir():
        return removed
    for kind in (_OLD, _PARTIAL):
        for leftover in sorted(target.parent.glob(f".{target.name}.{kind}-*")):
            try:
                pid = int(leftover.name.rsplit(f".{kind}-", 1)[1].split("-", 1)[0])
            except (IndexError, ValueError):
                continue
            if _alive(pid) and pid != os.getpid():
                continue
            if kind == _OLD and not target.exists():
                os.replace(leftover, target)
                logger.warning("restored %s from an interrupted save", target)
                continue
            shutil.rmtree(leftover, ignore_errors=True)
            logger.info("removed %s, left by an interrupted save", leftover)
            removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, argument: str = "output") -> Iterator[str]:
    """Yield a temporary folder beside ``path``; on success it becomes ``path``, on error it is removed.

    A non-empty ``path`` is refused unless ``overwrite`` (see the module rules); ``argument`` names the destination
    in the messages.

    Example:
        >>> with atomic_dir("runs/my-model") as folder:  # doctest: +SKIP
        ...     model.save_pretrained(folder)
        ...     tokenizer.save_pretrained(folder)
    """
    target = check_output_dir(path, overwrite=overwrite, argument=argument)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    temporary = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{_PARTIAL}-{os.getpid()}-")
    os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp makes owner-only folders
    try:
        yield temporary
        check_output_dir(target, overwrite=overwrite, argument=argument)  # it may have changed meanwhile
        if target.is_dir():
            old = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{_OLD}-{os.getpid()}-")
            os.replace(target, old)  # rename(2) onto a directory needs it empty: move the old one aside first
            os.replace(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def remove_trainer_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``checkpoint-<step>`` folders a ``Trainer`` wrote in ``folder`` (each holds ``trainer_state.json``),
    then ``folder`` itself if nothing else is left in it; return what was removed.

    For caches a run wrote itself and no longer needs: anything that is not a Trainer checkpoint (a user's file, a
    folder of another kind) is kept, and so is ``folder``, with a warning.

    Example:
        >>> remove_trainer_checkpoints("runs/cache/checkpoints")  # doctest: +SKIP
        [PosixPath('runs/cache/checkpoints/checkpoint-50'), PosixPath('runs/cache/checkpoints')]
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        step = entry.name.removeprefix("checkpoint-")
        if entry.is_dir() and step != entry.name and step.isdigit() and (entry / "trainer_state.json").is_file():
            shutil.rmtree(entry)
            removed.append(entry)
    others = sorted(entry.name for entry in root.iterdir())
    if others:
        logger.warning("kept %s: it holds more than Trainer checkpoints (%s)", root, ", ".join(others[:5]))
    else:
        root.rmdir()
        removed.append(root)
    return removed


def save_pretrained_atomic(folder: str | os.PathLike, *savables, overwrite: bool = False) -> str:
    """``save_pretrained`` every object (model, tokenizer, ...) into ``folder`` through :func:`atomic_dir`.

    Example:
        >>> save_pretrained_atomic("runs/student", model, tokenizer, overwrite=True)  # doctest: +SKIP
        'runs/student'
    """
    with atomic_dir(folder, overwrite=overwrite, argument="save_dir") as temporary:
        for savable in savables:
            savable.save_pretrained(temporary)
    return os.fspath(folder)


def save_pretrained_atomic_once(folder: str | os.PathLike, *savables, overwrite: bool = False) -> str:
    """:func:`save_pretrained_atomic` by the main process of a distributed run, the others waiting for it.

    Under ``accelerate launch`` every process holds the same weights, and two renames onto one folder would race.
    Every process must call it (it ends with a barrier); in a single process it is :func:`save_pretrained_atomic`.
    """
    import torch

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_rank() == 0:
        save_pretrained_atomic(folder, *savables, overwrite=overwrite)
    if distributed:
        torch.distributed.barrier()
    return os.fspath(folder)


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object]) -> None:
    """Call ``writer(temporary_path)`` and rename the result onto ``path`` (an ordinary file, umask permissions).

    Example:
        >>> atomic_write("results.json", lambda tmp: Path(tmp).write_text("{}"))  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        writer(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


__all__ = [
    "atomic_dir",
    "atomic_write",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "clean_leftovers",
    "remove_trainer_checkpoints",
    "save_pretrained_atomic",
    "save_pretrained_atomic_once",
]
