"""Zoo entries ``xtc-gpt2-teacher`` and ``xtc-gpt2-1w8a6l``: a CodeGPT-style GPT-2 trained here and its XTC student.

Both entries share one cached pipeline (teacher, 6L layer reduction, 1W8A6L quantisation, and 1W8A under
``--full``) and one evaluation of every variant on held-out line completion, so the second entry costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from compress_utils.capability import probe

from .common import (
    Stages,
    ZooSettings,
    assemble_entry,
    budget_key,
    cached_json,
    entry_budget,
    entry_command,
    write_json,
)

BUDGET_KEY = "xtc"
# ~9 min on 2 idle cores (measured: teacher 237 s, stages 99 s and 102 s, evaluation 73 s).
# a fixed number of teacher steps, not a time budget: the entry must not depend on how busy the machine is (4 minutes
# gave 315 steps on an idle 2-core machine and 120 on a busy one); 300 steps take about 4 minutes on 2 idle cores
# `teacher`: TeacherSettings fields replaced (dataclasses.replace) on top of minutes/teacher_steps; `train_files`:
# the first N training files for distillation (None = all). Tests use both for a tiny, fast pipeline.
DEFAULT = {"minutes": 4.0, "teacher_steps": 300, "steps": 100, "samples": 100, "variants": ["6L", "1W8A6L"],
           "teacher": {}, "train_files": None}  # fmt: skip
FULL = {"minutes": 30.0, "teacher_steps": 2400, "steps": 600, "samples": 200, "variants": ["6L", "1W8A6L", "1W8A"]}
ENTRY_VARIANT = {"xtc-gpt2-teacher": "base", "xtc-gpt2-1w8a6l": "1W8A6L"}


def _checkpoints(budget: dict, settings: ZooSettings, stages: Stages) -> tuple[dict, dict, str]:
    """Train (or reuse) the teacher and every variant of ``budget``: ``({variant: folder}, teacher metadata, stage
    folder)``. A previous build's map of finished stage folders is reused without loading or tokenising anything."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from benchmarks.xtc_bench import RUN_ORDER, VARIANTS
    from benchmarks.xtc_teacher import TeacherSettings, train_teacher
    from xtc_hf import XTCRecipeConfig, xtc_compress
    from xtc_hf.data import stdlib_dataset
    from xtc_hf.recipe import STAGE_FILE, prepare_train_dataset

    cache = os.path.join(settings.work_dir, "xtc")
    order = [n for n in RUN_ORDER if n in budget["variants"]]
    with stages("teacher"):
        teacher_settings = TeacherSettings(minutes=budget["minutes"], steps=budget["teacher_steps"])
        unknown = sorted(set(budget["teacher"]) - {f.name for f in dataclasses.fields(TeacherSettings)})
        if unknown:
            raise ValueError(
                f"`overrides['xtc']['teacher']` has unknown TeacherSettings fields {unknown}; valid ones: "
                f"{sorted(f.name for f in dataclasses.fields(TeacherSettings))}."
            )
        teacher_dir = train_teacher(dataclasses.replace(teacher_settings, **budget["teacher"]), cache_dir=cache)
    teacher_meta = json.loads((Path(teacher_dir) / "xtc_teacher.json").read_text())
    output_dir = os.path.join(cache, "zoo", Path(teacher_dir).parent.name)
    # train_files joins the key only when set, so default builds keep their cached stages
    keyed = ("steps", "variants") + (("train_files",) if budget["train_files"] is not None else ())
    done_path = Path(output_dir) / f"checkpoints-{budget_key({k: budget[k] for k in keyed})}.json"
    if done_path.is_file():
        checkpoints = json.loads(done_path.read_text())
        if all((Path(checkpoints.get(name, "")) / STAGE_FILE).is_file() for name in order):
            for name in order:
                with stages(f"compress {name}"):
                    pass
            return {"base": teacher_dir, **{name: checkpoints[name] for name in order}}, teacher_meta, output_dir
    teacher = GPT2LMHeadModel.from_pretrained(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    train = prepare_train_dataset(
        stdlib_dataset("train", max_files=budget["train_files"]), tokenizer
    )  # once, not once per variant
    checkpoints = {"base": teacher_dir}
    for name in order:
        with stages(f"compress {name}"):
            recipe = XTCRecipeConfig(
                **VARIANTS[name], layer_reduction_steps=budget["steps"], quantization_steps=budget["steps"]
            )
            model = xtc_compress(teacher, recipe, train, tokenizer=tokenizer, output_dir=output_dir)
            checkpoints[name] = model.xtc_checkpoint
    write_json(done_path, checkpoints)
    return checkpoints, teacher_meta, output_dir


def _variant_row(name: str, folder: str, samples: list[dict], progress: bool) -> dict:
    """Line-completion EM/ES, disk size, parameters and bit widths of one checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.xtc_bench import count_parameters, disk_bytes
    from benchmarks.xtc_eval import evaluate_line_completion

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    scores = evaluate_line_completion(model, AutoTokenizer.from_pretrained(folder), samples, progress=progress)
    stage_file = Path(folder) / "xtc_stage.json"
    return {
        "em": scores["em"],
        "es": scores["es"],
        "n": scores["n"],
        "disk_mb": disk_bytes(folder) / 1e6,
        "parameters": count_parameters(model),
        "layers": model.config.n_layer,
        "weight_bits": getattr(model.config, "weight_bits", 32),
        "activation_bits": getattr(model.config, "activation_bits", 32),
        "stage": json.loads(stage_file.read_text())["stage"] if stage_file.is_file() else "teacher",
    }


def _build_xtc(folder: str, settings: ZooSettings, entry: str) -> dict:
    from benchmarks.xtc_bench import RUN_ORDER, VARIANTS
    from benchmarks.xtc_eval import line_completion_samples
    from xtc_hf.data import stdlib_code
    from xtc_hf.recipe import stage_reports

    budget = entry_budget(settings, BUDGET_KEY, DEFAULT, FULL)
    unknown = sorted(set(budget["variants"]) - set(VARIANTS))
    if unknown:
        raise ValueError(
            f"`overrides['xtc']['variants']` has unknown names {unknown}; choose from {sorted(VARIANTS)}."
        )
    which = ENTRY_VARIANT[entry]
    if which != "base" and which not in budget["variants"]:
        raise ValueError(f"Entry {entry!r} needs the {which} variant; add it to `overrides['xtc']['variants']`.")
    names = ["teacher", *[f"compress {n}" for n in RUN_ORDER if n in budget["variants"]]]
    stages = Stages(entry, [*names, "evaluate", "package"], enabled=settings.progress)
    checkpoints, teacher_meta, output_dir = _checkpoints(budget, settings, stages)
    with stages("evaluate"):
        samples = line_completion_samples(stdlib_code("test"), budget["samples"], seed=0)
        variants = {}
        for name, checkpoint in checkpoints.items():
            # checkpoint folders are keyed by their settings, so a score cached for one stays valid
            key = hashlib.sha256(f"{os.path.abspath(checkpoint)}|{budget['samples']}".encode()).hexdigest()[:12]
            path = Path(settings.work_dir) / "xtc" / "scores" / f"{name}-{key}.json"
            row = cached_json(path, lambda: _variant_row(name, checkpoint, samples, settings.progress))  # noqa: B023
            variants[name] = {**row, "checkpoint": checkpoint}
        reports = stage_reports(output_dir)
        student_bf16 = {}
        for name, checkpoint in checkpoints.items():
            report = reports.get(Path(checkpoint).parent.name)
            if report:
                student_bf16[name] = report.get("bf16")  # None: a stage trained before bf16 was recorded
            variants[name]["train_seconds"] = report["train_seconds"] if report else teacher_meta["train_seconds"]
            variants[name]["train_steps"] = report["steps"] if report else teacher_meta["steps"]
    with stages("package"):
        base, student = variants["base"], variants.get("1W8A6L")
        results = {
            "entry": entry,
            "family": "xtc",
            "method": "XTC",
            "variant": which,
            "base_entry": None if which == "base" else "xtc-gpt2-teacher",
            "task": "line-level code completion on held-out standard-library files",
            "variants": variants,
            "teacher_training": teacher_meta,
            # bf16 defaults to auto: what the teacher and the students trained in, and on which machine
            "bf16": {
                "teacher": teacher_meta.get("settings", {}).get("bf16"),
                "students": student_bf16,
            },
            "capability": probe(),
            "budget": budget,
            "command": entry_command(entry, settings, (BUDGET_KEY,)),
        }
        if student is not None:
            results.update(
                teacher={key: base[key] for key in ("em", "es", "n", "disk_mb")},
                student={key: student[key] for key in ("em", "es", "n", "disk_mb")},
                disk_ratio=base["disk_mb"] / student["disk_mb"],
                es_retention=student["es"] / max(base["es"], 1e-12),
            )
        holds_student = which != "base" and student is not None
        results["summary"] = {
            "task": "line completion",
            "metric": "ES",
            "base": base["es"],
            "compressed": student["es"] if holds_student else None,
            "retention": results["es_retention"] if holds_student else None,
            "compression": f"{results['disk_ratio']:.1f}x smaller on disk" if holds_student else None,
        }
        assemble_entry(folder, [checkpoints[which]], results, refresh_code_from="xtc_hf")
    return results


def build_xtc_teacher(folder: str, settings: ZooSettings) -> dict:
    """The CodeGPT-style 12-layer GPT-2 teacher trained here on standard-library code (a stock GPT-2 checkpoint)."""
    return _build_xtc(folder, settings, "xtc-gpt2-teacher")


def build_xtc_1w8a6l(folder: str, settings: ZooSettings) -> dict:
    """The teacher compressed by XTC: 6 layers, 1-bit weights, 8-bit activations, packed on disk."""
    return _build_xtc(folder, settings, "xtc-gpt2-1w8a6l")


__all__ = ["BUDGET_KEY", "DEFAULT", "FULL", "build_xtc_1w8a6l", "build_xtc_teacher"]
