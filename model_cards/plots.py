"""The figure each model card embeds, drawn from the entry's ``results.json`` and saved as a reproducible PNG
(:func:`compress_utils.plotting.save_figure`: the same results give byte-identical files)."""

from __future__ import annotations

import os
from pathlib import Path

from compress_utils.plotting import save_figure

PLOT_FILES = {"alpine": "alpine_kept_tokens.png", "flab": "flab_pruning.png", "xtc": "xtc_size_vs_accuracy.png"}


def plot_alpine(results: dict, path: str | os.PathLike) -> None:
    """Mean kept tokens per layer of each fine-tuned run on the test pairs (the paper's Fig. 3) and, where the entry
    recorded it, the retention frontier with this entry's plan and its own runs marked."""
    from .alpine_entry import alpine_published, alpine_runs

    runs, frontier = alpine_runs(results), results.get("frontier")
    plan, schedule = results.get("variant", "all"), results.get("schedule", "a")

    def draw(figure):
        axis = figure.add_subplot(1, 2 if frontier else 1, 1)
        for label, entry in runs.items():
            kept = entry["eval_kept_lengths"]
            axis.plot(range(len(kept)), kept, marker="o", label=f"{label} ({entry['eval_flops_ratio_analytic']:.2f}x)")
        axis.axhline(next(iter(runs.values()))["eval_input_length"], color="grey", linestyle="--",
                     label="input length")  # fmt: skip
        axis.set_xlabel("layer")
        axis.set_ylabel("mean kept tokens (test pairs)")
        axis.set_title("kept tokens per layer (FLOPs ratio in brackets)", fontsize=10)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=7)
        if not frontier:
            return
        axis = figure.add_subplot(1, 2, 2)
        for point in frontier["points"]:
            mine = (point["mode"], point["schedule"]) == (plan, schedule)
            axis.scatter(point["flops_ratio"], 100 * point["retention_f1"], marker="s" if point["schedule"] != "a"
                         else "o", s=60 if mine else 25, color="tab:red" if mine else "tab:blue")  # fmt: skip
        published = alpine_published(results)
        axis.scatter(published["eval_flops_ratio_analytic"], 100 * published["retention_f1"], marker="*", s=120,
                     color="tab:orange", label="this entry (its own budget)")  # fmt: skip
        if any((point["mode"], point["schedule"]) == (plan, schedule) for point in frontier["points"]):
            axis.scatter([], [], color="tab:red", marker="s", label=f"{plan} ({schedule}), frontier budget")
        axis.axhline(100, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("FLOPs ratio (stock / ALPINE)")
        axis.set_ylabel("F1 retention (%)")
        axis.set_title(f"frontier ({frontier['train_size']} training pairs)", fontsize=10)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)

    save_figure(draw, path, (10.0, 3.8) if frontier else (6.0, 3.6))


def _kl_steps(results: dict) -> tuple[list[str], list[float]]:
    """Labels and KL of every pruning step (cumulative)."""
    labels, values = [], []
    for step in results["kl_steps"]:
        if step["stage"] == "vocab":
            labels.append("vocab")
        elif step["stage"] == "layer":
            labels.append(f"-L{step['removed']}")
        elif step["stage"] == "ffn":
            labels.append(f"FFN ({step['rule']})")
        else:
            continue  # "layers" repeats the last layer step
        values.append(step["kl"])
    return labels, values


def _recovery_curve(axis, curve: list[dict]) -> None:
    """Validation KL to dense (left axis) and perplexity / dense (right axis) against training tokens."""
    tokens = [point["tokens"] for point in curve]
    scale, unit = (1e6, "millions") if tokens[-1] >= 1e6 else (1e3, "thousands")
    x = [t / scale for t in tokens]
    axis.plot(x, [p["kl_to_dense"] for p in curve], marker="o", color="tab:green", label="KL to dense")
    axis.set_xlabel(f"training tokens ({unit})")
    axis.set_ylabel("validation KL to dense (nats/token)", color="tab:green")
    axis.set_ylim(bottom=0)
    ratio = axis.twinx()
    ratio.plot(x, [p["perplexity"] / p["dense_perplexity"] for p in curve], marker="s", color="tab:purple",
               label="perplexity / dense")  # fmt: skip
    ratio.set_ylabel("validation perplexity / dense", color="tab:purple")
    axis.set_title("recovery by distillation")


def _frontier(axis, frontier: dict, level: str | None) -> None:
    """The recovery frontier the benchmark measured: perplexity ratio (both held-out sets) against parameter ratio,
    each level labelled with its HumanEval, this entry's level marked."""
    points = [{"level": "dense", "param_ratio": 1.0, "perplexity_ratio": 1.0, "perplexity_ratio_foreign": 1.0,
               "humaneval_passed": frontier["dense_humaneval"]["passed"]}, *frontier["points"]]  # fmt: skip
    points.sort(key=lambda point: -point["param_ratio"])
    ratios = [point["param_ratio"] for point in points]
    axis.plot(ratios, [p["perplexity_ratio"] for p in points], marker="o", label="stdlib test")
    axis.plot(ratios, [p["perplexity_ratio_foreign"] for p in points], marker="o", label=frontier["foreign_package"])
    for point in points:
        mine = point["level"] == level
        axis.annotate(f"{point['level']}\nHE {point['humaneval_passed']}", (point["param_ratio"],
                      point["perplexity_ratio"]), xytext=(0, 6), textcoords="offset points", ha="center",
                      fontsize=7, color="tab:red" if mine else "black")  # fmt: skip
    axis.margins(x=0.2, y=0.25)
    axis.axhline(1.15, color="grey", linestyle="--", linewidth=1, label="target 1.15x")
    axis.axvline(0.75, color="lightgrey", linestyle=":", linewidth=1)
    axis.invert_xaxis()
    axis.set_xlabel("parameters / dense")
    axis.set_ylabel("perplexity / dense")
    axis.set_title(f"frontier ({frontier['train_tokens']:,} recovery tokens)", fontsize=10)
    axis.legend(fontsize=7)


def plot_flab(results: dict, path: str | os.PathLike) -> None:
    """KL(dense || pruned) on the calibration set after each pruning step; for a recovered entry, the recovery curve
    (validation KL and perplexity ratio against training tokens); parameters per component before and after each
    stage; where the entry recorded it, the benchmark's recovery frontier (HumanEval beside each level)."""
    labels, values = _kl_steps(results)
    params = results["params"]
    stages = [("dense", params["before"]), ("vocab", params["after_vocab"]), ("layers", params["after_layers"]),
              ("FFN", params["after"])]  # fmt: skip
    components = ["embed_tokens", "lm_head", "attention", "ffn", "norms"]
    curve, frontier = (results.get("recovery") or {}).get("curve"), results.get("frontier")
    widths = [3, *([3] if curve else []), 2, *([3] if frontier else [])]

    def draw(figure):
        axes = list(figure.subplots(1, len(widths), gridspec_kw={"width_ratios": widths}))
        left = axes.pop(0)
        if curve:
            _recovery_curve(axes.pop(0), curve)
        right = axes.pop(0)
        if frontier:
            _frontier(axes.pop(0), frontier, results.get("level"))
        left.plot(range(len(values)), values, marker="o", label="pruning (calibration KL)")
        left.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        left.set_ylabel("KL to dense (nats/token)")
        left.set_title("Flab-Pruner: KL after each step")
        left.legend(fontsize=8)
        bottom = [0.0] * len(stages)
        for component in components:
            heights = [stage[1].get(component, 0) / 1e6 for stage in stages]
            if any(heights):
                right.bar([s[0] for s in stages], heights, bottom=bottom, label=component)
                bottom = [b + h for b, h in zip(bottom, heights)]
        right.set_ylabel("parameters (M)")
        right.set_title(f"parameters: {params['ratio']:.3f}x")
        right.legend(fontsize=8)

    save_figure(draw, path, (1.6 * sum(widths), 3.8))


XTC_ORDER = ("base", "1W8A", "6L", "1W8A6L", "2W8A6L")


def plot_xtc(results: dict, path: str | os.PathLike) -> None:
    """Disk size vs line-completion edit similarity of every variant the entry measured (the paper's Table 1/2)."""
    variants = {name: results["variants"][name] for name in XTC_ORDER if name in results.get("variants", {})}
    if not variants:  # an entry built before per-variant results existed: teacher and 1W8A6L only
        variants = {"base": results["teacher"], "1W8A6L": results["student"]}
    missing = [name for name in ("base", "1W8A", "6L", "1W8A6L") if name not in variants]

    def draw(figure):
        axis = figure.add_subplot()
        for name, row in variants.items():
            axis.scatter(row["disk_mb"], row["es"], s=40)
            axis.annotate(name, (row["disk_mb"], row["es"]), textcoords="offset points", xytext=(5, 5))
        axis.set_xscale("log")
        from matplotlib.ticker import FuncFormatter, NullFormatter

        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.margins(x=0.25, y=0.2)
        axis.set_xlabel("weights on disk (MB, log scale)")
        axis.set_ylabel("edit similarity (line completion)")
        title = "XTC: size vs accuracy"
        if missing:
            title += f" (not measured here: {', '.join(missing)})"
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)

    save_figure(draw, path, (6.0, 3.8))


PLOTTERS = {"alpine": plot_alpine, "flab": plot_flab, "xtc": plot_xtc}


def plot_entry(results: dict, folder: str | os.PathLike, family: str) -> str:
    """Draw the family's figure into ``folder``; returns the file name."""
    name = PLOT_FILES[family]
    PLOTTERS[family](results, Path(folder) / name)
    return name


__all__ = ["PLOT_FILES", "plot_alpine", "plot_entry", "plot_flab", "plot_xtc"]
