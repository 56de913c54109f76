"""Zoo entries ``xtc-gpt2-teacher`` and ``xtc-gpt2-1w8a6l``: a CodeGPT-style GPT-2 trained here and its XTC student.

Both entries share one cached pipeline (teacher, 6L layer reduction, 1W8A6L quantisation, and 1W8A under
``--full``) and one evaluation of every variant on held-out line completion, so the second entry costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.xtc_bench import CONVERGED_STAGE_STEPS, RUN_ORDER, VARIANTS, student_embedding_bits
from benchmarks.xtc_teacher import TeacherSettings
from compress_utils.capability import probe
from xtc_hf import XTCRecipeConfig

from .common import (
    Stages,
    ZooSettings,
    assemble_entry,
    budget_dict,
    budget_field,
    budget_key,
    cached_json,
    entry_budget,
    entry_command,
    stage_fields,
    write_json,
)

BUDGET_KEY = "xtc"
ENTRY_VARIANT = {"xtc-gpt2-teacher": "base", "xtc-gpt2-1w8a6l": "1W8A6L"}
# the recipe fields each variant sets (benchmarks.xtc_bench.VARIANTS); the budget's `recipe` holds the rest
VARIANT_FIELDS = tuple(sorted(set().union(*VARIANTS.values())))


def _default_teacher() -> TeacherSettings:
    # a fixed number of steps, not a time budget (`minutes` is unused when `steps` is set): the entry must not depend
    # on how busy the machine is (4 minutes gave 315 steps on an idle 2-core machine and 120 on a busy one). 200 steps:
    # a step takes 0.8 s on 2 AVX-512 cores but 2.2 s on 2 AVX2 Zen 3 cores, where 300 steps put the zoo over an hour
    return TeacherSettings(minutes=4.0, steps=200)


def _default_recipe() -> XTCRecipeConfig:
    return XTCRecipeConfig(layer_reduction_steps=60, quantization_steps=60)


# ~16 min on 2 idle AVX2 Zen 3 cores (measured: teacher 492 s, stages 95 s and 102 s, evaluation 237 s)
@dataclass
class XTCBudget:
    """What the XTC entries run: the teacher's and XTC's own configs (``teacher``, ``recipe``) and which students
    are built and how many samples score them. Each field's ``stage`` names the cache key it joins (the teacher's
    settings key its own cache folder).

    Example:
        >>> DEFAULT.recipe.layer_reduction_steps, FULL.variants
        (60, ('6L', '1W8A6L', '1W8A'))
    """

    teacher: TeacherSettings = budget_field(
        "teacher",
        "How the teacher is trained (benchmarks.xtc_teacher.TeacherSettings).",
        default_factory=_default_teacher,
    )
    recipe: XTCRecipeConfig = budget_field(
        "compress",
        f"XTC settings every student shares (xtc_hf.XTCRecipeConfig); {', '.join(VARIANT_FIELDS)} come from each variant.",
        default_factory=_default_recipe,
    )
    variants: tuple[str, ...] = budget_field(
        "compress", f"Students to build, from {sorted(VARIANTS)}.", ("6L", "1W8A6L")
    )
    variant_overrides: dict[str, dict] = budget_field(
        "compress",
        "Recipe settings one variant sets apart from `recipe`: {variant: {XTCRecipeConfig field: value}}.",
        default_factory=dict,
    )
    train_files: int | None = budget_field("compress", "Distil on the first N training files; None = all.", None)
    samples: int = budget_field("evaluate", "Held-out line-completion samples every model is scored on.", 100)

    def __post_init__(self):
        self.variants = tuple(self.variants)
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"`variants` has unknown names {unknown}; choose from {sorted(VARIANTS)}.")
        defaults = {f.name: f.default for f in dataclasses.fields(XTCRecipeConfig) if f.name in VARIANT_FIELDS}
        changed = sorted(name for name, value in defaults.items() if getattr(self.recipe, name) != value)
        if changed:  # each variant replaces them, so a changed value would be recorded but never used
            raise ValueError(
                f"`recipe` sets {changed}, which each variant sets itself (benchmarks.xtc_bench.VARIANTS); choose the "
                f"students with `variants` instead."
            )
        self._check_variant_overrides()
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"`samples` must be an int >= 1, got {self.samples!r}.")
        if self.train_files is not None and (not isinstance(self.train_files, int) or self.train_files < 1):
            raise ValueError(f"`train_files` must be None or an int >= 1, got {self.train_files!r}.")

    def _check_variant_overrides(self) -> None:
        if not isinstance(self.variant_overrides, dict):
            raise ValueError(
                f"`variant_overrides` must be a dict {{variant: {{setting: value}}}}, got {self.variant_overrides!r}."
            )
        unknown = sorted(set(self.variant_overrides) - set(VARIANTS))
        if unknown:
            raise ValueError(f"`variant_overrides` has unknown variants {unknown}; choose from {sorted(VARIANTS)}.")
        settings = {f.name for f in dataclasses.fields(XTCRecipeConfig)} - set(VARIANT_FIELDS)
        for name, overrides in self.variant_overrides.items():
            bad = sorted(set(overrides) - settings) if isinstance(overrides, dict) else overrides
            if bad:
                raise ValueError(
                    f"`variant_overrides[{name!r}]` must be a dict of XTCRecipeConfig settings other than "
                    f"{list(VARIANT_FIELDS)}, got {bad!r}."
                )
        for name in self.variants:
            self.variant_recipe(name)  # the recipe checks the values now, not after the teacher has trained

    def variant_recipe(self, name: str) -> XTCRecipeConfig:
        """The recipe that builds variant ``name``: ``recipe`` with the variant's own fields (VARIANTS), its
        embedding bits (float for the 6L), then ``variant_overrides[name]``.

        Example:
            >>> FULL.variant_recipe("1W8A6L").embedding_bits, FULL.variant_recipe("1W8A").embedding_bits
            (4, 8)
        """
        settings = {
            **VARIANTS[name],
            "embedding_bits": student_embedding_bits(name, self.recipe.embedding_bits),
            "position_embedding_bits": student_embedding_bits(name, self.recipe.position_embedding_bits),
        }
        return dataclasses.replace(self.recipe, **{**settings, **self.variant_overrides.get(name, {})})


DEFAULT = XTCBudget()
# the long run of `make bench-xtc-py150-row-lr`: the py150 teacher (20M tokens, ~1.7 h on 2 AVX-512 cores), each stage
# distilled until held-out KL stops falling, 1,000 scored lines (a retention figure good to about +-2%), one binary
# scale per output row, 8-bit position embeddings, stage 2 at a 1e-4 peak (EM 90.5% / ES 97.6% of the teacher, against
# 82.7% / 97.1% at the 5e-4 peak: benchmarks/results/xtc_gpt2_py150_row_emb8_lr.json). The 1W8A6L's word embeddings
# are 4-bit with the 2,048 most frequent tokens' rows at 8 bits (xtc_gpt2_py150_row_emb4_int8rows_lr.json: EM 95.6%,
# ES 97.3%, 21.1x smaller on disk, where 8-bit embeddings stop at 15.6x); the 12-layer 1W8A keeps 8-bit ones
FULL = dataclasses.replace(
    DEFAULT,
    teacher=TeacherSettings.preset("py150"),
    recipe=dataclasses.replace(
        DEFAULT.recipe,
        layer_reduction_steps=CONVERGED_STAGE_STEPS,
        quantization_steps=CONVERGED_STAGE_STEPS,
        until_converged=True,
        bf16=False,  # distilled in fp32, as XTC does (and the bench's long run)
        weight_granularity="row",
        embedding_bits=8,
        position_embedding_bits=8,
        quantization_learning_rate=1e-4,
    ),
    variant_overrides={"1W8A6L": {"embedding_bits": 4, "embedding_int8_rows": 2048}},
    variants=("6L", "1W8A6L", "1W8A"),
    samples=1000,
)


def _checkpoints(budget: XTCBudget, settings: ZooSettings, stages: Stages) -> tuple[dict, dict, str]:
    """Train (or reuse) the teacher and every variant of ``budget``: ``({variant: folder}, teacher metadata, stage
    folder)``. A previous build's map of finished stage folders is reused without loading or tokenising anything."""
    from datasets import Dataset
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from benchmarks.xtc_teacher import teacher_files, train_teacher
    from xtc_hf import xtc_compress
    from xtc_hf.recipe import STAGE_FILE, prepare_train_dataset

    cache = os.path.join(settings.work_dir, "xtc")
    order = [n for n in RUN_ORDER if n in budget.variants]
    with stages("teacher"):
        teacher_dir = train_teacher(budget.teacher, cache_dir=cache)
    teacher_meta = json.loads((Path(teacher_dir) / "xtc_teacher.json").read_text())
    output_dir = os.path.join(cache, "zoo", Path(teacher_dir).parent.name)
    done_path = Path(output_dir) / f"checkpoints-{budget_key(stage_fields(budget, 'compress'))}.json"
    if done_path.is_file():
        checkpoints = json.loads(done_path.read_text())
        if all((Path(checkpoints.get(name, "")) / STAGE_FILE).is_file() for name in order):
            for name in order:
                with stages(f"compress {name}"):
                    pass
            return {"base": teacher_dir, **{name: checkpoints[name] for name in order}}, teacher_meta, output_dir
    teacher = GPT2LMHeadModel.from_pretrained(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    # in the code form the teacher learnt (a py150 teacher's students read py150), tokenised once, not once per variant
    files = teacher_files(teacher_dir, "train")[0][: budget.train_files]
    train = prepare_train_dataset(Dataset.from_list(files), tokenizer, budget.recipe.block_size)
    # held-out KL on the valid split decides when a stage has converged; the test split stays for the scores
    valid = Dataset.from_list(teacher_files(teacher_dir, "valid")[0]) if budget.recipe.until_converged else None
    checkpoints = {"base": teacher_dir}
    for name in order:
        with stages(f"compress {name}"):
            recipe = budget.variant_recipe(name)
            model = xtc_compress(
                teacher, recipe, train, tokenizer=tokenizer, output_dir=output_dir, eval_dataset=valid
            )
            checkpoints[name] = model.xtc_checkpoint
    write_json(done_path, checkpoints)
    return checkpoints, teacher_meta, output_dir


def _variant_row(name: str, folder: str, samples: list[dict], progress: bool, positions: int) -> dict:
    """Line-completion EM/ES, disk size, parameters and bit widths of one checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.xtc_bench import count_parameters, disk_bytes
    from benchmarks.xtc_eval import evaluate_line_completion

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    scores = evaluate_line_completion(model, tokenizer, samples, progress=progress, positions=positions)
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
    from benchmarks.xtc_eval import SAMPLING_VERSION, line_completion_samples
    from benchmarks.xtc_teacher import teacher_files
    from xtc_hf.recipe import stage_reports

    budget = entry_budget(settings, BUDGET_KEY, DEFAULT, FULL)
    which = ENTRY_VARIANT[entry]
    if which != "base" and which not in budget.variants:
        raise ValueError(f"Entry {entry!r} needs the {which} variant; add it to `overrides['xtc']['variants']`.")
    names = ["teacher", *[f"compress {n}" for n in RUN_ORDER if n in budget.variants]]
    stages = Stages(entry, [*names, "evaluate", "package"], enabled=settings.progress)
    checkpoints, teacher_meta, output_dir = _checkpoints(budget, settings, stages)
    with stages("evaluate"):
        files, lines = teacher_files(checkpoints["base"], "test")  # scored in the teacher's code form
        samples = line_completion_samples(files, budget.samples, seed=0, lines=lines)
        # teacher and students trained on blocks of at most this length: prompt and completion stay within it
        positions = min(teacher_meta["settings"]["block_size"], budget.recipe.block_size)
        evaluate_key = budget_key(stage_fields(budget, "evaluate"))
        variants = {}
        for name, checkpoint in checkpoints.items():
            # checkpoint folders are keyed by their settings, so a score cached for one stays valid
            key = f"{os.path.abspath(checkpoint)}|{evaluate_key}|{SAMPLING_VERSION}"
            key = hashlib.sha256(key.encode()).hexdigest()[:12]
            path = Path(settings.work_dir) / "xtc" / "scores" / f"{name}-{key}.json"
            row = cached_json(path, lambda: _variant_row(name, checkpoint, samples, settings.progress, positions))  # noqa: B023
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
            "task": "line-level code completion on held-out standard-library files"
            + (" (PY150 form)" if teacher_meta["settings"].get("code_form") == "py150" else ""),
            "variants": variants,
            "teacher_training": teacher_meta,
            # bf16 defaults to auto: what the teacher and the students trained in, and on which machine
            "bf16": {
                "teacher": teacher_meta.get("settings", {}).get("bf16"),
                "students": student_bf16,
            },
            "capability": probe(),
            "budget": budget_dict(budget),
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


__all__ = ["BUDGET_KEY", "DEFAULT", "FULL", "VARIANT_FIELDS", "XTCBudget", "build_xtc_1w8a6l", "build_xtc_teacher"]
