"""Recovery by distillation on SmolLM2-135M-Instruct: pruning levels, each recovered on the same token budget.

For every pruning level (:data:`~benchmarks.flab_levels.LEVELS`: the chat-keeping vocabulary alone, plus 2 or 4
decoder layers, plus FFN neurons; :func:`~benchmarks.flab_levels.parse_level` reads any other), the run prunes the
dense model (:func:`flab_hf.recipe.flab_prune`), distils the dense model into it
(:func:`flab_hf.distillation.distill_recover`: KL over the kept vocabulary, on code windows from the stdlib and the
vocabulary packages' sources, and the dense model's own chat answers to instruction prompts from the stdlib training
split) and measures, before and after (a vocabulary-only level already matches dense over its tokens, KL 0, and is
its own recovered model: :func:`nothing_to_recover`):

- held-out perplexity, KL to dense and next-token agreement on the stdlib test split, and perplexity on Python that
  is neither pruning nor training source (an installed third-party package, ``accelerate``);
- HumanEval pass@1 on all 164 problems (greedy, chat template, executed) in float32;
- the recovery curve (held-out perplexity, KL, agreement against training tokens, on the validation split);
- generation speed at batch 1 and 8 against dense, for the levels in ``speed_levels``.

Every stage is cached under ``work_dir`` by its settings (pruned and recovered models, answers, HumanEval answers,
distillation checkpoints), so an interrupted run resumes where it stopped. With ``results_dir`` set, each measured
level (and the dense row) is also stored there as one JSON file named by a hash of every setting that changes its
numbers, and read back instead of measured again: a level costs hours on a CPU, so a committed results folder lets
the frontier grow one level at a time on any machine. The pruned rows are those of ``flab-ablation``
(:class:`~benchmarks.flab_levels.Yardstick`): a level either benchmark measured is not measured again.

Example:
    >>> result = run_recovery_bench(RecoverySettings(levels=("vocab+4L",)))  # doctest: +SKIP
    >>> result["levels"]["vocab+4L"]["recovered"]["humaneval"]["passed"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from compress_utils.capability import describe
from compress_utils.io import atomic_write_text
from flab_hf.answers import instruction_prompts
from flab_hf.data import heldout_windows, package_code, stdlib_texts
from flab_hf.distillation import DistillationConfig, distill_recover
from flab_hf.distillation_data import (
    CHAT_SHARE,
    chat_prompt_chars,
    chat_texts,
    clean_answers,
    distillation_blocks,
    self_answers,
)
from flab_hf.pruning import count_parameters

from .flab_bench import interleaved_speeds
from .flab_levels import (
    LEVELS,
    LevelSettings,
    Yardstick,
    dense_result_path,
    load_pruned,
    parse_level,
    prune_key,
    row_key_values,
    settings_key,
    stored_row,
)

logger = logging.getLogger(__name__)

SPEED_PROMPT_TOKENS = 32  # held-out prompt per timed generation
SPEED_NEW_TOKENS = 64  # greedy tokens per timed generation
SPEED_ROUNDS = 5  # interleaved rounds; the median is reported
SPEEDUP_BAR = 1.25  # the float32 generation target, at batch 1 and 8 (JSON keys spell it too)


@dataclass
class RecoverySettings(LevelSettings):
    """Settings of the recovery benchmark: how levels are pruned and measured (:class:`LevelSettings`), the
    training data, and the distillation itself (``distill``)."""

    levels: tuple[str, ...] = field(
        default=("vocab+4L",),
        metadata={"help": f"Pruning levels ('vocab', '<n>L', 'ffn' joined by '+'; the frontier: {','.join(LEVELS)})."},
    )
    speed_levels: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Levels timed against dense (one not in `levels`: its pruned model); none by default, since "
            "timing needs an otherwise idle machine."
        },
    )
    answers: int = field(default=1024, metadata={"help": "Instruction prompts the dense model answers (training)."})
    answer_tokens: int = field(default=256, metadata={"help": "Longest training answer, in tokens."})
    chat_share: float = field(default=CHAT_SHARE, metadata={"help": "Share of the training tokens from chat answers."})
    clean_answers: bool = field(
        default=False,
        metadata={"help": "Train on the finished, loop-free answers with parsing code only (flab_hf clean_answers)."},
    )
    assistant_only_loss: bool = field(
        default=False,
        metadata={"help": "Leave the chat prompts (system and user turns) out of the loss: learn the answers only."},
    )
    train_chars: int = field(
        default=6_000_000, metadata={"help": "Characters of stdlib training code for the code windows."}
    )
    train_package_chars: int = field(
        default=6_000_000,
        metadata={
            "help": "Characters of the vocabulary packages' code (an equal share of each, spread over its files) "
            "beside the stdlib code in the code windows; 0 = stdlib code only."
        },
    )
    curve_windows: int = field(default=16, metadata={"help": "Validation windows of 256 tokens for the curve."})
    distill: DistillationConfig = field(default_factory=DistillationConfig)

    def __post_init__(self):
        super().__post_init__()
        self.speed_levels = tuple(self.speed_levels)
        for level in self.speed_levels:
            parse_level(level, argument="speed_levels")
        for name in ("answers", "answer_tokens", "train_chars", "curve_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        value = self.train_package_chars
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`train_package_chars` must be an int >= 0, got {value!r}.")
        if not 0 <= self.chat_share <= 1:
            raise ValueError(f"`chat_share` must be in [0, 1], got {self.chat_share!r}.")
        for name in ("assistant_only_loss", "clean_answers"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")


# distillation settings that change no number (logging and checkpoint cadence, where checkpoints go)
_NOT_IN_DISTILL_KEY = ("progress", "checkpoint_dir", "save_steps", "track_emissions")
# distillation settings added after rows were stored, at the value those rows had: left out of the keys at that
# value, so that the stored rows and recovered models keep their names
_DISTILL_KEY_SINCE = {"hidden_weight": 0.0}


def _distill_key_values(settings: RecoverySettings, leave_out=_NOT_IN_DISTILL_KEY) -> dict:
    return {
        name: value
        for name, value in asdict(settings.distill).items()
        if name not in leave_out and not (name in _DISTILL_KEY_SINCE and value == _DISTILL_KEY_SINCE[name])
    }


def level_result_path(settings: RecoverySettings, level: str) -> Path | None:
    """The JSON file of one recovered level's row in ``settings.results_dir`` (None when it is off), named by the
    level and a hash of every setting that changes the row (``"dense"``: the dense row, hashed over the measurement
    settings)."""
    if settings.results_dir is None:
        return None
    if level == "dense":
        return dense_result_path(settings)
    values = row_key_values(asdict(settings))
    values["distill"] = _distill_key_values(settings)
    values["level"] = list(parse_level(level))
    return Path(settings.results_dir) / f"{level}-{settings_key(values)}.json"


def _stored_row(settings: RecoverySettings, level: str, compute) -> dict:
    """``compute()``'s row for ``level``, read from (or written to) ``settings.results_dir`` when it is on."""
    return stored_row(level_result_path(settings, level), compute, level)


def run_recovery_bench(settings: RecoverySettings | None = None, progress: bool = True) -> dict:
    """Prune, recover and measure every level of ``settings``; returns the result dict (JSON-ready)."""
    settings = settings or RecoverySettings()
    started = time.perf_counter()
    yardstick = Yardstick(settings, progress)
    dense, tokenizer = yardstick.dense, yardstick.tokenizer
    result = {**yardstick.result("flab_recovery"), "levels": {}}
    prompts = instruction_prompts(stdlib_texts("train"), limit=settings.answers)
    answers_key = settings_key({"answers": settings.answers, "tokens": settings.answer_tokens})
    result["answers"] = {"prompts": len(prompts), "key": answers_key, "source": "stdlib train split"}
    answers_path = yardstick.work / f"answers-train-{settings.answers}x{settings.answer_tokens}.jsonl"
    training = {}  # the dense model's answers and the code windows, made when a level trains (not when all are stored)

    def training_data():
        if not training:
            training["records"] = self_answers(dense, tokenizer, prompts, answers_path, settings.answer_tokens,
                                               settings.generation_batch, progress)  # fmt: skip
            training["code"] = stdlib_texts("train", max_chars=settings.train_chars) + package_code(
                settings.vocab_packages, settings.train_package_chars, argument="vocab_packages"
            )
        return training["records"], training["code"]

    for level in settings.levels:
        result["levels"][level] = _stored_row(
            settings, level, lambda level=level: _run_level(level, settings, yardstick, training_data, progress)
        )
    if settings.speed_levels:

        def speed_dir(level: str) -> Path:
            # the recovered model, or the pruned one when it is not here (only the stored row, or a level timed
            # without recovery): same shapes, same speed
            row = result["levels"].get(level)
            if row is not None and (Path(row["recovered_dir"]) / "config.json").is_file():
                return Path(row["recovered_dir"])
            logger.info("%s: no recovered model here; timing the pruned model (same architecture)", level)
            return yardstick.pruned_dir(level)

        folders = {level: speed_dir(level) for level in settings.speed_levels}
        result["speed"] = _speed(dense, tokenizer, folders, result)
    result["targets"] = _targets(result)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _recovery_dirs(level: str, settings: RecoverySettings, work: Path) -> dict[str, Path]:
    distill = _distill_key_values(settings, leave_out=("progress", "checkpoint_dir"))
    data = {
        "answers": settings.answers,
        "answer_tokens": settings.answer_tokens,
        "chat": settings.chat_share,
        "train_chars": settings.train_chars,
        "package_chars": settings.train_package_chars,
        "blocks": "spread",  # each part's blocks spread over all of it (before: its first blocks)
    }
    if settings.assistant_only_loss:  # named when on, so that older folders keep their names
        data["assistant_only"] = True
    if settings.clean_answers:
        data["clean_answers"] = True
    recover_key = settings_key({"prune": prune_key(level, settings), "distill": distill, "data": data})
    return {
        "checkpoints": work / f"checkpoints-{level}-{recover_key}",
        "recovered": work / f"recovered-{level}-{recover_key}",
    }


_CHOICES = ("removed_layers", "vocabulary", "ffn_rule", "ffn_rule_kl", "calibration_kl", "prune_seconds")


def _run_level(level, settings, yardstick, training_data, progress):
    pruned_row = yardstick.pruned_row(level)
    row = {key: pruned_row[key] for key in _CHOICES}
    row["pruned"] = pruned_row
    pruned_dir = yardstick.pruned_dir(level)
    if not nothing_to_recover(level):
        return _recover_level(level, row, pruned_dir, settings, yardstick, training_data, progress)
    # A vocabulary-only model gives the dense distribution over the kept tokens exactly (KL 0): distillation has
    # nothing to learn, and Adam would turn its rounding-noise gradients into full-size steps. It is its own
    # recovered model.
    row["recovery"] = {"steps": 0, "tokens": 0, "bf16": None, "curve": [], "data": None, "seconds": 0.0}
    row["recovered_dir"] = str(pruned_dir)
    row["recovered"] = pruned_row
    logger.info(
        "%s: vocabulary only, nothing to recover (KL to dense %s)", level, pruned_row["stdlib_test"]["kl_to_dense"]
    )
    return row


def nothing_to_recover(level: str) -> bool:
    """Whether ``level`` prunes only the vocabulary (no layer, no FFN neuron), so that recovery has nothing to do."""
    parsed = parse_level(level)
    return not parsed.layers and not parsed.neurons


def _recover_level(level, row, pruned_dir, settings, yardstick, training_data, progress):
    pruned, pruned_tokenizer, kept = yardstick.load_level(pruned_dir)
    dirs = _recovery_dirs(level, settings, yardstick.work)
    began = time.perf_counter()
    log_path = dirs["recovered"].with_suffix(".log.json")
    if not (dirs["recovered"] / "config.json").is_file():
        records, code_texts = training_data()
        if settings.clean_answers:
            records = clean_answers(records)
        prompt_chars = chat_prompt_chars(pruned_tokenizer, records) if settings.assistant_only_loss else None
        data = distillation_blocks(
            pruned_tokenizer, code_texts, chat_texts(pruned_tokenizer, records), settings.distill.block_size,
            settings.distill.train_tokens, chat_share=settings.chat_share, seed=settings.distill.seed,
            chat_prompt_chars=prompt_chars,
        )  # fmt: skip
        config = DistillationConfig(**{**asdict(settings.distill), "checkpoint_dir": str(dirs["checkpoints"]),
                                       "progress": progress})  # fmt: skip
        eval_ids = heldout_windows(pruned_tokenizer, settings.curve_windows, 256, split="valid")
        _, log = distill_recover(
            pruned, pruned_tokenizer, yardstick.dense, data["blocks"], config, kept_token_ids=kept,
            eval_ids=eval_ids, output_dir=str(dirs["recovered"]), train_masks=data["loss_masks"],
            removed_layers=row["removed_layers"],
        )  # fmt: skip
        log["data"] = {key: data[key] for key in ("code_tokens", "chat_tokens", "epochs")}
        log["data"]["answers"] = len(records)
        atomic_write_text(log_path, json.dumps(log) + "\n")
    log = json.loads(log_path.read_text())
    recovered, _ = load_pruned(dirs["recovered"])
    row["recovery"] = {key: log[key] for key in ("steps", "tokens", "bf16", "curve", "data")}
    row["recovery"]["seconds"] = round(time.perf_counter() - began, 1)
    row["recovered_dir"] = str(dirs["recovered"])
    row["recovered"] = yardstick.measure(f"{level}-recovered-{dirs['recovered'].name}", recovered, pruned_tokenizer,
                                         kept)  # fmt: skip
    logger.info("%s: %s", level, {k: v for k, v in row.items() if k not in ("pruned", "recovered", "recovery")})
    return row


def _speed(dense, tokenizer, folders: dict[str, Path], result: dict) -> dict:
    """Generation tokens/s at batch 1 and 8, interleaved with dense, in the fastest dtype here and in fp32 (one
    model folder per level)."""
    capability = result["capability"]
    dtypes = ["float32"] + (["bfloat16"] if capability.get("fastest_dtype") == "bf16" else [])
    speed = {}
    for dtype in dtypes:
        prompt = heldout_windows(tokenizer, 8, SPEED_PROMPT_TOKENS, split="test")
        models = {"dense": (copy.deepcopy(dense).to(getattr(torch, dtype)), prompt)}
        for level, folder in folders.items():
            model, pruned_tokenizer = load_pruned(folder)
            prompt = heldout_windows(pruned_tokenizer, 8, SPEED_PROMPT_TOKENS, split="test")
            models[level] = (model.to(getattr(torch, dtype)), prompt)
        rates = interleaved_speeds(models, SPEED_NEW_TOKENS, SPEED_ROUNDS)
        speed[dtype] = {
            name: {**rate, "speedup_b1": round(rate["b1"] / rates["dense"]["b1"], 3),
                   "speedup_b8": round(rate["b8"] / rates["dense"]["b8"], 3),
                   "params": count_parameters(models[name][0])["total"]}
            for name, rate in rates.items()
        }  # fmt: skip
    return speed


def speed_markdown(result: dict) -> str:
    """The generation speed part of a result as a Markdown table: every timed level against dense, per dtype, with
    the float32 target (:data:`SPEEDUP_BAR` at batch 1 and 8) marked where it is missed.

    Example:
        >>> rates = {"dense": {"b1": 10.0, "b8": 40.0, "speedup_b1": 1.0, "speedup_b8": 1.0, "params": 100},
        ...          "vocab+4L": {"b1": 13.0, "b8": 48.0, "speedup_b1": 1.3, "speedup_b8": 1.2, "params": 74}}
        >>> table = speed_markdown({"model": "tiny", "capability": None, "speed": {"float32": rates}})
        >>> table.splitlines()[-1]
        '| vocab+4L | 74 (0.74) | 13.0 / 48.0 | 1.300x / **1.200x** (no) |'
    """
    lines = [
        f"Generation speed of {result['model']} against dense: greedy decoding of {SPEED_NEW_TOKENS} new tokens after "
        f"{SPEED_PROMPT_TOKENS}-token held-out prompts at batch 1 and 8, median of {SPEED_ROUNDS} interleaved rounds. "
        f"Measured on: {describe(result.get('capability'))}.",
    ]
    for dtype, rates in result.get("speed", {}).items():
        target = dtype == "float32"
        bar = f" (>= {SPEEDUP_BAR}x)" if target else ""
        lines += [
            "",
            f"| {dtype} | params (ratio) | tokens/s b1 / b8 | speed-up b1 / b8{bar} |",
            "|---|---|---|---|",
        ]
        dense_params = rates["dense"].get("params")
        for name, rate in rates.items():
            params = rate.get("params")
            size = "-" if params is None else f"{params:,} ({params / dense_params:.2f})"
            ups = [f"{rate[key]:.3f}x" for key in ("speedup_b1", "speedup_b8")]
            if target and name != "dense":
                ups = [
                    up if rate[key] >= SPEEDUP_BAR else f"**{up}** (no)"
                    for up, key in zip(ups, ("speedup_b1", "speedup_b8"))
                ]
            lines.append(f"| {name} | {size} | {rate['b1']} / {rate['b8']} | {ups[0]} / {ups[1]} |")
    return "\n".join(lines)


def _targets(result: dict) -> dict:
    """The issue's targets for each level's recovered model (>= 25% fewer parameters is the zoo's bar)."""
    dense = result["dense"]
    targets = {}
    for level, row in result["levels"].items():
        recovered = row["recovered"]
        dense_ppl = dense["stdlib_test"]["text_perplexity"]
        entry = {
            "param_reduction": round(1 - recovered["param_ratio"], 4),
            "param_reduction_ge_25%": 1 - recovered["param_ratio"] >= 0.25,
            "perplexity_ratio": round(recovered["stdlib_test"]["text_perplexity"] / dense_ppl, 4),
            "perplexity_ratio_foreign": round(
                recovered["foreign"]["text_perplexity"] / dense["foreign"]["text_perplexity"], 4
            ),
            "humaneval_passed": recovered["humaneval"]["passed"],
            "humaneval_ge_dense_minus_1": recovered["humaneval"]["passed"] >= dense["humaneval"]["passed"] - 1,
        }
        entry["perplexity_le_1.15x"] = max(entry["perplexity_ratio"], entry["perplexity_ratio_foreign"]) <= 1.15
        for dtype, rates in result.get("speed", {}).items():
            if level in rates:
                entry[f"speedup_{dtype}"] = [rates[level]["speedup_b1"], rates[level]["speedup_b8"]]
                entry[f"speedup_ge_1.25_{dtype}"] = (
                    min(rates[level]["speedup_b1"], rates[level]["speedup_b8"]) >= SPEEDUP_BAR
                )
        entry["meets_targets"] = _meets_targets(entry)
        targets[level] = entry
    return targets


def _meets_targets(entry: dict) -> bool | None:
    """Whether a level's recovered model meets every target of the zoo's model: size, quality and float32 generation
    speed (the portable one; other dtypes are reported, not required). None when its speed was not measured."""
    quality = all(
        entry[key] for key in ("param_reduction_ge_25%", "perplexity_le_1.15x", "humaneval_ge_dense_minus_1")
    )
    if not quality:
        return False
    return entry.get("speedup_ge_1.25_float32")


def frontier_points(result: dict) -> list[dict]:
    """Each recovered level of ``result`` as one point of the frontier, smallest model first: ``level``,
    ``param_ratio``, ``perplexity_ratio`` (stdlib test, per dense-tokenizer token), ``perplexity_ratio_foreign``,
    ``humaneval_passed``, ``speedup_float32`` (batch 1 and 8, or None), ``tokens`` (recovery budget spent) and
    ``meets_targets`` (see :func:`zoo_choice`).

    Example:
        >>> row = lambda ratio, ppl, he: {"param_ratio": ratio, "humaneval": {"passed": he, "problems": 164},
        ...     "stdlib_test": {"text_perplexity": ppl}, "foreign": {"text_perplexity": ppl}}
        >>> result = {"dense": row(1.0, 10.0, 9), "levels": {"vocab": {"recovered": row(0.89, 10.0, 9),
        ...     "recovery": {"tokens": 0}}}}
        >>> [(p["level"], p["perplexity_ratio"], p["meets_targets"]) for p in frontier_points(result)]
        [('vocab', 1.0, False)]
    """
    targets = _targets(result)  # from the rows: a stored result's targets may predate a target
    points = []
    for level, row in result["levels"].items():
        entry = targets[level]
        points.append({
            "level": level,
            "param_ratio": row["recovered"]["param_ratio"],
            "perplexity_ratio": entry["perplexity_ratio"],
            "perplexity_ratio_foreign": entry["perplexity_ratio_foreign"],
            "humaneval_passed": entry["humaneval_passed"],
            "speedup_float32": entry.get("speedup_float32"),  # [batch 1, batch 8]; None where not measured
            "tokens": row["recovery"]["tokens"],
            "meets_targets": entry["meets_targets"],
        })  # fmt: skip
    return sorted(points, key=lambda point: point["param_ratio"])


def zoo_choice(result: dict) -> str | None:
    """The zoo's pick on the frontier: the smallest level whose recovered model meets every target (>= 25% fewer
    parameters, perplexity <= 1.15x dense on both held-out sets, HumanEval >= dense - 1, float32 generation >= 1.25x
    faster at batch 1 and 8), or None when no measured level does.

    Example:
        >>> zoo_choice({"dense": {}, "levels": {}}) is None
        True
    """
    meeting = [point["level"] for point in frontier_points(result) if point["meets_targets"]]
    return meeting[0] if meeting else None


def _targets_markdown(result: dict) -> list[str]:
    """The issue's targets per recovered level as a table: each value, marked where it misses its bar."""
    dense = result["dense"]["humaneval"]["passed"]

    def mark(text: str, met: bool | None) -> str:
        return text if met is not False else f"**{text}** (no)"

    def speed(entry: dict, dtype: str) -> str:
        if f"speedup_{dtype}" not in entry:
            return "not measured"
        b1, b8 = entry[f"speedup_{dtype}"]
        return mark(f"{b1:.3f}x / {b8:.3f}x", entry[f"speedup_ge_1.25_{dtype}"] if dtype == "float32" else None)

    targets = _targets(result)
    keys = {key for entry in targets.values() for key in entry}
    measured = {key.removeprefix("speedup_") for key in keys if key.startswith("speedup_") and "_ge_" not in key}
    dtypes = sorted(measured, key=lambda dtype: dtype != "float32")  # the float32 target first
    lines = [
        "| level | fewer params (>= 25%) | PPL stdlib / "
        f"{result['foreign_package']['name']} (<= 1.15x) | HumanEval (>= {dense - 1}) | "
        + "".join(f"{dtype} speed-up b1 / b8{' (>= 1.25x)' if dtype == 'float32' else ''} | " for dtype in dtypes)
        + "every target |",
        "|---|---|---|---|" + "---|" * len(dtypes) + "---|",
    ]
    for level, entry in targets.items():
        reduction = mark(f"{100 * entry['param_reduction']:.1f}%", entry["param_reduction_ge_25%"])
        ppl = f"{entry['perplexity_ratio']:.3f}x / {entry['perplexity_ratio_foreign']:.3f}x"
        humaneval = mark(str(entry["humaneval_passed"]), entry["humaneval_ge_dense_minus_1"])
        speeds = "".join(f"{speed(entry, dtype)} | " for dtype in dtypes)
        met = {True: "yes", False: "no", None: "speed not measured"}[entry["meets_targets"]]
        lines.append(
            f"| {level} | {reduction} | {mark(ppl, entry['perplexity_le_1.15x'])} | {humaneval} | {speeds}{met} |"
        )
    return lines


def recovery_markdown(result: dict) -> str:
    """The result as a Markdown table (one row per model) plus the targets."""
    dense = result["dense"]
    lines = [
        f"Recovery by distillation on {result['model']}; quality in {result['quality_dtype']}, HumanEval on "
        f"{dense['humaneval']['problems']} problems. Measured on: {describe(result.get('capability'))}.",
        "",
        "Perplexity is per dense-tokenizer token on the same texts (comparable across vocabularies); KL and "
        "agreement are on the model's own tokens.",
        "",
        "| model | params (ratio) | HumanEval | PPL stdlib test (x dense) | PPL "
        f"{result['foreign_package']['name']} (x dense) | KL to dense | next-token agreement |",
        "|---|---|---|---|---|---|---|",
    ]

    def ppl(row, part):
        value = row[part]["text_perplexity"]
        return f"{value} ({value / dense[part]['text_perplexity']:.3f}x)"

    def line(name, row):
        test = row["stdlib_test"]
        return (
            f"| {name} | {row['params']:,} ({row['param_ratio']}) | {row['humaneval']['passed']}/"
            f"{row['humaneval']['problems']} | {ppl(row, 'stdlib_test')} | {ppl(row, 'foreign')} | "
            f"{test['kl_to_dense']} | {test['next_token_agreement']} |"
        )

    lines.append(line("dense", dense))
    for level, row in result["levels"].items():
        tokens = row["recovery"]["tokens"]
        if not tokens:  # vocabulary only: the pruned model is the recovered one
            lines.append(line(f"{level} (nothing to recover)", row["recovered"]))
            continue
        lines.append(line(f"{level} pruned", row["pruned"]))
        lines.append(line(f"{level} recovered ({tokens:,} tokens)", row["recovered"]))
    lines += ["", *_targets_markdown(result)]
    choice = zoo_choice(result)
    lines += ["", f"Smallest level that meets every target (the zoo's pick): {choice or 'none of those measured'}."]
    return "\n".join(lines) + "\n"


# recipe settings a comparison names when they differ from the first (current) recipe, with their value before
# the setting existed (as the results files measured before it were run); "distill.x" is the distillation's x
_RECIPE_SETTINGS = {"chat_share": None, "keep_whitespace": False, "assistant_only_loss": False,
                    "clean_answers": False, "answers": None, "train_package_chars": None,
                    "distill.hidden_weight": 0.0, "layer_method": "kl", "distill.train_tokens": None,
                    "calibration_source": "code"}  # fmt: skip


def _setting(settings: dict, name: str, before):
    group, _, field_name = name.rpartition(".")
    return (settings.get(group) or {} if group else settings).get(field_name, before)


def _recipe_label(settings: dict, first: dict) -> str:
    """The recipe settings of ``settings`` that differ from ``first``'s (``"current"`` when none does)."""
    changed = []
    for name, before in _RECIPE_SETTINGS.items():
        value = _setting(settings, name, before)
        if value != _setting(first, name, before):
            changed.append(f"{name}={value}")
    return ", ".join(changed) or "current"


def recipes_markdown(results: dict[str, dict], level: str = "vocab+4L+ffn") -> str:
    """One row per recovery recipe: ``results`` maps results file names (the first: the current recipe) to their
    JSON; each row names what its recipe changes against the first and gives ``level``'s recovered quality.

    Example:
        >>> print(recipes_markdown(files).splitlines()[2])  # doctest: +SKIP
        | recipe | file | HumanEval | problems solved | PPL stdlib test (x dense) | ...
    """
    current = next(iter(results.values()))
    first = current["settings"]
    dense = current["dense"]
    lines = [
        f"Recovery recipes compared on {level} of {current['model']}, each after the same budget unless its row names "
        f"another (`distill.train_tokens`); HumanEval on {dense['humaneval']['problems']} problems (dense: "
        f"{dense['humaneval']['passed']}). The current recipe was measured on: {describe(current.get('capability'))}.",
        "",
        "| recipe | file | HumanEval | problems solved | PPL stdlib test (x dense) | PPL "
        f"{current['foreign_package']['name']} (x dense) | KL to dense | chat answers (epochs) | recovery tokens "
        "(precision) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        row = result["levels"].get(level)
        if row is None:
            continue
        recovered, data = row["recovered"], row["recovery"].get("data") or {}
        solved = ", ".join(task.split("/")[-1] for task in recovered["humaneval"].get("passed_tasks", []))
        ratios = [recovered[part]["text_perplexity"] / result["dense"][part]["text_perplexity"]
                  for part in ("stdlib_test", "foreign")]  # fmt: skip
        answers = data.get("answers", result["settings"].get("answers"))
        epochs = (data.get("epochs") or {}).get("chat")
        lines.append(
            f"| {_recipe_label(result['settings'], first)} | `{name}` | {recovered['humaneval']['passed']}/"
            f"{recovered['humaneval']['problems']} | {solved or '-'} | {ratios[0]:.3f}x | {ratios[1]:.3f}x | "
            f"{recovered['stdlib_test']['kl_to_dense']} | {answers} ({epochs}) | {row['recovery']['tokens']:,} "
            f"({'bf16' if row['recovery'].get('bf16') else 'fp32'}) |"
        )
    return "\n".join(lines) + "\n"


def plot_recipes(results: dict[str, dict], path: str | os.PathLike, level: str = "vocab+4L+ffn") -> None:
    """The recipes of :func:`recipes_markdown` side by side: held-out KL against training tokens, one line per recipe
    (left), and HumanEval solved against the recovered model's KL on the stdlib test files (right): whether a lower
    KL buys problems."""
    from compress_utils.plotting import save_figure

    current = next(iter(results.values()))
    first, dense = current["settings"], current["dense"]["humaneval"]
    rows = {_recipe_label(result["settings"], first): result["levels"][level]
            for result in results.values() if level in result["levels"]}  # fmt: skip

    def draw(figure):
        left, right = figure.subplots(1, 2)
        for label, row in rows.items():
            curve = row["recovery"]["curve"]
            (line,) = left.plot([point["tokens"] / 1e6 for point in curve], [point["kl_to_dense"] for point in curve],
                                marker=".", label=label)  # fmt: skip
            recovered = row["recovered"]
            right.scatter(recovered["stdlib_test"]["kl_to_dense"], recovered["humaneval"]["passed"],
                          color=line.get_color(), s=40, alpha=0.8)  # fmt: skip
        right.axhline(dense["passed"] - 1, color="grey", linestyle="--", linewidth=1, label="target: dense - 1")
        right.set_ylim(0, dense["passed"] + 0.5)
        right.yaxis.get_major_locator().set_params(integer=True)
        left.set(xlabel="training tokens (millions)", ylabel="validation KL to dense", yscale="log", title=level)
        left.legend(fontsize=6)
        right.legend(fontsize=6, loc="lower right")
        right.set(xlabel="KL to dense, stdlib test (recovered; colours as left)",
                  ylabel=f"HumanEval passed (of {dense['problems']})")  # fmt: skip

    save_figure(draw, path, (9, 3.6))


def plot_recovery_curve(result: dict, path: str | os.PathLike) -> None:
    """Held-out perplexity ratio and next-token agreement against training tokens, one line per level."""
    from compress_utils.plotting import save_figure

    def draw(figure):
        left, right = figure.subplots(1, 2)
        for level, row in result["levels"].items():
            curve = row["recovery"]["curve"]
            if not curve:  # nothing was recovered (vocabulary only)
                continue
            tokens = [point["tokens"] / 1e6 for point in curve]
            left.plot(tokens, [p["perplexity"] / p["dense_perplexity"] for p in curve], marker="o", label=level)
            right.plot(tokens, [p["next_token_agreement"] for p in curve], marker="o", label=level)
        left.axhline(1.15, color="grey", linestyle="--", linewidth=1, label="target 1.15x")
        left.set(xlabel="training tokens (millions)", ylabel="validation perplexity / dense", yscale="log")
        right.set(xlabel="training tokens (millions)", ylabel="next-token agreement with dense")
        left.legend()
        if right.lines:  # none when no level was trained
            right.legend()

    save_figure(draw, path, (9, 3.6))


def plot_frontier(result: dict, path: str | os.PathLike) -> None:
    """Parameter ratio against perplexity ratio (stdlib test, foreign) and HumanEval: dense, then each recovered
    level."""
    from compress_utils.plotting import save_figure

    dense = result["dense"]
    levels = sorted(result["levels"].items(), key=lambda item: -item[1]["recovered"]["param_ratio"])
    rows = [("dense", dense)] + [(level, row["recovered"]) for level, row in levels]

    def draw(figure):
        left, right = figure.subplots(1, 2)
        ratios = [row["param_ratio"] for _, row in rows]
        for part, label in (("stdlib_test", "stdlib test"), ("foreign", result["foreign_package"]["name"])):
            values = [row[part]["text_perplexity"] / dense[part]["text_perplexity"] for _, row in rows]
            left.plot(ratios, values, marker="o", label=label)
        left.axhline(1.15, color="grey", linestyle="--", linewidth=1, label="target 1.15x")
        right.plot(ratios, [row["humaneval"]["passed"] for _, row in rows], marker="o", label="dense, then recovered")
        right.axhline(dense["humaneval"]["passed"] - 1, color="grey", linestyle="--", linewidth=1,
                      label="target: dense - 1")  # fmt: skip
        for axis in (left, right):
            for (level, _), x in zip(rows, ratios):
                axis.annotate(level, (x, axis.get_ylim()[0]), fontsize=7, rotation=90, va="bottom")
            axis.axvline(0.75, color="lightgrey", linestyle=":", linewidth=1)
            axis.invert_xaxis()
            axis.legend()
        left.set(xlabel="parameters / dense", ylabel="perplexity / dense")
        right.set(xlabel="parameters / dense", ylabel=f"HumanEval passed (of {dense['humaneval']['problems']})")

    save_figure(draw, path, (9, 3.6))


__all__ = [
    "RecoverySettings",
    "SPEEDUP_BAR",
    "SPEED_NEW_TOKENS",
    "SPEED_PROMPT_TOKENS",
    "SPEED_ROUNDS",
    "frontier_points",
    "level_result_path",
    "nothing_to_recover",
    "plot_frontier",
    "plot_recipes",
    "plot_recovery_curve",
    "recipes_markdown",
    "recovery_markdown",
    "run_recovery_bench",
    "speed_markdown",
    "zoo_choice",
]
