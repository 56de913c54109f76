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
    base, pruned = results["modes"]["none"], results["modes"]["all"]
    results["summary"] = {
        "task": "clone detection",
        "metric": "F1",
        "base": base["f1"],
        "compressed": pruned["f1"],
        "retention": pruned["retention_f1"],
    }
    atomic_write(Path(staging) / "results.json", lambda path: Path(path).write_text(json.dumps(results, indent=2)))
    if Path(folder).exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return results


def _folder_megabytes(folder: str) -> float:
    return sum(path.stat().st_size for path in Path(folder).glob("*.safetensors")) / 1e6


def _xtc_models(settings: ZooSettings) -> dict[str, str]:
    """Train (or reuse from the cache) the CodeGPT-style teacher and its 1W8A6L student; return their folders."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from xtc_hf import XTCRecipeConfig, xtc_compress
    from xtc_hf.data import stdlib_dataset
    from xtc_hf.teacher import TeacherSettings, train_teacher

    budget = {"minutes": 30.0, "steps": 600} if settings.full else {"minutes": 4.0, "steps": 100}
    budget.update(settings.overrides.get("xtc", {}))
    cache = os.path.join(settings.work_dir, "xtc")
    teacher_dir = train_teacher(
        TeacherSettings(minutes=budget["minutes"], steps=budget.get("teacher_steps")), cache_dir=cache
    )
    teacher = GPT2LMHeadModel.from_pretrained(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    recipe = XTCRecipeConfig(layer_reduction_steps=budget["steps"], quantization_steps=budget["steps"])
    output_dir = os.path.join(cache, "zoo", Path(teacher_dir).parent.name)
    student = xtc_compress(teacher, recipe, stdlib_dataset("train"), tokenizer=tokenizer, output_dir=output_dir)
    return {"teacher": teacher_dir, "student": student.xtc_checkpoint, "samples": budget.get("samples", 100)}


def _build_xtc(folder: str, settings: ZooSettings, which: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alpine_hf.utils import atomic_write
    from xtc_hf.data import stdlib_code
    from xtc_hf.evaluation import evaluate_line_completion, line_completion_samples

    models = _xtc_models(settings)
    samples = line_completion_samples(stdlib_code("test"), models["samples"], seed=0)
    scores = {}
    for name in ("teacher", "student"):
        model = AutoModelForCausalLM.from_pretrained(models[name], trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(models[name])
        result = evaluate_line_completion(model, tokenizer, samples)
        result.pop("predictions")
        scores[name] = {**result, "disk_mb": _folder_megabytes(models[name])}
    results = {
        "entry": folder.rsplit(os.sep, 1)[-1],
        "task": "line-level code completion on held-out standard-library files",
        "teacher": scores["teacher"],
        "student": scores["student"],
        "disk_ratio": scores["teacher"]["disk_mb"] / scores["student"]["disk_mb"],
        "es_retention": scores["student"]["es"] / max(scores["teacher"]["es"], 1e-12),
        "command": "make zoo" + (" FULL=1" if settings.full else ""),
    }
    results["summary"] = {
        "task": "line completion",
        "metric": "ES",
        "base": scores["teacher"]["es"],
        "compressed": scores["student"]["es"] if which == "student" else None,
        "retention": results["es_retention"] if which == "student" else None,
    }
    staging = folder + ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(models[which], staging)
    atomic_write(Path(staging) / "results.json", lambda path: Path(path).write_text(json.dumps(results, indent=2)))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)  # a half-copied checkpoint never sits at the final name
    return results


def build_xtc_teacher(folder: str, settings: ZooSettings) -> dict:
    """The CodeGPT-style 12-layer GPT-2 teacher trained here on standard-library code (a stock GPT-2 checkpoint)."""
    return _build_xtc(folder, settings, "teacher")


def build_xtc_1w8a6l(folder: str, settings: ZooSettings) -> dict:
    """The teacher compressed by XTC: 6 layers, 1-bit weights, 8-bit activations, packed on disk."""
    return _build_xtc(folder, settings, "student")


ENTRIES: dict[str, Callable[[str, ZooSettings], dict]] = {
    "alpine-minilm": build_alpine_minilm,
    "xtc-gpt2-1w8a6l": build_xtc_1w8a6l,
    "xtc-gpt2-teacher": build_xtc_teacher,
}


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

    rows = ["# Zoo", "", "| entry | task | metric | base | compressed | retention |", "|---|---|---|---|---|---|"]
    for name in sorted(ENTRIES):
        folder = Path(output_dir) / name
        if not is_complete(folder):
            continue
        summary = json.loads((folder / "results.json").read_text())["summary"]
        cells = [summary["base"], summary["compressed"]]
        shown = [f"{value:.4g}" if value is not None else "-" for value in cells]
        retention = f"{summary['retention']:.2%}" if summary["retention"] is not None else "-"
        rows.append(f"| {name} | {summary['task']} | {summary['metric']} | {shown[0]} | {shown[1]} | {retention} |")
    atomic_write(Path(output_dir) / "README.md", lambda path: Path(path).write_text("\n".join(rows) + "\n"))


__all__ = ["ENTRIES", "ZooSettings", "build_entry", "build_zoo", "is_complete", "write_index"]
