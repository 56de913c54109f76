"""Publish a checkpoint folder: upload it to the Hugging Face Hub, or write it into the local Hub cache.

Both refuse a folder that would not load (no weights, no config, no tokenizer, or remote code that ``auto_map``
names but the folder lacks), name what is missing and write or upload nothing.

The cache layout is the one ``huggingface_hub`` itself writes, so ``from_pretrained("ORG/NAME")`` finds the files
with ``HF_HUB_OFFLINE=1``::

    $HF_HUB_CACHE/models--ORG--NAME/blobs/<sha256 of each file>
                                    snapshots/<revision>/<file> -> ../../blobs/<sha256>
                                    refs/main                    (holds <revision>)

The revision is a 40-hex hash of the files' names and contents, so the same folder always gets the same revision.
``README.md`` is left out of the hash because the model card names the revision it was published at.

Example:
    >>> revision = publish_to_cache("zoo/xtc-gpt2-1w8a6l", "codecompress-hf/xtc-gpt2-1w8a6l")  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from compress_utils.io import atomic_dir

from .revision import CARD_FILE, _sha256, content_revision, published_files

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.json",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class PublishError(ValueError):
    """A folder that cannot be published, or a publication that failed; the message says what to do."""


def check_repo_id(repo_id: str) -> str:
    if not isinstance(repo_id, str) or not REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise PublishError(
            f"`repo_id` must look like ORG/NAME (letters, digits, '.', '_', '-'; no '--' or '..'), got {repo_id!r}; "
            "e.g. codecompress-hf/alpine-minilm."
        )
    return repo_id


def _auto_map_modules(auto_map: dict) -> set[str]:
    """Module names (``configuration_x`` of ``configuration_x.XConfig``) that an ``auto_map`` loads from the folder;
    references into another repository (``org/repo--module.Class``) are not the folder's to provide."""
    modules = set()
    for value in auto_map.values():
        for reference in value if isinstance(value, (list, tuple)) else [value]:
            if reference and "--" not in reference:
                modules.add(reference.rsplit(".", 1)[0])
    return modules


def _relative_imports(source: str) -> set[str]:
    """Sibling modules a remote-code file imports relatively (``from .configuration_x import ...``)."""
    modules = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                modules.add(node.module.split(".")[0])
            else:
                modules.update(alias.name for alias in node.names)
    return modules


def _json_problem(path: Path) -> str | None:
    """Why ``path`` is not a JSON object (``None`` if it is one)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        return f"a valid {path.name} ({error})"
    return None if isinstance(value, dict) else f"a valid {path.name} (a JSON object, not {type(value).__name__})"


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a complete safetensors file (``None`` if it is), from its header and size alone.

    The format is an 8-byte little-endian header length, a JSON header giving each tensor's byte range, then the
    data; a 0-byte, truncated or padded file disagrees with its header.

    Example:
        >>> safetensors_problem("/nonexistent.safetensors")
        "/nonexistent.safetensors: cannot be read ([Errno 2] No such file or directory: '/nonexistent.safetensors')"
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{path}: {size} bytes, too short for a safetensors header (empty or truncated)"
            length = int.from_bytes(prefix, "little")
            if 8 + length > size:
                return f"{path}: header of {length} bytes but the file has {size} (truncated)"
            header = json.loads(handle.read(length))
    except OSError as error:
        return f"{path}: cannot be read ({error})"
    except (ValueError, UnicodeDecodeError) as error:
        return f"{path}: the safetensors header is not valid JSON ({error})"
    if not isinstance(header, dict):
        return f"{path}: the safetensors header is not a JSON object"
    ends = [entry.get("data_offsets", [0, 0])[1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        return f"{path}: the header describes {expected} bytes but the file has {size} (truncated or corrupted)"
    return None


def missing_pieces(folder: str | os.PathLike, require_tokenizer: bool = True) -> list[str]:
    """What a folder lacks to load with ``from_pretrained(..., trust_remote_code=True)``; empty if nothing.

    Example:
        >>> missing_pieces("/nonexistent")
        ['folder /nonexistent does not exist']
    """
    root = Path(folder)
    if not root.is_dir():
        return [f"folder {folder} does not exist"]
    missing = []
    config_path = root / "config.json"
    config = {}
    if not config_path.is_file():
        missing.append("config.json (the model configuration)")
    else:
        problem = _json_problem(config_path)
        if problem:
            missing.append(problem)
        else:
            config = json.loads(config_path.read_text(encoding="utf-8"))
    indexes = [root / name for name in WEIGHT_INDEXES if (root / name).is_file()]
    weight_files = []
    if indexes:
        problem = _json_problem(indexes[0])
        if problem:
            missing.append(problem)
        else:
            shards = set(json.loads(indexes[0].read_text(encoding="utf-8")).get("weight_map", {}).values())
            missing += [f"weight shard {shard} (listed in {indexes[0].name})" for shard in sorted(shards)
                        if not (root / shard).is_file()]  # fmt: skip
            weight_files = [root / shard for shard in sorted(shards) if (root / shard).is_file()]
    elif not any((root / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"weights ({' or '.join(WEIGHT_FILES)})")
    else:
        weight_files = [root / name for name in WEIGHT_FILES if (root / name).is_file()]
    for path in weight_files:  # a 0-byte or truncated file would be published and fail only at load
        problem = safetensors_problem(path) if path.name.endswith(".safetensors") else None
        if problem is None and path.stat().st_size == 0:
            problem = f"{path}: 0 bytes"
        if problem:
            missing.append(f"complete weights ({problem})")
    tokenizer_config = {}
    if (root / "tokenizer_config.json").is_file():
        problem = _json_problem(root / "tokenizer_config.json")
        if problem:
            missing.append(problem)
        else:
            tokenizer_config = json.loads((root / "tokenizer_config.json").read_text(encoding="utf-8"))
    if require_tokenizer:
        if not (root / "tokenizer_config.json").is_file():
            missing.append("tokenizer_config.json (the tokenizer)")
        if not any((root / name).is_file() for name in TOKENIZER_FILES):
            missing.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    modules = _auto_map_modules(config.get("auto_map", {})) | _auto_map_modules(tokenizer_config.get("auto_map", {}))
    seen = set()
    while modules:  # remote-code files and the siblings they import
        module = modules.pop()
        seen.add(module)
        path = root / f"{module.replace('.', '/')}.py"
        if not path.is_file():
            missing.append(f"{path.name} (remote code named in auto_map or imported by it)")
            continue
        modules |= _relative_imports(path.read_text()) - seen
    return missing


def check_publishable(folder: str | os.PathLike, require_tokenizer: bool = True) -> None:
    """Raise :class:`PublishError` naming everything ``folder`` lacks to load."""
    missing = missing_pieces(folder, require_tokenizer)
    if missing:
        raise PublishError(
            f"{folder} would not load with from_pretrained, so nothing was published. Missing: {'; '.join(missing)}. "
            "Save the model and tokenizer with save_pretrained (after `register_for_auto_class` for custom code)."
        )


def repo_cache_folder(repo_id: str, cache_dir: str | os.PathLike | None = None) -> Path:
    from huggingface_hub import constants

    return Path(cache_dir or constants.HF_HUB_CACHE) / ("models--" + check_repo_id(repo_id).replace("/", "--"))


def publish_to_cache(folder: str | os.PathLike, repo_id: str, cache_dir: str | os.PathLike | None = None,
                     ref: str = "main", require_tokenizer: bool = True) -> str:  # fmt: skip
    """Write ``folder`` into the local Hub cache as ``repo_id`` (ref ``ref``) and return the revision.

    Nothing is written if the folder would not load. The snapshot is assembled in a temporary folder and renamed
    into place, and the ref is updated last, so a reader never sees a half-written revision.
    """
    check_repo_id(repo_id)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", ref) or re.fullmatch(r"[0-9a-f]{40}", ref):
        raise PublishError(f"`ref` must be a branch name such as 'main' (not a commit hash), got {ref!r}.")
    check_publishable(folder, require_tokenizer)
    revision = content_revision(folder)
    repo = repo_cache_folder(repo_id, cache_dir)
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "snapshots").mkdir(exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    # a snapshot of this revision holds the same model files (the revision is their content hash): replacing it,
    # by the shared atomic swap, only refreshes the card; a crash leaves the old snapshot, never none
    with atomic_dir(repo / "snapshots" / revision, overwrite=True, argument="snapshot") as staging_dir:
        staging = Path(staging_dir)
        for relative in published_files(folder):
            source = Path(folder) / relative
            blob = repo / "blobs" / _sha256(source)
            if not blob.is_file():
                handle, temporary = tempfile.mkstemp(dir=repo / "blobs", prefix=".incomplete-")
                os.close(handle)
                shutil.copyfile(source, temporary)
                os.chmod(temporary, 0o644)
                os.replace(temporary, blob)
            link = staging / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            # relative to where the link will live (snapshots/<revision>/...), as huggingface_hub writes them
            depth = len(Path(relative).parts) - 1
            link.symlink_to(Path(*([".."] * (depth + 2)), "blobs", blob.name))
    handle, temporary = tempfile.mkstemp(dir=repo / "refs", prefix=".ref-")
    with os.fdopen(handle, "w") as out:
        out.write(revision)
    os.chmod(temporary, 0o644)
    os.replace(temporary, repo / "refs" / ref)
    logger.info("wrote %s into %s at revision %s (ref %s)", folder, repo, revision, ref)
    return revision


def publish_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    require_tokenizer: bool = True,
    org: str | None = None,
) -> str:
    """Upload ``folder`` to the Hub as ``repo_id`` (branch ``revision``, default main); returns the model commit.

    The model files go up first; for a zoo entry (a folder with ``results.json``) the card is then rebuilt with
    that commit pinned in its usage snippet and uploaded as a second commit.
    """
    from huggingface_hub import HfApi, constants, get_token

    check_repo_id(repo_id)
    check_publishable(folder, require_tokenizer)
    if constants.HF_HUB_OFFLINE:
        raise PublishError(
            "HF_HUB_OFFLINE=1 is set, so nothing can be uploaded; unset it on a machine with network access, or use "
            "--to-cache to write the folder into the local Hugging Face cache instead."
        )
    token = token or get_token()
    if not token:
        raise PublishError(
            "No Hugging Face token found: run `hf auth login` or set HF_TOKEN to a token with write access, or use "
            "--to-cache to write the folder into the local Hugging Face cache instead."
        )
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        has_results = (Path(folder) / "results.json").is_file()
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=f"Upload {Path(folder).name}",
            ignore_patterns=[".*", "**/.*", "__pycache__"] + ([CARD_FILE] if has_results else []),
        )  # fmt: skip
        commit = info.oid
        if has_results:
            from .card import build_card

            card = build_card(folder, repo_id=repo_id, revision=commit, org=org or repo_id.split("/")[0])
            api.upload_file(
                path_or_fileobj=card.content.encode("utf-8"), path_in_repo=CARD_FILE, repo_id=repo_id,
                revision=revision, commit_message=f"Model card pinned to {commit}",
            )  # fmt: skip
    except PublishError:
        raise
    except Exception as error:  # network, authentication and permission errors all end here
        raise PublishError(
            f"Uploading {folder} to {repo_id} failed: {type(error).__name__}: {error}. Check the network and that "
            "the token may write to that organisation."
        ) from error
    logger.info("uploaded %s to %s at commit %s", folder, repo_id, commit)
    return commit


__all__ = [
    "PublishError",
    "check_publishable",
    "check_repo_id",
    "content_revision",
    "missing_pieces",
    "publish_to_cache",
    "publish_to_hub",
    "published_files",
    "repo_cache_folder",
    "safetensors_problem",
]
