"""``flab-hf prune|recover|eval|bench``: argument parsing only; the work lives in the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _threads(value: int) -> None:
    import torch

    torch.set_num_threads(value)


def _load(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path == "smollm2":
        from .benchmark import load_smollm2

        return load_smollm2()
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
    return model, AutoTokenizer.from_pretrained(path, trust_remote_code=True)


def _corpus(value: str | None):
    from .data import stdlib_texts

    if value in (None, "stdlib"):
        return stdlib_texts("train", max_chars=4_000_000)
    return value  # a directory of source files


def add_prune_arguments(parser: argparse.ArgumentParser, standalone: bool = False) -> argparse.ArgumentParser:
    """Add the arguments of ``prune`` to ``parser``; shared by ``flab-hf prune`` and ``optimum-cli flab prune``.

    ``standalone=True`` also adds ``--threads`` and ``--quiet``, which ``flab-hf`` has on its top-level parser.

    Example:
        >>> parser = add_prune_arguments(argparse.ArgumentParser(), standalone=True)
        >>> args = parser.parse_args(["--output", "out", "--ffn-neurons", "8,16", "--quiet"])
        >>> args.model, args.ffn_neurons, args.quiet
        ('smollm2', '8,16', True)
    """
    parser.add_argument("--model", default="smollm2", help="a model folder (Qwen2/Qwen3/Llama) or 'smollm2'")
    parser.add_argument("--corpus", default="stdlib", help="a directory of source files, or 'stdlib'")
    parser.add_argument("--output", required=True)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-method", default="kl", choices=["kl", "cosine"])
    parser.add_argument("--ffn-neurons", default="256", help="an int or a comma-separated per-layer list")
    parser.add_argument("--ffn-rule", default="auto")
    parser.add_argument("--no-vocab", action="store_true")
    parser.add_argument("--calibration-samples", type=int, default=8)
    parser.add_argument("--calibration-length", type=int, default=128)
    parser.add_argument("--overwrite", action="store_true")
    if standalone:
        parser.add_argument("--threads", type=int, default=1, help="torch threads (1 gives stable ratios).")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_prune(args: argparse.Namespace) -> int:
    """Prune ``args.model`` with Flab-Pruner and save it to ``args.output``; prints the report summary as JSON."""
    from .recipe import FlabConfig, flab_prune, save_pruned

    if getattr(args, "threads", None):
        _threads(args.threads)
    model, tokenizer = _load(args.model)
    neurons = [int(v) for v in args.ffn_neurons.split(",")] if "," in args.ffn_neurons else int(args.ffn_neurons)
    config = FlabConfig(
        vocab=not args.no_vocab, layers_to_prune=args.layers, layer_method=args.layer_method, ffn_neurons=neurons,
        ffn_rule=args.ffn_rule, calibration_samples=args.calibration_samples,
        calibration_length=args.calibration_length, progress=not args.quiet,
    )  # fmt: skip
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

    from .benchmark import heldout_windows
    from .data import stdlib_recovery_samples
    from .recipe import save_pruned
    from .recovery import RecoveryConfig, lora_recover, teacher_verified_samples

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


def cmd_eval(args) -> None:
    from .benchmark import humaneval_pass
    from .data import check_humaneval_executes, humaneval_problems

    model, tokenizer = _load(args.model)
    check_humaneval_executes()
    result = humaneval_pass(model, tokenizer, humaneval_problems(args.humaneval), 256, 8, not args.quiet)
    print(json.dumps(result, indent=2))


def cmd_bench(args) -> None:
    from .benchmark import markdown_table, run_benchmark

    if args.model != "smollm2":
        raise SystemExit(f"--model {args.model!r} is not an embedded benchmark model; use smollm2.")
    result = run_benchmark(
        json_path=args.json, full=args.full, humaneval=args.humaneval, threads=args.threads,
        humaneval_variants=args.humaneval_variants.split(",") if args.humaneval_variants else None,
        recovery_samples=args.recovery_samples, recovery_epochs=args.recovery_epochs,
        progress=not args.quiet, recover=not args.no_recover, save_dir=args.save_dir,
    )  # fmt: skip
    print(markdown_table(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flab-hf", description="Flab-Pruner for Qwen2/Qwen3/Llama code models.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 gives stable ratios).")
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
    recover.add_argument("--samples", type=int, default=128, help="training functions (doctested ones first)")
    recover.add_argument("--epochs", type=float, default=2.0)
    recover.add_argument("--lora-r", type=int, default=64)
    recover.add_argument("--lora-alpha", type=int, default=32)
    recover.add_argument("--overwrite", action="store_true")
    recover.add_argument("--checkpoint-dir", default=None, help="Trainer checkpoints (LoRA adapter); resumes from it")
    recover.add_argument(
        "--track-emissions", default=None, metavar="ISO3", help="record CO2 with codecarbon (e.g. FRA)"
    )
    recover.set_defaults(func=cmd_recover)

    evaluate = sub.add_parser("eval", help="HumanEval pass@1 (greedy, chat template, executed)")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--humaneval", type=int, default=20, help="number of problems (164 = all)")
    evaluate.set_defaults(func=cmd_eval)

    bench = sub.add_parser("bench", help="dense vs pruned vs recovered in one run; writes JSON + Markdown")
    bench.add_argument("--model", default="smollm2")
    bench.add_argument("--json", default="benchmarks/results/flab_smollm2.json")
    bench.add_argument("--full", action="store_true", help="more calibration, evaluation and recovery data")
    bench.add_argument("--humaneval", type=int, default=None)
    bench.add_argument("--no-recover", action="store_true")
    bench.add_argument("--save-dir", default=None, help="also save the pruned and recovered checkpoints here")
    bench.add_argument(
        "--humaneval-variants",
        default=None,
        help="comma-separated variants that run HumanEval (default: all), e.g. dense,flab,flab_recovered",
    )
    bench.add_argument("--recovery-samples", type=int, default=None, help="recovery training functions")
    bench.add_argument("--recovery-epochs", type=float, default=None, help="recovery epochs")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    _threads(args.threads)
    args.func(args)
    return 0


__all__ = ["add_prune_arguments", "build_parser", "main", "run_prune"]

if __name__ == "__main__":
    sys.exit(main())
