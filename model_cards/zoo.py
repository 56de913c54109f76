"""Zoo entries: each builds one Hub-ready checkpoint folder with its results JSON and model card.

A stage whose output is complete is skipped, so rerunning ``zoo build`` resumes instead of restarting; entry folders
are assembled in a hidden temporary folder and renamed into place, so an interrupted build leaves nothing
half-written. Every entry folder gets its model card (``README.md`` and plot) and ``<output_dir>/README.md`` indexes
them.

Example:
    >>> from model_cards.zoo import ZooSettings, build_zoo
    >>> results = build_zoo(["xtc-gpt2-teacher"], ZooSettings(output_dir="zoo"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from . import alpine_entry, flab_entry, xtc_entry
from .alpine_entry import build_alpine_minilm
from .common import (
    DEFAULT_ORG,
    REQUIRED_FILES,
    STAGE_SECONDS,
    ZooSettings,
    apply_overrides,
    is_complete,
    write_json,
)
from .flab_entry import build_flab_smollm2, build_flab_smollm2_recovered
from .xtc_entry import build_xtc_1w8a6l, build_xtc_teacher

logger = logging.getLogger(__name__)

# built in this order: the recovered Flab entry starts from the pruned one, the XTC teacher entry reuses the
# student's pipeline
ENTRIES: dict[str, Callable[[str, ZooSettings], dict]] = {
    "alpine-minilm": build_alpine_minilm,
    "flab-smollm2": build_flab_smollm2,
    "flab-smollm2-recovered": build_flab_smollm2_recovered,
    "xtc-gpt2-1w8a6l": build_xtc_1w8a6l,
    "xtc-gpt2-teacher": build_xtc_teacher,
}

# entries an entry starts from: build_entry builds them first, so entry modules never import the zoo
REQUIRES: dict[str, tuple[str, ...]] = {"flab-smollm2-recovered": ("flab-smollm2",)}

# budget key -> (default budget, --full budget): the dataclasses `--overrides` changes
BUDGETS = {
    alpine_entry.NAME: (alpine_entry.DEFAULT, alpine_entry.FULL),
    flab_entry.BUDGET_KEY: (flab_entry.DEFAULT, flab_entry.FULL),
    xtc_entry.BUDGET_KEY: (xtc_entry.DEFAULT, xtc_entry.FULL),
}


def check_overrides(overrides: dict, full: bool = False) -> dict:
    """``overrides`` if they apply to their budgets (every key and name exists, every value passes the configs'
    checks), else the ValueError naming what is wrong; nothing is built either way.

    Example:
        >>> check_overrides({"flab": {"humaneval": 20, "prune": {"layers_to_prune": 2}}})
        {'flab': {'humaneval': 20, 'prune': {'layers_to_prune': 2}}}
    """
    for key, values in overrides.items():
        if key not in BUDGETS:
            raise ValueError(f"`overrides` has unknown budget key {key!r}; valid keys: {', '.join(sorted(BUDGETS))}.")
        apply_overrides(BUDGETS[key][full], values, f"overrides[{key!r}]")
    return overrides


def check_entry_names(names) -> list[str]:
    """``names`` as a list, or a ValueError naming the valid entries."""
    names = list(names)
    for name in names:
        if name not in ENTRIES:
            raise ValueError(f"Unknown zoo entry {name!r}; valid entries: {', '.join(sorted(ENTRIES))}.")
    return names


def build_entry(name: str, settings: ZooSettings | None = None) -> dict:
    """Build one zoo entry (or reuse it if it is complete), write its card and return its results."""
    from .card import write_card

    settings = settings or ZooSettings()
    check_entry_names([name])
    check_overrides(settings.overrides, settings.full)
    for required in REQUIRES.get(name, ()):
        build_entry(required, settings)
    folder = os.path.join(settings.output_dir, name)
    if is_complete(folder):
        logger.info("%s: complete output found in %s, skipping", name, folder)
        results = json.loads((Path(folder) / "results.json").read_text())
    else:
        logger.info("%s: building into %s", name, folder)
        results = ENTRIES[name](folder, settings)
    write_card(folder, org=DEFAULT_ORG)
    return results


def build_zoo(names: list[str] | None = None, settings: ZooSettings | None = None) -> dict[str, dict]:
    """Build every entry named (default: all, in :data:`ENTRIES` order) and write ``<output_dir>/README.md``."""
    from tqdm.auto import tqdm

    settings = settings or ZooSettings()
    names = check_entry_names(names or ENTRIES)
    check_overrides(settings.overrides, settings.full)
    started = time.perf_counter()
    STAGE_SECONDS.clear()
    results, entries = {}, {}
    for name in tqdm(names, desc="zoo entries", disable=not settings.progress):
        entry_started = time.perf_counter()
        reused = is_complete(os.path.join(settings.output_dir, name))
        results[name] = build_entry(name, settings)
        entries[name] = {"seconds": round(time.perf_counter() - entry_started, 1), "reused": reused}
    write_index(settings.output_dir)
    write_build_times(settings, entries, time.perf_counter() - started)
    return results


def write_build_times(settings: ZooSettings, entries: dict[str, dict], seconds: float) -> dict:
    """``<output_dir>/build.json``: how long this build took, per entry (``reused`` = found complete) and stage, on
    which machine (the capability probe) and with which budget; ``make results`` renders a copy of it in README."""
    from compress_utils.capability import probe

    for name, stages in STAGE_SECONDS.items():
        entries.setdefault(name, {"seconds": None, "reused": False})["stages"] = dict(stages)
    data = {
        "benchmark": "zoo build: wall time of a whole build",
        "capability": probe(),
        "full": settings.full,
        "overrides": settings.overrides,
        "total_seconds": round(seconds, 1),
        "entries": entries,
    }
    write_json(Path(settings.output_dir) / "build.json", data)
    return data


def _cell(value, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if percent else f"{value:.4g}"


def write_index(output_dir: str, org: str = DEFAULT_ORG) -> None:
    """``<output_dir>/README.md``: one row per complete entry, every number read from the entry's results.json."""
    from compress_utils.io import atomic_write

    rows = [
        "# codecompress-hf model zoo",
        "",
        "Built by `zoo build` (`make zoo`). Every number is read from the entry's `results.json`; each entry folder "
        "holds its model card (`README.md`).",
        "",
        "| entry | method | task | metric | base | compressed | retention | compression | Hub name |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ENTRIES:
        folder = Path(output_dir) / name
        if not is_complete(folder):
            continue
        results = json.loads((folder / "results.json").read_text())
        summary = results["summary"]
        method = results.get("method") or name.split("-", 1)[0].upper()
        cells = [
            f"[{name}]({name}/README.md)", method, summary["task"], summary["metric"], _cell(summary["base"]),
            _cell(summary["compressed"]), _retention_cell(summary),
            summary.get("compression") or "-", f"`{org}/{name}`",
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    atomic_write(Path(output_dir) / "README.md", lambda path: Path(path).write_text("\n".join(rows) + "\n"))


def _retention_cell(summary: dict) -> str:
    """This checkpoint's retention, and the mean ± std over training seeds where the entry ran several."""
    cell = _cell(summary["retention"], percent=True)
    if summary.get("seeds", 1) > 1:
        cell += f" ({summary['seeds']} seeds: {summary['retention_mean']:.1%} ± {summary['retention_std']:.1%})"
    return cell


__all__ = [
    "BUDGETS",
    "ENTRIES",
    "REQUIRED_FILES",
    "REQUIRES",
    "ZooSettings",
    "build_entry",
    "build_zoo",
    "check_entry_names",
    "check_overrides",
    "is_complete",
    "write_build_times",
    "write_index",
]
