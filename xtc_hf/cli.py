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

# option names the CLI had before it was derived from the recipe (README, Makefile, tests use them)
_SHORT_NAMES = {
    "student_layers": "layers",
    "weight_granularity": "granularity",
    "max_minutes_per_stage": "minutes_per_stage",
}


def add_compress_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> argparse.ArgumentParser:
    """Add the arguments of ``compress`` to ``parser``; shared by ``xtc-hf compress`` and ``optimum-cli xtc
    compress``. ``standalone=True`` also adds ``--quiet``, which ``xtc-hf`` has on its top-level parser. The recipe
    options are the fields of :class:`~xtc_hf.recipe.XTCRecipeConfig` (``student_layers`` is also ``--layers``,
    ``weight_granularity`` ``--granularity``, ``max_minutes_per_stage`` ``--minutes-per-stage``).

    Example:
        >>> parser = add_compress_arguments(argparse.ArgumentParser())
        >>> parser.parse_args(["--teacher", "t", "--output-dir", "o", "--layers", "1,3"]).student_layers
        [1, 3]
    """
    from compress_utils.cli_args import add_dataclass_arguments, positive_int

    from .recipe import XTCRecipeConfig

    parser.add_argument("--teacher", required=True, help="GPT-2 checkpoint folder (with tokenizer).")
    parser.add_argument("--output-dir", required=True, help="Stage checkpoints (resumable) and results.")
    add_dataclass_arguments(parser, XTCRecipeConfig, names=_SHORT_NAMES)
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="Optimizer steps of both stages (sets the two options above)."
    )
    parser.add_argument("--save", default=None, help="Also save the final model (and tokenizer) here.")
    parser.add_argument("--overwrite", action="store_true", help="Replace --save if it exists and is not empty.")
    if standalone:
        parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    return parser


def run_compress(args: argparse.Namespace) -> int:
    """Compress ``args.teacher`` with XTC; prints the folder holding the result (``--save`` or the stage folder)."""
    from compress_utils.cli_args import dataclass_from_args
    from compress_utils.io import check_output_dir

    from .optimum_quantizer import XTCQuantizer
    from .recipe import XTCRecipeConfig

    steps = {} if args.steps is None else {"layer_reduction_steps": args.steps, "quantization_steps": args.steps}
    recipe = dataclass_from_args(XTCRecipeConfig, args, **steps)  # checks the values before loading anything
    if not os.path.isdir(args.teacher):
        raise FileNotFoundError(f"`--teacher`={args.teacher!r} is not a folder; give a GPT-2 checkpoint folder.")
    if args.save:
        check_output_dir(args.save, overwrite=args.overwrite, argument="--save")
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
    from compress_utils.io import check_output_file

    from .bench import BenchSettings, run_bench, write_results

    check_output_file(args.json, argument="--json")  # before the teacher training and measurements
    check_output_file(args.markdown or os.path.splitext(args.json)[0] + ".md", argument="--markdown")

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
    from compress_utils.cli_args import positive_int

    parser = argparse.ArgumentParser(prog="xtc-hf", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    commands = parser.add_subparsers(dest="command", required=True)

    teacher = commands.add_parser("teacher", help="Train (or reuse) the CodeGPT-style GPT-2 teacher.")
    teacher.add_argument("--minutes", type=float, default=4.0, help="Training budget in minutes.")
    teacher.add_argument("--steps", type=positive_int, default=None, help="Exact number of steps (deterministic).")
    teacher.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    teacher.add_argument("--seed", type=int, default=0)
    teacher.set_defaults(func=_teacher)

    compress = commands.add_parser("compress", help="Run XTC (layer reduction + quantisation) on a GPT-2 teacher.")
    add_compress_arguments(compress).set_defaults(func=run_compress)

    evaluate = commands.add_parser("eval", help="Line-level completion EM/ES on the held-out test split.")
    evaluate.add_argument("--model", required=True, help="Checkpoint folder (GPT-2 or XTC) with tokenizer.")
    evaluate.add_argument("--samples", type=positive_int, default=200)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(func=_eval)

    bench = commands.add_parser("bench", help="Table 1 + 2 of the paper, measured here; writes JSON and Markdown.")
    bench.add_argument("--json", required=True, help="Where to write the JSON result.")
    bench.add_argument("--markdown", default=None, help="Where to write the Markdown table (default: JSON path .md).")
    bench.add_argument("--full", action="store_true", help="Longer run: 30-min teacher, 600 steps/stage, 500 samples.")
    bench.add_argument("--minutes", type=float, default=None, help="Teacher training budget in minutes.")
    bench.add_argument("--teacher-steps", type=positive_int, default=None)
    bench.add_argument("--steps", type=positive_int, default=None, help="Optimizer steps per XTC stage.")
    bench.add_argument("--samples", type=positive_int, default=None, help="Line-completion samples.")
    bench.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1: shared machines).")
    bench.add_argument("--variants", default="1W8A,6L,1W8A6L,2W8A6L")
    bench.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    bench.set_defaults(func=_bench)
    return parser


def main(argv=None) -> int:
    """Run ``xtc-hf``; bad input ends as ``xtc-hf: error: ...`` with exit code 2 (no traceback)."""
    from compress_utils.cli_args import run_main

    def run(args) -> int:
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        return args.func(args)

    return run_main(build_parser(), argv, run)


__all__ = ["add_compress_arguments", "build_parser", "main", "run_compress"]

if __name__ == "__main__":
    sys.exit(main())
