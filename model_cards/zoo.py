"""Zoo entries: each builds one Hub-ready checkpoint folder with its results JSON from the embedded defaults.

A stage whose output folder is complete is skipped, so rerunning ``zoo build`` resumes instead of restarting;
folders are written to a temporary name and renamed into place, so an interrupted stage leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json", "model.safetensors", "results.json")


@dataclass
class ZooSettings:
    """Budget of a zoo build; the defaults finish in minutes on 2 CPU cores, ``full`` uses paper-sized settings."""

    output_dir: str = field(default="zoo", metadata={"help": "Where entry folders are written."})
    work_dir: str = field(default="runs/zoo", metadata={"help": "Trainer checkpoints (resumable)."})
    full: bool = field(default=False, metadata={"help": "Paper-sized settings instead of the quick default budget."})
    overrides: dict = field(default_factory=dict, metadata={"help": "Per-entry setting overrides (for tests)."})


def is_complete(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds a finished entry (weights, config and results)."""
    return all((Path(folder) / name).is_file() for name in REQUIRED_FILES)


def build_alpine_minilm(folder: str, settings: ZooSettings) -> dict:
    """all-MiniLM-L6-v2 fine-tuned on stdlib clone detection with ALPINE pruning in every layer (merge on)."""
    from alpine_hf.finetune import FinetuneConfig, run_finetune
    from alpine_hf.utils import atomic_write

    budget = {"train_pairs": 4000, "eval_pairs": 1000, "max_length": 512, "epochs": 2} if settings.full else {}
    budget.update(settings.overrides.get("alpine-minilm", {}))
    config = FinetuneConfig(
        modes=("none", "all"), output_dir=os.path.join(settings.work_dir, "alpine-minilm"), **budget
    )
    staging = folder + ".model"
    results = run_finetune(config, save_mode="all", save_to=staging)
    results["entry"] = "alpine-minilm"
    results["base_model"] = "sentence-transformers/all-MiniLM-L6-v2"
    results["command"] = "make zoo" + (" FULL=1" if settings.full else "")
    atomic_write(Path(staging) / "results.json", lambda path: Path(path).write_text(json.dumps(results, indent=2)))
    if Path(folder).exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return results


ENTRIES: dict[str, Callable[[str, ZooSettings], dict]] = {"alpine-minilm": build_alpine_minilm}


def build_entry(name: str, settings: ZooSettings | None = None) -> dict:
    """Build one zoo entry (or reuse it if it is complete) and return its results."""
    settings = settings or ZooSettings()
    if name not in ENTRIES:
        raise ValueError(f"Unknown zoo entry {name!r}; valid entries: {', '.join(sorted(ENTRIES))}.")
    folder = os.path.join(settings.output_dir, name)
    if is_complete(folder):
        logger.info("%s: complete output found in %s, skipping", name, folder)
        return json.loads((Path(folder) / "results.json").read_text())
    logger.info("%s: building into %s", name, folder)
    return ENTRIES[name](folder, settings)


def build_zoo(names: list[str] | None = None, settings: ZooSettings | None = None) -> dict[str, dict]:
    """Build every entry named (default: all) and write ``<output_dir>/README.md`` with the results table."""
    from tqdm.auto import tqdm

    settings = settings or ZooSettings()
    names = list(names or ENTRIES)
    for name in names:
        if name not in ENTRIES:
            raise ValueError(f"Unknown zoo entry {name!r}; valid entries: {', '.join(sorted(ENTRIES))}.")
    results = {name: build_entry(name, settings) for name in tqdm(names, desc="zoo entries")}
    write_index(settings.output_dir)
    return results


def write_index(output_dir: str) -> None:
    """``zoo/README.md``: one row per complete entry, numbers read from each entry's results.json."""
    from alpine_hf.utils import atomic_write

    rows = ["# Zoo", "", "| entry | task | metric | unpruned | compressed | retention |", "|---|---|---|---|---|---|"]
    for name in sorted(ENTRIES):
        folder = Path(output_dir) / name
        if not is_complete(folder):
            continue
        modes = json.loads((folder / "results.json").read_text())["modes"]
        base, pruned = modes["none"], modes["all"]
        rows.append(
            f"| {name} | clone detection | F1 | {base['f1']:.4f} | {pruned['f1']:.4f} | {pruned['retention_f1']:.2%} |"
        )
    atomic_write(Path(output_dir) / "README.md", lambda path: Path(path).write_text("\n".join(rows) + "\n"))


__all__ = ["ENTRIES", "ZooSettings", "build_entry", "build_zoo", "is_complete", "write_index"]
