"""``alpine-hf``: command-line front door (argument parsing only; the work lives in the library modules)."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _bench(args) -> int:
    import torch

    from compress_utils.io import check_output_file

    from .benchmark import markdown_table, run_benchmark, write_results

    # every output is checked before the minutes of measuring
    plot = args.plot or (args.json.rsplit(".", 1)[0] + ".png" if args.json else None)
    if args.json:
        check_output_file(args.json, argument="--json")
        check_output_file(args.json.rsplit(".", 1)[0] + ".md", argument="--json")
    if plot:
        check_output_file(plot, argument="--plot")
    if args.threads:
        torch.set_num_threads(args.threads)

    results = run_benchmark(
        model=args.model,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        alpha=args.alpha,
        merge=not args.no_merge,
        num_batches=args.num_batches,
        repeats=args.repeats,
        dtype=args.dtype,
        root=args.corpus,
        plot_path=plot,
    )
    if args.json:
        write_results(results, args.json)
    print(markdown_table(results))
    return 0


def _finetune(args) -> int:
    from compress_utils.io import atomic_write, check_output_file

    from .finetune import FinetuneConfig, finetune_markdown, run_finetune

    if args.json:
        check_output_file(args.json, argument="--json")
    config = FinetuneConfig(
        model=args.model,
        modes=tuple(args.modes),
        alpha=args.alpha,
        train_pairs=args.train_pairs,
        eval_pairs=args.eval_pairs,
        max_length=args.max_length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        output_dir=args.output_dir,
        bf16={"auto": None, "on": True, "off": False}[args.bf16],
        track_emissions=args.track_emissions,
    )
    results = run_finetune(config, save_mode=args.save_mode, save_to=args.save_to, overwrite=args.overwrite)
    import torch
    from accelerate import PartialState

    # under `accelerate launch` every process holds the same results: one writes them
    if not PartialState(cpu=not torch.cuda.is_available()).is_main_process:
        return 0
    table = finetune_markdown(results)
    if args.json:
        atomic_write(args.json, lambda path: open(path, "w").write(json.dumps(results, indent=2) + "\n"))
        atomic_write(args.json.rsplit(".", 1)[0] + ".md", lambda path: open(path, "w").write(table + "\n"))
    print(table)
    return 0


def add_convert_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> argparse.ArgumentParser:
    """Add the arguments of ``convert`` to ``parser``; shared by ``alpine-hf convert`` and ``optimum-cli alpine
    convert``. ``standalone=True`` also adds ``--quiet``, which ``alpine-hf`` has on its top-level parser.

    The ALPINE options (``--alpha``, ``--layers``, ``--no-merge``, ``--scoring``, ``--special-token-ids``) are the
    fields of :class:`~alpine_hf.recipe.AlpinePruningConfig`.

    Example:
        >>> args = add_convert_arguments(argparse.ArgumentParser()).parse_args(["in", "out", "--layers", "0,2"])
        >>> args.model, args.output, args.layers
        ('in', 'out', [0, 2])
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
    from compress_utils.cli_args import positive_int

    from .benchmark import BENCHMARK_MODELS
    from .finetune import ALL_MODES

    parser = argparse.ArgumentParser(prog="alpine-hf", description="ALPINE adaptive token pruning for encoders.")
    parser.add_argument("--quiet", action="store_true", help="Only warnings and errors.")
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="Stock (sdpa) vs ALPINE all/even/odd: FLOPs, speed, memory.")
    bench.add_argument("--model", default="minilm", help=f"One of {BENCHMARK_MODELS} or a checkpoint folder.")
    bench.add_argument("--batch-size", type=positive_int, default=8)
    bench.add_argument("--seq-len", type=positive_int, default=512)
    bench.add_argument("--alpha", type=float, default=1.0)
    bench.add_argument("--no-merge", action="store_true", help="Drop pruned tokens instead of merging them.")
    bench.add_argument("--num-batches", type=positive_int, default=2)
    bench.add_argument(
        "--repeats", type=positive_int, default=5, help="Interleaved timing rounds (median is reported)."
    )
    bench.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    bench.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's).")
    bench.add_argument("--corpus", default=None, help="Folder of source files (default: the Python stdlib).")
    bench.add_argument("--json", default=None, help="Write results here (plus .md table and .png plot).")
    bench.add_argument("--plot", default=None, help="Kept-length plot path (default: next to --json).")
    bench.set_defaults(func=_bench)

    finetune = commands.add_parser("finetune", help="Clone-detection accuracy retention with a stock Trainer.")
    finetune.add_argument("--model", default=None, help="Checkpoint folder (default: embedded all-MiniLM-L6-v2).")
    finetune.add_argument("--modes", nargs="+", default=list(ALL_MODES), choices=ALL_MODES)
    finetune.add_argument("--alpha", type=float, default=1.0)
    finetune.add_argument("--train-pairs", type=positive_int, default=1200)
    finetune.add_argument("--eval-pairs", type=positive_int, default=400)
    finetune.add_argument("--max-length", type=positive_int, default=256)
    finetune.add_argument("--epochs", type=float, default=1.0)
    finetune.add_argument("--batch-size", type=positive_int, default=16)
    finetune.add_argument("--learning-rate", type=float, default=1e-4)
    finetune.add_argument("--seed", type=int, default=42)
    finetune.add_argument("--output-dir", default="runs/alpine_finetune", help="Trainer checkpoints (resumable).")
    finetune.add_argument("--bf16", default="auto", choices=["auto", "on", "off"], help="bf16 autocast.")
    finetune.add_argument("--save-mode", default=None, choices=ALL_MODES, help="Save this mode's fine-tuned model.")
    finetune.add_argument("--save-to", default=None, help="Folder for --save-mode's model.")
    finetune.add_argument("--overwrite", action="store_true", help="Replace --save-to if it exists and is not empty.")
    finetune.add_argument(
        "--track-emissions", default=None, metavar="ISO3", help="Record CO2 with codecarbon for this grid (e.g. FRA)."
    )
    finetune.add_argument("--json", default=None, help="Write results here (plus a .md table).")
    finetune.set_defaults(func=_finetune)

    convert = commands.add_parser("convert", help="Turn a stock BERT/RoBERTa checkpoint into an ALPINE one.")
    add_convert_arguments(convert).set_defaults(func=run_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``alpine-hf``; bad input ends as ``alpine-hf: error: ...`` with exit code 2 (no traceback)."""
    from compress_utils.cli_args import run_main

    def run(args) -> int:
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        return args.func(args)

    return run_main(build_parser(), argv, run)


__all__ = ["add_convert_arguments", "build_parser", "main", "run_convert"]

if __name__ == "__main__":
    sys.exit(main())
