# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``xtc-hf``: train the teacher, compress it, evaluate, benchmark. Argument parsing only; the work is in the library.

Examples:
    xtc-hf teacher --minutes 4
    xtc-hf compress --teacher runs/xtc/teacher/<key>/final --output-dir runs/xtc/demo --layers odd --weight-bits 1
    xtc-hf eval --model runs/xtc/demo/quantization-<key>/final --samples 200
    xtc-hf bench --json benchmarks/results/xtc_gpt2.json --markdown benchmarks/results/xtc_gpt2.md

The zoo entries (teacher and 1W8A6L student, evaluated and carded) are built by ``zoo build`` (``model_cards``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _layers(value: str):
    if "," in value or value.isdigit():
        return [int(part) for part in value.split(",") if part.strip()]
    return value


def add_compress_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> argparse.ArgumentParser:
    """Add the arguments of ``compress`` to ``parser``; shared by ``xtc-hf compress`` and ``optimum-cli xtc
    compress``. ``standalone=True`` also adds ``--quiet``, which ``xtc-hf`` has on its top-level parser.

    Example:
        >>> parser = add_compress_arguments(argparse.ArgumentParser())
        >>> parser.parse_args(["--teacher", "t", "--output-dir", "o", "--layers", "1,3"]).layers
        [1, 3]
    """
    parser.add_argument("--teacher", required=True, help="GPT-2 checkpoint folder (with tokenizer).")
    parser.add_argument("--output-dir", required=True, help="Stage checkpoints (resumable) and results.")
    parser.add_argument("--layers", type=_layers, default="odd", help="odd, even, first, last, all or 1,3,5.")
    parser.add_argument("--weight-bits", type=int, default=1, choices=(1, 2, 8, 32))
    parser.add_argument("--activation-bits", type=int, default=8, choices=(8, 32))
    parser.add_argument("--granularity", default="matrix", choices=("matrix", "row"))
    parser.add_argument("--steps", type=int, default=150, help="Optimizer steps per stage.")
    parser.add_argument("--minutes-per-stage", type=float, default=None)
    parser.add_argument("--save", default=None, help="Also save the final model (and tokenizer) here.")
    parser.add_argument("--overwrite", action="store_true", help="Replace --save if it exists and is not empty.")
    parser.add_argument(
        "--track-emissions", default=None, metavar="ISO3", help="Record CO2 with codecarbon for this grid (e.g. FRA)."
    )
    if standalone:
        parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    return parser


def run_compress(args: argparse.Namespace) -> int:
    """Compress ``args.teacher`` with XTC; prints the folder holding the result (``--save`` or the stage folder)."""
    from .optimum_quantizer import XTCQuantizer
    from .recipe import XTCRecipeConfig

    recipe = XTCRecipeConfig(
        student_layers=args.layers,
        weight_bits=args.weight_bits,
        activation_bits=args.activation_bits,
        weight_granularity=args.granularity,
        layer_reduction_steps=args.steps,
        quantization_steps=args.steps,
        max_minutes_per_stage=args.minutes_per_stage,
        track_emissions=args.track_emissions,
    )
    quantizer = XTCQuantizer.from_pretrained(args.teacher)
    if args.save:
        quantizer.quantize(args.save, recipe=recipe, work_dir=args.output_dir, overwrite=args.overwrite)
        print(args.save)
    else:
        print(quantizer.compress(recipe, work_dir=args.output_dir).xtc_checkpoint)
    return 0


def _teacher(args) -> int:
    from .teacher import TeacherSettings, train_teacher

    print(train_teacher(TeacherSettings(minutes=args.minutes, steps=args.steps, seed=args.seed), args.cache_dir))
    return 0


def _eval(args) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import XTCGPT2Config  # noqa: F401  (registers the xtc_gpt2 model type)
    from .data import stdlib_code
    from .evaluation import evaluate_line_completion, line_completion_samples

    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    samples = line_completion_samples(stdlib_code("test"), args.samples, seed=args.seed)
    scores = evaluate_line_completion(model, tokenizer, samples, progress=not args.quiet)
    print(json.dumps({k: v for k, v in scores.items() if k != "predictions"}, indent=2))
    return 0


def _bench(args) -> int:
    from .bench import BenchSettings, SpeedSettings, run_bench, run_speed_bench, write_results, write_speed_results

    if args.speed_only:  # no teacher training: random teacher-shaped models, forward speed (and a training step)
        result = run_speed_bench(SpeedSettings(threads=args.threads, train_step=args.train_step))
        print(write_speed_results(result, args.json, args.markdown))
        return 0

    overrides = {"threads": args.threads, "cache_dir": args.cache_dir, "variants": tuple(args.variants.split(","))}
    for key, value in (
        ("teacher_minutes", args.minutes),
        ("teacher_steps", args.teacher_steps),
        ("stage_steps", args.steps),
        ("samples", args.samples),
    ):
        if value is not None:
            overrides[key] = value
    settings = BenchSettings.full(**overrides) if args.full else BenchSettings(**overrides)
    print(write_results(run_bench(settings, progress=not args.quiet), args.json, args.markdown))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xtc-hf", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    commands = parser.add_subparsers(dest="command", required=True)

    teacher = commands.add_parser("teacher", help="Train (or reuse) the CodeGPT-style GPT-2 teacher.")
    teacher.add_argument("--minutes", type=float, default=4.0, help="Training budget in minutes.")
    teacher.add_argument("--steps", type=int, default=None, help="Exact number of steps (deterministic).")
    teacher.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    teacher.add_argument("--seed", type=int, default=0)
    teacher.set_defaults(func=_teacher)

    compress = commands.add_parser("compress", help="Run XTC (layer reduction + quantisation) on a GPT-2 teacher.")
    add_compress_arguments(compress).set_defaults(func=run_compress)

    evaluate = commands.add_parser("eval", help="Line-level completion EM/ES on the held-out test split.")
    evaluate.add_argument("--model", required=True, help="Checkpoint folder (GPT-2 or XTC) with tokenizer.")
    evaluate.add_argument("--samples", type=int, default=200)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(func=_eval)

    bench = commands.add_parser("bench", help="Table 1 + 2 of the paper, measured here; writes JSON and Markdown.")
    bench.add_argument("--json", required=True, help="Where to write the JSON result.")
    bench.add_argument("--markdown", default=None, help="Where to write the Markdown table (default: JSON path .md).")
    bench.add_argument("--full", action="store_true", help="Longer run: 30-min teacher, 600 steps/stage, 500 samples.")
    bench.add_argument("--minutes", type=float, default=None, help="Teacher training budget in minutes.")
    bench.add_argument("--teacher-steps", type=int, default=None)
    bench.add_argument("--steps", type=int, default=None, help="Optimizer steps per XTC stage.")
    bench.add_argument("--samples", type=int, default=None, help="Line-completion samples.")
    bench.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machines).")
    bench.add_argument("--variants", default="1W8A,6L,1W8A6L,2W8A6L")
    bench.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    bench.add_argument("--speed-only", action="store_true", help="Forward speed of teacher-shaped models only.")
    bench.add_argument("--train-step", action="store_true", help="With --speed-only: time a QAT step, fp32 vs bf16.")
    bench.set_defaults(func=_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    return args.func(args)


__all__ = ["add_compress_arguments", "build_parser", "main", "run_compress"]

if __name__ == "__main__":
    sys.exit(main())
