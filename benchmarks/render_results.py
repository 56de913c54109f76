"""Regenerate the README's results tables from the benchmark JSON files (``make results``).

Tables live between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` markers; each NAME maps to a JSON file
in ``benchmarks/results`` and a renderer, so README numbers always come from benchmark output. Every table says on
which machine it was measured (CPU model and PyTorch CPU capability from the ``capability`` probe in its JSON), since
the same model is faster in bf16 or int8 on one CPU and slower on another.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

from compress_utils.capability import describe

RESULTS_DIR = Path("benchmarks/results")


def _lazy(module: str, name: str):
    """``module.name``, imported when first called: rendering a README does not import every benchmark (and torch,
    matplotlib) before a table needs it."""

    def call(*args):
        return getattr(importlib.import_module(module), name)(*args)

    call.__qualname__ = f"{module}.{name}"
    return call


def _alpine_frontier_report(results: dict) -> str:
    from benchmarks.alpine_finetune import finetune_markdown, frontier_targets

    return "\n".join([finetune_markdown(results), "", "Targets:", "", *frontier_targets(results)])


def build_times_markdown(data: dict) -> str:
    """A zoo build's ``build.json`` (``zoo build`` writes it; ``benchmarks/results/zoo_build.json``) as Markdown:
    total, then one row per entry with its stage times.

    Example:
        >>> print(build_times_markdown({"total_seconds": 90.0, "full": False, "entries": {
        ...     "a": {"seconds": 90.0, "reused": False, "stages": {"train": 80.0, "package": 1.0}}}}))
        A whole `zoo build` (default budget) took **1.5 minutes** (90 s).
        <BLANKLINE>
        | entry | minutes | stages (s) |
        |---|---|---|
        | a | 1.5 | train 80, package 1 |
    """
    budget = "`--full` budget" if data.get("full") else "default budget"
    total = data["total_seconds"]
    lines = [
        f"A whole `zoo build` ({budget}) took **{total / 60:.1f} minutes** ({total:.0f} s).",
        "",
        "| entry | minutes | stages (s) |",
        "|---|---|---|",
    ]
    for name, entry in data["entries"].items():
        minutes = "-" if entry.get("seconds") is None else f"{entry['seconds'] / 60:.1f}"
        if entry.get("reused"):
            minutes += " (reused)"
        stages = ", ".join(f"{stage} {value:.0f}" for stage, value in (entry.get("stages") or {}).items())
        lines.append(f"| {name} | {minutes} | {stages or '-'} |")
    if data.get("source"):
        lines += ["", f"Source: {data['source']}."]
    return "\n".join(lines)


def _flab_recovery_figures(results: dict, path: Path) -> None:
    from benchmarks.flab_recovery import plot_frontier, plot_recovery_curve

    plot_recovery_curve(results, path)
    plot_frontier(results, path.with_name(path.stem + "-frontier.png"))


# recovery recipes on one level, the current one first (a table and a figure compare them)
FLAB_RECIPES = (
    "flab_recovery.json",
    "flab_recovery_no_whitespace.json",
    "flab_recovery_chat30.json",
    "flab_recovery_assistant_only.json",
    "flab_recovery_clean_answers.json",
    "flab_recovery_hidden.json",
    "flab_recovery_block.json",
    "flab_recovery_2m.json",
    "flab_recovery_chatcal.json",
)

# the XTC data comparison: the 6L stage on the stdlib split, then with the teacher's package sources
XTC_DATA_FILES = ("xtc_gpt2_py150_6l.json", "xtc_gpt2_py150_6l_packages.json")

# the 1-bit stage's peak learning rate: the per-row 8-bit-embedding 1W8A6L at the recipe's, then at a lower one
XTC_RATE_FILES = ("xtc_gpt2_py150_row_emb8.json", "xtc_gpt2_py150_row_emb8_lr.json")

# shared by several tables
_flab_recovery_table = _lazy("benchmarks.flab_recovery", "recovery_markdown")
_finetune_table = _lazy("benchmarks.alpine_finetune", "finetune_markdown")

RENDERERS = {
    "flab_smollm2": ("flab_smollm2.json", _lazy("benchmarks.flab_bench", "markdown_table")),
    "flab_vocabulary": ("flab_vocabulary.json", _lazy("benchmarks.flab_vocabulary", "vocabulary_markdown")),
    "flab_recovery": ("flab_recovery.json", _flab_recovery_table),
    # several files: the renderer gets {file name: its JSON} of those present
    "flab_recipes": (FLAB_RECIPES, _lazy("benchmarks.flab_recovery", "recipes_markdown")),
    "flab_recovery_stdlib_windows": ("flab_recovery_stdlib_windows.json", _flab_recovery_table),
    "flab_speed_avx2": ("flab_recovery_avx2.json", _lazy("benchmarks.flab_recovery", "speed_markdown")),
    "flab_recovery_2l_ffn256": ("flab_recovery_2l_ffn256.json", _flab_recovery_table),
    "flab_recovery_3l": ("flab_recovery_3l.json", _flab_recovery_table),
    "flab_calibration": ("flab_calibration.json", _lazy("benchmarks.flab_calibration", "calibration_markdown")),
    "flab_ablation": ("flab_ablation.json", _lazy("benchmarks.flab_ablation", "ablation_markdown")),
    "xtc_gpt2": ("xtc_gpt2.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150": ("xtc_gpt2_py150.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_emb8": ("xtc_gpt2_py150_emb8.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_emb4": ("xtc_gpt2_py150_emb4.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_data": (XTC_DATA_FILES, _lazy("benchmarks.xtc_bench", "data_markdown")),
    "xtc_gpt2_py150_row_emb4": ("xtc_gpt2_py150_row_emb4.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_row_emb8": ("xtc_gpt2_py150_row_emb8.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_row_emb8_lr": ("xtc_gpt2_py150_row_emb8_lr.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_row_emb8_lr_12l": (
        "xtc_gpt2_py150_row_emb8_lr_12l.json",
        _lazy("benchmarks.xtc_bench", "to_markdown"),
    ),
    "xtc_gpt2_py150_row_emb4_lr": ("xtc_gpt2_py150_row_emb4_lr.json", _lazy("benchmarks.xtc_bench", "to_markdown")),
    "xtc_gpt2_py150_row_emb4_int8rows_lr": (
        "xtc_gpt2_py150_row_emb4_int8rows_lr.json",
        _lazy("benchmarks.xtc_bench", "to_markdown"),
    ),
    "xtc_embedding_rows": ("xtc_embedding_rows.json", _lazy("benchmarks.xtc_embedding_rows", "to_markdown")),
    "xtc_gpt2_speed": ("xtc_gpt2_speed.json", _lazy("benchmarks.xtc_bench", "speed_markdown")),
    "xtc_gpt2_speed_avx2": ("xtc_gpt2_speed_avx2.json", _lazy("benchmarks.xtc_bench", "speed_markdown")),
    "alpine_minilm": ("alpine_minilm.json", _lazy("benchmarks.alpine_speed", "markdown_table")),
    "alpine_minilm_bf16": ("alpine_minilm_bf16.json", _lazy("benchmarks.alpine_speed", "markdown_table")),
    "alpine_minilm_plans": ("alpine_minilm_plans.json", _lazy("benchmarks.alpine_speed", "markdown_table")),
    "alpine_codebert_shape": ("alpine_codebert_shape.json", _lazy("benchmarks.alpine_speed", "markdown_table")),
    "alpine_unixcoder_shape": ("alpine_unixcoder_shape.json", _lazy("benchmarks.alpine_speed", "markdown_table")),
    "alpine_finetune_minilm": ("alpine_finetune_minilm.json", _finetune_table),
    "alpine_finetune_minilm_2epochs": ("alpine_finetune_minilm_2epochs.json", _finetune_table),
    "alpine_finetune_minilm_seeds": ("alpine_finetune_minilm_seeds.json", _finetune_table),
    "alpine_finetune_frontier": ("alpine_finetune_frontier.json", _alpine_frontier_report),
    "zoo_build": ("zoo_build.json", build_times_markdown),
    "zoo_build_avx2": ("zoo_build_avx2.json", build_times_markdown),
    "cpu_allocator": ("cpu_allocator.json", _lazy("benchmarks.cpu_allocator", "markdown")),
    "xtc_teacher_curves": (
        "xtc_teacher_curves",
        _lazy("benchmarks.xtc_teacher", "teacher_curves_markdown"),
    ),  # a folder: {file name: its JSON}
}


# figures drawn from a results JSON into the PNG beside it (README embeds them below their tables)
FIGURES = {
    "alpine_finetune_frontier.json": _lazy("benchmarks.alpine_finetune", "plot_frontier"),
    "alpine_finetune_minilm.json": _lazy("benchmarks.alpine_finetune", "plot_frontier"),
    "alpine_finetune_minilm_seeds.json": _lazy("benchmarks.alpine_finetune", "plot_frontier"),
    "flab_recovery.json": _flab_recovery_figures,  # and the frontier beside it (flab_recovery-frontier.png)
    "flab_recovery_stdlib_windows.json": _flab_recovery_figures,
    "xtc_gpt2_py150.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_emb8.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_emb4.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_row_emb4.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_row_emb8.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_row_emb8_lr.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_row_emb8_lr_12l.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_row_emb4_lr.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
    "xtc_gpt2_py150_row_emb4_int8rows_lr.json": _lazy("benchmarks.xtc_bench", "plot_kl_curves"),
}


# figures drawn from several results files into one PNG: {PNG name: (file names, draw({file name: its JSON}, path))}
COMPARISON_FIGURES = {
    "flab_recipes.png": (FLAB_RECIPES, _lazy("benchmarks.flab_recovery", "plot_recipes")),
    "xtc_gpt2_py150_data.png": (XTC_DATA_FILES, _lazy("benchmarks.xtc_bench", "plot_data_curves")),
    "xtc_gpt2_py150_rate.png": (XTC_RATE_FILES, _lazy("benchmarks.xtc_bench", "plot_rate_curves")),
}


def _present(results_dir: Path, filenames) -> dict:
    """{file name: its JSON} of those of ``filenames`` that exist in ``results_dir``, in their order."""
    return {name: json.loads((results_dir / name).read_text()) for name in filenames if (results_dir / name).is_file()}


def render_figures(results_dir: Path = RESULTS_DIR) -> list[Path]:
    """Redraw every figure of ``FIGURES`` and ``COMPARISON_FIGURES`` whose JSON exists; returns the PNG paths
    (byte-identical for equal JSON)."""
    drawn = []
    for filename, draw in FIGURES.items():
        source = results_dir / filename
        if source.is_file():
            draw(json.loads(source.read_text()), source.with_suffix(".png"))
            drawn.append(source.with_suffix(".png"))
    for png, (filenames, draw) in COMPARISON_FIGURES.items():
        present = _present(results_dir, filenames)
        if present:
            draw(present, results_dir / png)
            drawn.append(results_dir / png)
    return drawn


def render_readme(readme: str, results_dir: Path = RESULTS_DIR) -> str:
    """``readme`` with every known marker block replaced by the table rendered from its JSON file (if present)."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in RENDERERS:
            raise ValueError(f"README marker `results:{name}` has no renderer; known: {sorted(RENDERERS)}.")
        filename, renderer = RENDERERS[name]
        path = results_dir / filename if isinstance(filename, str) else None
        if path is None:  # several files: {file name: its JSON} of those present
            present = _present(results_dir, filename)
            body = renderer(present) if present else f"_Not measured yet: none of {', '.join(filename)}._"
        elif path.is_file() or path.is_dir():
            if path.is_dir():
                results = {item.name: json.loads(item.read_text()) for item in sorted(path.glob("*.json"))}
            else:
                results = json.loads(path.read_text())
            body = renderer(results).rstrip("\n")
            if "Measured on:" not in body:
                body += f"\n\n_Measured on: {describe(results.get('capability'))}._"
        else:
            body = f"_Not measured yet: run the benchmark that writes `{path}`._"
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    return re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", replace, readme, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or ["README.md"])[0])
    path.write_text(render_readme(path.read_text()))
    figures = render_figures()
    print(f"Updated results tables in {path} and {len(figures)} figure(s) in {RESULTS_DIR}")
    return 0


__all__ = [
    "COMPARISON_FIGURES",
    "FIGURES",
    "FLAB_RECIPES",
    "RENDERERS",
    "XTC_DATA_FILES",
    "XTC_RATE_FILES",
    "build_times_markdown",
    "render_figures",
    "render_readme",
]


if __name__ == "__main__":
    sys.exit(main())
