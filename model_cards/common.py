"""Pieces every zoo entry shares: build settings, budgets, stage progress bars, atomic entry folders, the command.

An entry's budget is a dataclass whose recipe settings are the recipes' own config objects (nested fields), beside
the few settings only the entry has; ``--overrides`` replaces fields at any depth. An entry's stages write their
outputs under the work directory (keyed by a hash of what each stage depends on, so a changed budget never resumes
stale work); the entry folder is assembled from them last, in a hidden temporary folder renamed into place, so an
interrupted build leaves no half-written entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json", "model.safetensors", "results.json")
DEFAULT_ORG = "codecompress-hf"


@dataclass
class ZooSettings:
    """Budget of a zoo build; the defaults finish within an hour on 2 idle CPU cores (51 minutes measured on an AMD
    EPYC capped to AVX2, all in fp32; the entries' ``stage_seconds`` say where the time goes), ``full`` is
    paper-sized.

    Example:
        >>> ZooSettings(overrides={"flab": {"humaneval": 20, "prune": {"layers_to_prune": 2}}}).full
        False
    """

    output_dir: str = field(default="zoo", metadata={"help": "Where entry folders are written."})
    work_dir: str = field(default="runs/zoo", metadata={"help": "Stage outputs and Trainer checkpoints (resumable)."})
    full: bool = field(default=False, metadata={"help": "Paper-sized settings instead of the quick default budget."})
    overrides: dict = field(
        default_factory=dict,
        metadata={
            "help": "Budget overrides per budget key (`alpine-minilm`, `flab`, `xtc`): a dict of budget fields; a "
            "nested recipe config takes a dict of its own fields, e.g. "
            '{"flab": {"humaneval": 20, "prune": {"layers_to_prune": 2}}}.'
        },
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar per entry and stage."})

    def __post_init__(self):
        if not isinstance(self.overrides, dict) or any(not isinstance(v, dict) for v in self.overrides.values()):
            raise ValueError(
                f"`overrides` must map a budget key to a dict of settings, e.g. {{'xtc': {{'samples': 10}}}}; "
                f"got {self.overrides!r}."
            )


def is_complete(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds a finished entry: weights, config and results with everything its card needs.

    Results written before entries recorded their ``family`` (and the measurements cards read) count as
    incomplete, so the next build redoes them (cached stages make that cheap); so do Flab entries recovered with LoRA
    before the zoo recovered by distillation (no recovery curve): the current build replaces them.
    """
    if not all((Path(folder) / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        results = json.loads((Path(folder) / "results.json").read_text())
    except json.JSONDecodeError:
        return False
    if not (isinstance(results, dict) and {"family", "summary", "command"} <= set(results)):
        return False
    recovery = results.get("recovery")
    return not (results["family"] == "flab" and isinstance(recovery, dict) and "curve" not in recovery)


# where and how visibly a stage runs, never what it computes: set by the build, kept out of budgets' keys and records
RUN_FIELDS = ("checkpoint_dir", "output_dir", "progress")


def budget_field(stage: str, help: str, default=dataclasses.MISSING, default_factory=dataclasses.MISSING):
    """A budget dataclass field with its ``help`` and the ``stage`` whose cache key it joins (:func:`stage_fields`)."""
    return field(default=default, default_factory=default_factory, metadata={"help": help, "stage": stage})


def apply_overrides(budget, overrides: dict, path: str = "overrides"):
    """``budget`` (a dataclass) with the fields named in ``overrides`` replaced (``dataclasses.replace``).

    A dict given for a field holding a dataclass (a recipe config) overrides that config's fields in turn, so only the
    settings named change. Every name is checked before anything is replaced: an unknown one is a ValueError naming
    ``path`` (the key path so far), the bad names and the valid ones, so a typo never silently builds with the default
    budget. Values are checked by the configs' own ``__post_init__``.

    Example:
        >>> from model_cards.flab_entry import DEFAULT
        >>> budget = apply_overrides(DEFAULT, {"humaneval": 20, "prune": {"layers_to_prune": 2}})
        >>> budget.humaneval, budget.prune.layers_to_prune, budget.prune.calibration_samples
        (20, 2, 6)
    """
    if not isinstance(overrides, dict):
        raise ValueError(f"`{path}` must be a dict of {type(budget).__name__} settings, got {overrides!r}.")
    names = sorted({f.name for f in dataclasses.fields(budget)} - set(RUN_FIELDS))
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"`{path}` has unknown settings {unknown}; valid ones: {names}{_hints(budget, unknown)}.")
    changes = {}
    for name, value in overrides.items():
        current = getattr(budget, name)
        if dataclasses.is_dataclass(current):
            value = apply_overrides(current, value, f"{path}[{name!r}]")
        changes[name] = value
    try:
        return dataclasses.replace(budget, **changes)
    except (TypeError, ValueError) as error:  # a bad value, refused by the config's __post_init__
        raise ValueError(f"`{path}`: {error}") from None


def _hints(budget, unknown: list[str]) -> str:
    """Which fields take nested dicts, where a misplaced name belongs, and who sets the run fields."""
    nested = {f.name: getattr(budget, f.name) for f in dataclasses.fields(budget)}
    nested = {name: config for name, config in nested.items() if dataclasses.is_dataclass(config)}
    hints = [f"`{name}` takes a dict of {type(config).__name__} settings" for name, config in nested.items()]
    for name in unknown:
        if name in RUN_FIELDS:
            hints.append(f"`{name}` is set by the build (--work-dir, --quiet), not by a budget")
            continue
        inner = [outer for outer, config in nested.items() if name in {f.name for f in dataclasses.fields(config)}]
        hints += [f"`{name}` goes inside `{outer}`, e.g. {{{outer!r}: {{{name!r}: ...}}}}" for outer in inner]
    return "".join(f"; {hint}" for hint in hints)


def entry_budget(settings: ZooSettings, key: str, default, full):
    """The budget of an entry: ``full`` under ``--full`` else ``default``, with ``settings.overrides[key]`` applied
    (:func:`apply_overrides`)."""
    return apply_overrides(full if settings.full else default, settings.overrides.get(key, {}), f"overrides[{key!r}]")


def budget_dict(budget) -> dict:
    """A budget (or a dict of budget parts) as JSON-ready data: ``dataclasses.asdict`` without :data:`RUN_FIELDS`.

    What ``results.json`` records and what :func:`budget_key` hashes.
    """
    if isinstance(budget, dict):
        return {name: budget_dict(value) for name, value in budget.items()}
    if dataclasses.is_dataclass(budget):
        return dataclasses.asdict(budget, dict_factory=lambda items: {k: v for k, v in items if k not in RUN_FIELDS})
    return budget


def stage_fields(budget, stage: str) -> dict:
    """The fields of ``budget`` whose metadata ``stage`` is ``stage``: what that stage's cache key depends on."""
    return {f.name: getattr(budget, f.name) for f in dataclasses.fields(budget) if f.metadata["stage"] == stage}


def budget_key(budget) -> str:
    """A short stable hash of a budget or part of one (:func:`budget_dict`): the name of its work folder.

    Example:
        >>> from model_cards.alpine_entry import DEFAULT
        >>> len(budget_key(DEFAULT))
        10
    """
    return hashlib.sha256(json.dumps(budget_dict(budget), sort_keys=True, default=str).encode()).hexdigest()[:10]


def entry_command(name: str, settings: ZooSettings, keys: tuple[str, ...]) -> str:
    """The exact ``zoo build`` command that produced an entry (with the overrides that shaped it)."""
    parts = ["zoo", "build", name]
    if settings.full:
        parts.append("--full")
    used = {key: settings.overrides[key] for key in keys if settings.overrides.get(key)}
    if used:
        parts += ["--overrides", "'" + json.dumps(used, sort_keys=True) + "'"]
    return " ".join(parts)


# stage -> seconds per entry, of every stage timed in this process (build_zoo writes them into build.json)
STAGE_SECONDS: dict[str, dict[str, float]] = {}


class Stages:
    """One progress bar per entry that advances stage by stage; each stage logs its wall time (and records it in
    :data:`STAGE_SECONDS`).

    Example:
        >>> stages = Stages("demo", ["load", "train"], enabled=False)
        >>> with stages("load"):
        ...     pass
        >>> list(stages.seconds)
        ['load']
    """

    def __init__(self, entry: str, names: list[str], enabled: bool = True):
        from tqdm.auto import tqdm

        self.entry, self.names, self.seconds = entry, list(names), {}
        self.bar = tqdm(total=len(self.names), desc=entry, unit="stage", disable=not enabled, leave=True)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        import time

        if name not in self.names:
            raise ValueError(f"Stage {name!r} is not one of {self.names} of entry {self.entry!r}.")
        self.bar.set_postfix_str(name)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        STAGE_SECONDS.setdefault(self.entry, {})[name] = self.seconds[name]
        logger.info("%s: stage %s took %.1f s", self.entry, name, self.seconds[name])
        self.bar.update(1)
        if self.bar.n >= len(self.names):
            self.bar.close()


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON atomically."""
    from compress_utils.io import atomic_write

    atomic_write(path, lambda target: Path(target).write_text(json.dumps(data, indent=2, default=str) + "\n"))


def read_json_if_present(path: str | os.PathLike) -> dict | None:
    """The JSON at ``path``, or None where there is no such file (a benchmark's results, absent in an installed
    package)."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def cached_json(path: str | os.PathLike, compute: Callable[[], dict]) -> dict:
    """The JSON at ``path`` if a previous run wrote it, else ``compute()`` written there (a resumable stage)."""
    path = Path(path)
    if path.is_file():
        logger.info("reusing %s", path)
        return json.loads(path.read_text())
    data = compute()
    write_json(path, data)
    return data


def assemble_entry(
    folder: str | os.PathLike, sources: list[str | os.PathLike], results: dict, refresh_code_from: str | None = None
) -> None:
    """Copy the files of ``sources`` (checkpoint folders or single files) and ``results.json`` into ``folder``.

    Written into a hidden temporary folder beside ``folder`` and renamed into place: an interrupted build leaves
    the previous entry (or nothing), never a half-written one. With ``refresh_code_from`` (a method package), the
    remote-code ``.py`` files a cached stage checkpoint carries are replaced by that package's current ones, as
    ``save_pretrained`` would write them today.
    """
    import importlib

    from compress_utils.io import atomic_dir

    if Path(folder).is_dir() and any(Path(folder).iterdir()) and not (Path(folder) / "results.json").is_file():
        raise FileExistsError(
            f"{os.fspath(folder)!r} exists and is not a zoo entry (no results.json); the zoo replaces only its own "
            "entries. Choose another --output folder or move it away."
        )
    with atomic_dir(folder, overwrite=True, argument="output") as staging:  # rebuilding an entry replaces it
        for source in sources:
            source = Path(source)
            if source.is_dir():
                shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
            else:
                shutil.copy2(source, Path(staging) / source.name)
        if refresh_code_from is not None:
            package = Path(importlib.import_module(refresh_code_from).__file__).parent
            for code in Path(staging).glob("*.py"):
                if (package / code.name).is_file():
                    shutil.copy2(package / code.name, code)
        (Path(staging) / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


__all__ = [
    "DEFAULT_ORG",
    "REQUIRED_FILES",
    "RUN_FIELDS",
    "Stages",
    "ZooSettings",
    "apply_overrides",
    "assemble_entry",
    "budget_dict",
    "budget_field",
    "budget_key",
    "cached_json",
    "entry_budget",
    "entry_command",
    "is_complete",
    "stage_fields",
    "read_json_if_present",
    "write_json",
]
