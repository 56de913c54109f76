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


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="xtc-hf", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    commands = parser.add_subparsers(dest="command", required=True)

    compress = commands.add_parser("compress", help="Run XTC (layer reduction + quantisation) on a GPT-2 teacher.")
    add_compress_arguments(compress).set_defaults(func=run_compress)

    return parser


def main(argv=None) -> int:
    """Run ``xtc-hf``; bad input ends as ``xtc-hf: error: ...`` with exit code 2 (no traceback)."""
    from compress_utils.cli_args import run_main

    return run_main(build_parser(), argv)


__all__ = ["add_compress_arguments", "build_parser", "main", "run_compress"]

if __name__ == "__main__":
    sys.exit(main())
