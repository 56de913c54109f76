"""``alpine-hf``: command-line front door (argument parsing only; the work lives in the library modules)."""

from __future__ import annotations

import argparse
import sys


def add_convert_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> argparse.ArgumentParser:
    """Add the arguments of ``convert`` to ``parser``; shared by ``alpine-hf convert`` and ``optimum-cli alpine
    convert``. ``standalone=True`` also adds ``--quiet``, which ``alpine-hf`` has on its top-level parser.

    The ALPINE options (``--alpha``, ``--layers``, ``--no-merge``, ``--scoring``, ``--special-token-ids``) are the
    fields of :class:`~alpine_hf.recipe.AlpinePruningConfig`: ``--layers`` takes a mode or layer indices (``0,2,5``),
    ``--alpha`` one number or one per encoder layer (``1.5,1.5,1,1,0.5,0.5``).

    Example:
        >>> args = add_convert_arguments(argparse.ArgumentParser()).parse_args(["in", "out", "--layers", "0,2"])
        >>> args.model, args.output, args.layers
        ('in', 'out', [0, 2])
        >>> add_convert_arguments(argparse.ArgumentParser()).parse_args(["in", "out", "--alpha", "1.5,0.5"]).alpha
        [1.5, 0.5]
    """
    from compress_utils.cli_args import add_dataclass_arguments, positive_int

    from .recipe import AlpinePruningConfig

    parser.add_argument("model", help="Stock checkpoint folder or Hub id.")
    parser.add_argument("output", help="Output folder (written atomically).")
    add_dataclass_arguments(parser, AlpinePruningConfig)
    parser.add_argument(
        "--num-labels", type=positive_int, default=None, help="Add a classification head with N labels."
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace OUTPUT if it exists and is not empty.")
    parser.add_argument(
        "--no-tokenizer", action="store_true", help="Save the model alone (MODEL has no tokenizer to copy)."
    )
    if standalone:
        parser.add_argument("--quiet", action="store_true", help="Only warnings and errors.")
    return parser


# what a BERT/RoBERTa tokenizer needs: one of these sets of files in the checkpoint folder
_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"))


def _load_tokenizer(model: str):
    """The tokenizer of ``model``; a local folder without tokenizer files is refused (Transformers would invent one)."""
    import os

    from transformers import AutoTokenizer

    if os.path.isdir(model) and not any(
        all(os.path.isfile(os.path.join(model, name)) for name in names) for names in _TOKENIZER_FILES
    ):
        wanted = " or ".join(" + ".join(names) for names in _TOKENIZER_FILES)
        raise FileNotFoundError(
            f"`model`={model!r} has no tokenizer files ({wanted}). Copy the tokenizer into that folder, or pass "
            "--no-tokenizer to save the model alone."
        )
    return AutoTokenizer.from_pretrained(model)


def _check_model_path(model: str):
    """A path that does not exist is named as such (Transformers would call it an invalid Hub id)."""
    import os

    if not os.path.exists(model) and model.startswith((os.sep, ".", "~")):  # Hub ids never start so
        raise FileNotFoundError(f"`model`={model!r} does not exist; give a checkpoint folder or a cached Hub id.")


def run_convert(args: argparse.Namespace) -> int:
    """Turn the stock checkpoint ``args.model`` into an ALPINE one saved at ``args.output`` (with its tokenizer)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from compress_utils.cli_args import dataclass_from_args
    from compress_utils.io import atomic_dir, check_output_dir

    from .recipe import AlpinePruningConfig, apply_alpine

    settings = dataclass_from_args(AlpinePruningConfig, args)  # checks the values before loading anything
    _check_model_path(args.model)
    check_output_dir(args.output, overwrite=args.overwrite, argument="output")
    tokenizer = None if args.no_tokenizer else _load_tokenizer(args.model)
    loader = AutoModelForSequenceClassification if args.num_labels else AutoModel
    extra = {"num_labels": args.num_labels} if args.num_labels else {}
    model = apply_alpine(loader.from_pretrained(args.model, **extra), settings)
    with atomic_dir(args.output, overwrite=args.overwrite, argument="output") as folder:
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
    print(f"Saved {type(model).__name__} to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``alpine-hf`` argument parser (shared with other front doors)."""

    parser = argparse.ArgumentParser(prog="alpine-hf", description="ALPINE adaptive token pruning for encoders.")
    parser.add_argument("--quiet", action="store_true", help="Only warnings and errors.")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="Turn a stock BERT/RoBERTa checkpoint into an ALPINE one.")
    add_convert_arguments(convert).set_defaults(func=run_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``alpine-hf``; bad input ends as ``alpine-hf: error: ...`` with exit code 2 (no traceback)."""
    from compress_utils.cli_args import run_main

    return run_main(build_parser(), argv)


__all__ = ["add_convert_arguments", "build_parser", "main", "run_convert"]

if __name__ == "__main__":
    sys.exit(main())
