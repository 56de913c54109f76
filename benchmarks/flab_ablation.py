"""Where the quality goes: each Flab component alone and in pairs on SmolLM2-135M-Instruct (the paper's Table 9).

Every variant of :data:`~benchmarks.flab_levels.ABLATION` (the chat-keeping vocabulary; 4 decoder layers removed by
the KL search; 128 FFN neurons per layer, the rule chosen by ``auto`` among all of them; each pair; all three) is
pruned from the dense model with its own search (a variant's layer and FFN choices are made on the model it prunes)
and measured, without recovery, on the yardstick of ``flab-recovery``: HumanEval pass@1 on all 164 problems (greedy,
executed) and the share of problems answered exactly as the dense model does; perplexity per dense token on the
stdlib test split and on ``accelerate``; KL to dense and next-token agreement.

Each variant's row is stored in ``results_dir`` as it finishes (shared with ``flab-recovery``'s pruned rows), so the
table fills in over several runs; a stored row is read back, not measured again.

Example:
    >>> result = run_ablation_bench(AblationSettings(levels=("vocab", "4L")))  # doctest: +SKIP
    >>> result["variants"]["4L"]["humaneval"]["passed"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from compress_utils.capability import describe

from .flab_levels import ABLATION, LevelSettings, Yardstick, parse_level, same_answers

logger = logging.getLogger(__name__)


@dataclass
class AblationSettings(LevelSettings):
    """Settings of the ablation: which variants, and how each is pruned and measured (:class:`LevelSettings`)."""

    levels: tuple[str, ...] = field(
        default=ABLATION,
        metadata={
            "help": "Variants: 'vocab', '<n>L', 'ffn' joined by '+' (default: each alone, each pair, all three)."
        },
    )


def run_ablation_bench(settings: AblationSettings | None = None, progress: bool = True) -> dict:
    """Prune and measure every variant of ``settings`` (stored rows are read back); returns the result dict."""
    settings = settings or AblationSettings()
    started = time.perf_counter()
    yardstick = Yardstick(settings, progress)
    result = {**yardstick.result("flab_ablation"), "variants": {}}
    for level in settings.levels:
        row = yardstick.pruned_row(level)
        row["same_answer_as_dense"] = same_answers(row, result["dense"])
        result["variants"][level] = row
    dense_passed = result["dense"]["humaneval"]["passed"]
    result["targets"] = {
        f"{level}_humaneval_ge_dense_minus_1": row["humaneval"]["passed"] >= dense_passed - 1
        for level, row in result["variants"].items()
        if parse_level(level) == parse_level("vocab")
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _describe_variant(level: str, row: dict) -> str:
    vocab, layers, neurons = parse_level(level)
    parts = []
    if vocab:
        parts.append(f"{row['vocabulary']:,} tokens")
    if layers:
        parts.append("layers " + ",".join(map(str, row["removed_layers"])))
    if neurons:
        parts.append(f"{neurons} FFN/layer ({row['ffn_rule']})")
    return "; ".join(parts)


def ablation_markdown(result: dict) -> str:
    """The ablation as a Markdown table (dense first), with the vocabulary-only target."""
    dense = result["dense"]
    problems = dense["humaneval"]["problems"]
    foreign = result["foreign_package"]["name"]
    lines = [
        f"Flab ablation on {result['model']}, no recovery; quality in {result['quality_dtype']}, HumanEval on "
        f"{problems} problems (greedy, executed). Calibration {result['settings']['calibration_samples']} x "
        f"{result['settings']['calibration_length']} tokens; each variant makes its own layer and FFN choices. "
        f"Measured on: {describe(result.get('capability'))}.",
        "",
        f"| variant | what is pruned | params (ratio) | HumanEval | same answer as dense | fenced answers "
        f"| PPL stdlib test (x dense) | PPL {foreign} (x dense) | KL to dense | next-token agreement |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ppl(row, part):
        return f"{row[part]['text_perplexity'] / dense[part]['text_perplexity']:.3f}x"

    def line(name, what, row, same):
        test = row["stdlib_test"]
        return (
            f"| {name} | {what} | {row['params']:,} ({row['param_ratio']}) | {row['humaneval']['passed']}/{problems} "
            f"| {same} | {row['fenced_answers']}/{problems} | {ppl(row, 'stdlib_test')} | {ppl(row, 'foreign')} "
            f"| {test['kl_to_dense']} | {test['next_token_agreement']} |"
        )

    lines.append(line("dense", "-", {**dense, "param_ratio": 1.0}, "100%"))
    for level, row in result["variants"].items():
        same = row.get("same_answer_as_dense")
        lines.append(line(level, _describe_variant(level, row), row, "-" if same is None else f"{same:.1%}"))
    verdict = {True: "met", False: "NOT met"}
    if result["targets"]:
        lines += ["", "Targets: " + "; ".join(f"{k} {verdict[v]}" for k, v in result["targets"].items()) + "."]
    return "\n".join(lines) + "\n"


__all__ = ["AblationSettings", "ablation_markdown", "run_ablation_bench"]
