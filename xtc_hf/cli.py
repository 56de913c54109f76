# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``xtc-hf compress``: compress a GPT-2 with XTC. Argument parsing only; the work is in the library.

Example:
    xtc-hf compress --teacher runs/xtc/teacher/<key>/final --output-dir runs/xtc/demo --layers odd --weight-bits 1

Teacher training, line-completion evaluation and the benchmark run from
``python -m benchmarks xtc-teacher|xtc-eval|xtc``.

The zoo entries (teacher and 1W8A6L student, evaluated and carded) are built by ``zoo build`` (``model_cards``).
"""

from __future__ import annotations

import argparse
import logging
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xtc-hf", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    commands = parser.add_subparsers(dest="command", required=True)

    compress = commands.add_parser("compress", help="Run XTC (layer reduction + quantisation) on a GPT-2 teacher.")
    add_compress_arguments(compress).set_defaults(func=run_compress)

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
