"""``flab-hf prune|recover``: argument parsing only; the work lives in the library.

HumanEval and the benchmark run from ``python -m benchmarks flab-humaneval|flab``.
"""

from __future__ import annotations

import argparse
import json
import sys


def _threads(value: int) -> None:
    import torch

    torch.set_num_threads(value)


def _load(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path == "smollm2":
        from compress_utils.embedded import load_smollm2

        return load_smollm2()
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
    return model, AutoTokenizer.from_pretrained(path, trust_remote_code=True)


def _check_source(argument: str, value: str | None, embedded: str):
    """Refuse a ``--model``/``--corpus`` folder that does not exist before any work starts."""
    import os

    if value not in (None, embedded) and not os.path.isdir(value):
        raise FileNotFoundError(f"`{argument}`={value!r} is not a folder; give a folder or {embedded!r}.")


def _corpus(value: str | None):
    from .data import stdlib_texts

    if value in (None, "stdlib"):
        return stdlib_texts("train", max_chars=4_000_000)
    return value  # a directory of source files


def add_prune_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> argparse.ArgumentParser:
    """Add the arguments of ``prune`` to ``parser``; shared by ``flab-hf prune`` and ``optimum-cli flab prune``.

    ``standalone=True`` also adds ``--threads`` and ``--quiet``, which ``flab-hf`` has on its top-level parser. The
    pruning options are the fields of :class:`~flab_hf.recipe.FlabConfig` (``layers_to_prune`` is ``--layers``).

    Example:
        >>> parser = add_prune_arguments(argparse.ArgumentParser(), standalone=True)
        >>> args = parser.parse_args(["--output", "out", "--ffn-neurons", "8,16", "--quiet"])
        >>> args.model, args.ffn_neurons, args.quiet
        ('smollm2', [8, 16], True)
    """
    from compress_utils.cli_args import add_dataclass_arguments, positive_int

    from .recipe import FlabConfig

    parser.add_argument("--model", default="smollm2", help="a model folder (Qwen2/Qwen3/Llama) or 'smollm2'")
    parser.add_argument("--corpus", default="stdlib", help="a directory of source files, or 'stdlib'")
    parser.add_argument("--output", required=True)
    add_dataclass_arguments(parser, FlabConfig, exclude=("progress",), names={"layers_to_prune": "layers"})
    parser.add_argument("--overwrite", action="store_true")
    if standalone:
        parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (1 gives stable ratios).")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_prune(args: argparse.Namespace) -> int:
    """Prune ``args.model`` with Flab-Pruner and save it to ``args.output``; prints the report summary as JSON."""
    from compress_utils.cli_args import dataclass_from_args
    from compress_utils.io import check_output_dir

    from .recipe import FlabConfig, flab_prune, save_pruned

    # everything that can be checked without the model is checked before loading it and pruning (minutes)
    config = dataclass_from_args(FlabConfig, args, progress=not args.quiet)
    check_output_dir(args.output, overwrite=args.overwrite, argument="--output")
    _check_source("--model", args.model, "smollm2")
    _check_source("--corpus", args.corpus, "stdlib")
    if getattr(args, "threads", None):
        _threads(args.threads)
    model, tokenizer = _load(args.model)
    pruned, pruned_tokenizer, report = flab_prune(model, tokenizer, _corpus(args.corpus), config)
    from compress_utils.distributed import distributed_state

    state = distributed_state()  # under `accelerate launch` the calibration is sharded; every process has the result
    if state is None or state.is_main_process:
        save_pruned(pruned, pruned_tokenizer, args.output, report, overwrite=args.overwrite)
        print(
            json.dumps({k: report[k] for k in ("params", "removed_layers", "steps", "times") if k in report}, indent=2)
        )
    return 0


def cmd_recover(args) -> None:
    import torch

    from compress_utils.io import check_output_dir

    from .data import heldout_windows, stdlib_recovery_samples
    from .recipe import save_pruned
    from .recovery import RecoveryConfig, lora_recover, teacher_verified_samples

    check_output_dir(args.output, overwrite=args.overwrite, argument="--output")
    _check_source("--model", args.model, "smollm2")
    _check_source("--dense", args.dense, "smollm2")
    pruned, pruned_tokenizer = _load(args.model)
    dense, tokenizer = _load(args.dense)
    kept = torch.tensor(
        tokenizer.convert_tokens_to_ids(pruned_tokenizer.convert_ids_to_tokens(list(range(len(pruned_tokenizer)))))
    )
    samples = stdlib_recovery_samples("train", limit=args.samples)
    train, stats = teacher_verified_samples(dense, tokenizer, samples, progress=not args.quiet)
    valid = heldout_windows(pruned_tokenizer, 4, 128, split="valid")
    config = RecoveryConfig(
        epochs=args.epochs, lora_r=args.lora_r, lora_alpha=args.lora_alpha, progress=not args.quiet,
        checkpoint_dir=args.checkpoint_dir, track_emissions=args.track_emissions,
    )  # fmt: skip
    recovered, log = lora_recover(pruned, pruned_tokenizer, train, config, dense, valid, kept)
    from accelerate import PartialState

    # under `accelerate launch` every process holds the same merged model: one saves it
    if PartialState(cpu=not torch.cuda.is_available()).is_main_process:
        save_pruned(recovered, pruned_tokenizer, args.output, overwrite=args.overwrite)
        print(json.dumps({**stats, **log}, indent=2, default=str))


def build_parser() -> argparse.ArgumentParser:
    from compress_utils.cli_args import positive_int

    parser = argparse.ArgumentParser(prog="flab-hf", description="Flab-Pruner for Qwen2/Qwen3/Llama code models.")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (1 gives stable ratios).")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    prune = sub.add_parser("prune", help="prune vocabulary, layers and FFN neurons of a model folder (or smollm2)")
    add_prune_arguments(prune).set_defaults(func=run_prune)

    recover = sub.add_parser(
        "recover", help="LoRA recovery on stdlib functions (doctested ones teacher-verified, then untested ones)"
    )
    recover.add_argument("--model", required=True, help="pruned model folder")
    recover.add_argument("--dense", default="smollm2", help="dense model folder (the teacher)")
    recover.add_argument("--output", required=True)
    recover.add_argument("--samples", type=positive_int, default=128, help="training functions (doctested ones first)")
    recover.add_argument("--epochs", type=float, default=2.0)
    recover.add_argument("--lora-r", type=positive_int, default=64)
    recover.add_argument("--lora-alpha", type=positive_int, default=32)
    recover.add_argument("--overwrite", action="store_true")
    recover.add_argument("--checkpoint-dir", default=None, help="Trainer checkpoints (LoRA adapter); resumes from it")
    recover.add_argument(
        "--track-emissions", default=None, metavar="ISO3", help="record CO2 with codecarbon (e.g. FRA)"
    )
    recover.set_defaults(func=cmd_recover)

    return parser


def main(argv=None) -> int:
    """Run ``flab-hf``; bad input ends as ``flab-hf: error: ...`` with exit code 2 (no traceback)."""
    from compress_utils.cli_args import run_main, run_subcommand

    def run(args) -> int:
        _threads(args.threads)
        return run_subcommand(args)

    return run_main(build_parser(), argv, run)


__all__ = ["add_prune_arguments", "build_parser", "main", "run_prune"]

if __name__ == "__main__":
    sys.exit(main())
