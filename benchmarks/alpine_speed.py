"""Side-by-side inference benchmark: the stock Transformers encoder (sdpa) against ALPINE all/even/odd, or any
plans (explicit layers and per-layer alphas, :func:`~benchmarks.alpine_plans.parse_mode`).

Every mode runs the same weights on the same batches of real code in the same process and dtype; timing rounds are
interleaved so that machine noise hits all modes alike, and only ratios are reported as results.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, BertModel, PreTrainedModel, RobertaConfig, RobertaModel

from alpine_hf.flops import analytic_flops, measured_flops
from alpine_hf.recipe import AlpinePruningConfig, apply_alpine
from compress_utils.capability import describe, probe
from compress_utils.embedded import minilm_dir
from compress_utils.io import atomic_write
from compress_utils.plotting import save_figure

from .alpine_plans import PLAN_EXAMPLE, parse_mode
from .clone_detection import iter_source_files, split_of, stdlib_source_dir

logger = logging.getLogger(__name__)

BENCHMARK_MODELS = ("minilm", "codebert-shape", "unixcoder-shape")
MODES = ("all", "even", "odd")


def load_benchmark_model(name: str, seed: int = 0) -> tuple[PreTrainedModel, object, list[int]]:
    """The stock model, a tokenizer and the special-token ids for a benchmark model name or checkpoint folder.

    ``minilm`` is the real pretrained all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384). ``codebert-shape`` and
    ``unixcoder-shape`` are stock RoBERTa models of CodeBERT's shape (12 layers, hidden 768, 512 positions) and
    UniXcoder's (1026 positions) with seeded random weights: their speed is representative, their pruning decisions
    are not (random attention is nearly uniform). Inputs use MiniLM's tokenizer, whose ids fit both vocabularies.
    """
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    if name == "minilm":
        return BertModel.from_pretrained(minilm_dir(), attn_implementation="sdpa"), tokenizer, special
    if name in ("codebert-shape", "unixcoder-shape"):
        positions = 514 if name == "codebert-shape" else 1026
        config = RobertaConfig(vocab_size=50265, max_position_embeddings=positions, type_vocab_size=1)
        config._attn_implementation = "sdpa"
        torch.manual_seed(seed)
        return RobertaModel(config), tokenizer, special
    if os.path.isdir(name):
        tokenizer = AutoTokenizer.from_pretrained(name)
        special = [tokenizer.cls_token_id, tokenizer.sep_token_id]
        from transformers import AutoModel

        return AutoModel.from_pretrained(name, attn_implementation="sdpa"), tokenizer, special
    raise ValueError(f"`model={name!r}` is neither one of {BENCHMARK_MODELS} nor a checkpoint folder.")


def code_batches(tokenizer, batch_size: int, seq_len: int, num_batches: int, root: str | None = None) -> list[dict]:
    """Batches of real code: the first ``seq_len`` tokens of held-out (test-split) source files, in path order."""
    root = Path(root) if root is not None else stdlib_source_dir()
    files = [path for path in iter_source_files(root) if split_of(path, root) == "test"]
    texts = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if len(text) > 4 * seq_len:  # long enough to fill seq_len tokens, as in the paper's fixed-length setting
            texts.append(text)
        if len(texts) == batch_size * num_batches:
            break
    if len(texts) < batch_size * num_batches:
        raise ValueError(f"`root={root}` has only {len(texts)} source files long enough for {seq_len}-token inputs.")
    batches = []
    for start in range(0, len(texts), batch_size):
        batches.append(
            dict(
                tokenizer(
                    texts[start : start + batch_size],
                    truncation=True,
                    max_length=seq_len,
                    padding="max_length",
                    return_tensors="pt",
                )
            )
        )
    return batches


def _peak_memory(model, batch, train: bool = False) -> tuple[int, int]:
    """Peak bytes of one forward pass (or forward + backward if ``train``), tracked by ``MemTracker``.

    Returns (everything, everything but parameters and buffers). The training step backpropagates the sum of the
    CLS rows, so the activations kept for backward (which shrink with every pruned layer) are counted.
    """
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model)
    context = torch.enable_grad() if train else torch.inference_mode()
    with context, tracker:
        output = model(**batch)
        if train:
            output.last_hidden_state[:, 0].float().sum().backward()
    if train:
        model.zero_grad(set_to_none=True)
    total = weights = 0
    for entry in tracker.get_tracker_snapshot("peak").values():
        total += entry["Total"]
        weights += sum(value for key, value in entry.items() if getattr(key, "name", "") in ("PARAM", "BUFFER"))
    return int(total), int(total - weights)


def run_benchmark(
    model: str = "minilm",
    batch_size: int = 8,
    seq_len: int = 512,
    alpha: float = 1.0,
    merge: bool = True,
    num_batches: int = 2,
    repeats: int = 5,
    dtype: str = "float32",
    root: str | None = None,
    plot_path: str | os.PathLike | None = None,
    modes: tuple[str, ...] = MODES,
) -> dict:
    """Measure stock vs ALPINE ``modes``; returns the results dictionary written as JSON by the CLI.

    ``modes`` are named modes (``all``, ``even-nomerge``) or plans (``"layers=1-5;alpha=1.5,1.5,1,1,0.5,0.5"``,
    see :func:`~benchmarks.alpine_plans.parse_mode`); ``alpha`` applies where a mode does not set its own, and a mode
    merges when both ``merge`` and the mode do (``-nomerge`` and ``merge=off`` drop pruned tokens).

    Example:
        >>> results = run_benchmark("minilm", modes=("all", "layers=1-5;alpha=1.5"))  # doctest: +SKIP
        >>> results["modes"]["layers=1-5;alpha=1.5"]["throughput_ratio"]  # doctest: +SKIP
    """
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"`dtype={dtype!r}` is not supported; use 'auto', 'float32' or 'bfloat16'.")
    plans = _check_modes(modes)
    capability = probe()
    if dtype == "auto":  # the fastest dtype here: bf16 only where bf16 products beat fp32
        dtype = "bfloat16" if capability["fastest_dtype"] == "bf16" else "float32"
    torch_dtype = getattr(torch, dtype)
    stock, tokenizer, special = load_benchmark_model(model)
    stock = stock.to(torch_dtype).eval()
    batches = code_batches(tokenizer, batch_size, seq_len, num_batches, root)
    models = {"stock": stock}
    for mode, plan in plans.items():
        plan.check(stock.config.num_hidden_layers, mode)
        settings = AlpinePruningConfig(
            alpha=alpha if plan.alpha is None else plan.alpha,
            layers=plan.layers,
            merge=merge and plan.merge,
            special_token_ids=special,
        )
        models[mode] = apply_alpine(stock, settings).eval()

    results = {"stock": {}, "modes": {}}
    input_lengths = torch.cat([batch["attention_mask"].sum(-1) for batch in batches])
    stock_analytic = analytic_flops(stock.config, input_lengths, None)
    for name, module in tqdm(models.items(), desc="flops and memory", leave=False):
        peak, activations = _peak_memory(module, batches[0])
        train_peak, _ = _peak_memory(module, batches[0], train=True)
        entry = {
            "flops": sum(measured_flops(module, **batch) for batch in batches),
            "peak_memory_bytes": peak,
            "peak_activation_bytes": activations,
            "train_peak_memory_bytes": train_peak,
        }
        if name == "stock":
            entry["flops_analytic"] = stock_analytic
            results["stock"] = entry
            continue
        with torch.inference_mode():
            kept = torch.cat([module(**batch).kept_lengths for batch in batches], dim=1)
        entry["kept_lengths"] = [round(x, 2) for x in kept.double().mean(1).tolist()]
        entry["flops_analytic"] = analytic_flops(module.config, input_lengths, kept)
        results["modes"][name] = entry

    timings = {name: [] for name in models}
    with torch.inference_mode():
        for module in models.values():  # warm-up
            module(**batches[0])
        for _ in tqdm(range(repeats), desc="timing rounds", leave=False):
            for name, module in models.items():
                start = time.perf_counter()
                for batch in batches:
                    module(**batch)
                timings[name].append(time.perf_counter() - start)
    # Training steps (forward + backward), interleaved the same way: fine-tuning speed without the noise of
    # comparing separate, sequential fine-tuning runs on a shared machine.
    train_timings = {name: [] for name in models}
    for _ in tqdm(range(max(1, repeats // 2)), desc="training-step rounds", leave=False):
        for name, module in models.items():
            start = time.perf_counter()
            module(**batches[0]).last_hidden_state[:, 0].float().sum().backward()
            train_timings[name].append(time.perf_counter() - start)
            module.zero_grad(set_to_none=True)
    samples = batch_size * len(batches)
    stock_time = statistics.median(timings["stock"])
    stock_train = statistics.median(train_timings["stock"])
    results["stock"]["train_step_seconds"] = stock_train
    results["stock"].update(seconds=stock_time, samples_per_second=samples / stock_time)
    for mode in plans:
        entry = results["modes"][mode]
        seconds = statistics.median(timings[mode])
        entry.update(
            seconds=seconds,
            samples_per_second=samples / seconds,
            flops_ratio=results["stock"]["flops"] / entry["flops"],
            flops_ratio_analytic=stock_analytic / entry["flops_analytic"],
            throughput_ratio=stock_time / seconds,
            train_step_seconds=statistics.median(train_timings[mode]),
            train_speed_ratio=stock_train / statistics.median(train_timings[mode]),
            peak_memory_ratio=results["stock"]["peak_memory_bytes"] / entry["peak_memory_bytes"],
            peak_activation_ratio=results["stock"]["peak_activation_bytes"] / entry["peak_activation_bytes"],
            train_peak_memory_ratio=results["stock"]["train_peak_memory_bytes"] / entry["train_peak_memory_bytes"],
        )
        entry["realised_fraction"] = entry["throughput_ratio"] / entry["flops_ratio"]
    results["settings"] = dict(
        model=model,
        modes=list(plans),
        batch_size=batch_size,
        seq_len=seq_len,
        alpha=alpha,
        merge=merge,
        num_batches=num_batches,
        repeats=repeats,
        dtype=dtype,
        mean_input_length=float(input_lengths.double().mean()),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
    )
    results["capability"] = capability
    if plot_path is not None:
        plot_kept_lengths(results, plot_path)
    return results


def _check_modes(modes) -> dict:
    """``{mode: plan}`` of the pruning modes to measure, or a ``ValueError`` naming the bad one (before any loading)."""
    if isinstance(modes, str) or not modes:
        raise ValueError(f"`modes` must be a non-empty list of modes, got {modes!r}; e.g. ('all', {PLAN_EXAMPLE!r}).")
    if len(set(modes)) < len(modes):
        raise ValueError(f"`modes` lists {sorted({m for m in modes if modes.count(m) > 1})} more than once.")
    plans = {mode: parse_mode(mode) for mode in modes}
    idle = [mode for mode, plan in plans.items() if not plan.prunes]
    if idle:
        raise ValueError(f"`modes` {idle} prune nothing; the stock model is the baseline of every run, drop them.")
    return plans


def _ratio(entry: dict, key: str) -> str:
    # fields added after a results file was written read "not measured" rather than failing
    return f"{entry[key]:.2f}x" if key in entry else "not measured"


def markdown_table(results: dict) -> str:
    """The results as a Markdown table (one row per mode, ratios against the stock sdpa model)."""
    settings = results["settings"]
    lines = [
        f"ALPINE vs stock Transformers (sdpa) - model `{settings['model']}`, batch {settings['batch_size']} x "
        f"{settings['seq_len']} tokens of real code, {settings['dtype']}, alpha {settings['alpha']}, "
        f"merge {settings['merge']}",
        "",
        f"Measured on: {describe(results.get('capability'))}.",
        "",
        "| mode | FLOPs ratio (measured) | FLOPs ratio (Eq. 10+13) | throughput ratio | realised / FLOPs | "
        "training-step speed ratio | "
        "peak memory ratio: inference (activations only) | peak memory ratio: training step | kept length per layer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, entry in results["modes"].items():
        kept = ", ".join(f"{x:.0f}" for x in entry["kept_lengths"])
        cells = [
            mode,
            f"{entry['flops_ratio']:.2f}x",
            f"{entry['flops_ratio_analytic']:.2f}x",
            f"{entry['throughput_ratio']:.2f}x",
            f"{entry['realised_fraction']:.0%}",
            _ratio(entry, "train_speed_ratio"),
            f"{entry['peak_memory_ratio']:.2f}x ({entry['peak_activation_ratio']:.2f}x)",
            _ratio(entry, "train_peak_memory_ratio"),
            kept,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    stock = results["stock"]
    lines.append("")
    lines.append(
        f"Stock: {stock['samples_per_second']:.2f} samples/s, {stock['flops'] / 1e9:.1f} GFLOPs, "
        f"peak {stock['peak_memory_bytes'] / 2**20:.0f} MiB; mean input length {settings['mean_input_length']:.0f}."
    )
    return "\n".join(lines)


def plot_kept_lengths(results: dict, path: str | os.PathLike) -> None:
    """Kept length per layer for each mode (the paper's Fig. 3), saved as PNG."""

    def draw(figure):
        axis = figure.add_subplot()
        for mode, entry in results["modes"].items():
            axis.plot(range(len(entry["kept_lengths"])), entry["kept_lengths"], marker="o", label=mode)
        axis.axhline(results["settings"]["mean_input_length"], color="grey", linestyle="--", label="input")
        axis.set_xlabel("layer")
        axis.set_ylabel("mean kept tokens")
        axis.set_title(f"ALPINE kept tokens per layer ({results['settings']['model']})")
        axis.legend()

    save_figure(draw, path, (6.0, 3.8))


def write_results(results: dict, json_path: str | os.PathLike) -> None:
    """Write results JSON and its Markdown table next to it (``.md``), atomically."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(json_path, lambda target: Path(target).write_text(json.dumps(results, indent=2) + "\n"))
    atomic_write(json_path.with_suffix(".md"), lambda target: Path(target).write_text(markdown_table(results) + "\n"))


__all__ = [
    "BENCHMARK_MODELS",
    "code_batches",
    "load_benchmark_model",
    "markdown_table",
    "plot_kept_lengths",
    "run_benchmark",
    "write_results",
]
