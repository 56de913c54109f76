# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``xtc-hf``: train the teacher, compress it, evaluate, benchmark. Argument parsing only; the work is in the library.

Examples:
    xtc-hf teacher --minutes 4
    xtc-hf compress --teacher runs/xtc/teacher/<key>/final --output-dir runs/xtc/demo --layers odd --weight-bits 1
    xtc-hf eval --model runs/xtc/demo/quantization-<key>/final --samples 200
    xtc-hf bench --json benchmarks/results/xtc_gpt2.json --markdown benchmarks/results/xtc_gpt2.md
    xtc-hf zoo --output-dir zoo/xtc
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xtc-hf", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="Only warnings; no progress bars.")
    commands = parser.add_subparsers(dest="command", required=True)

    teacher = commands.add_parser("teacher", help="Train (or reuse) the CodeGPT-style GPT-2 teacher.")
    teacher.add_argument("--minutes", type=float, default=4.0, help="Training budget in minutes.")
    teacher.add_argument("--steps", type=int, default=None, help="Exact number of steps (deterministic).")
    teacher.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    teacher.add_argument("--seed", type=int, default=0)

    compress = commands.add_parser("compress", help="Run XTC (layer reduction + quantisation) on a GPT-2 teacher.")
    compress.add_argument("--teacher", required=True, help="GPT-2 checkpoint folder (with tokenizer).")
    compress.add_argument("--output-dir", required=True)
    compress.add_argument("--layers", type=_layers, default="odd", help="odd, even, first, last, all or 1,3,5.")
    compress.add_argument("--weight-bits", type=int, default=1, choices=(1, 2, 8, 32))
    compress.add_argument("--activation-bits", type=int, default=8, choices=(8, 32))
    compress.add_argument("--granularity", default="matrix", choices=("matrix", "row"))
    compress.add_argument("--steps", type=int, default=150, help="Optimizer steps per stage.")
    compress.add_argument("--minutes-per-stage", type=float, default=None)
    compress.add_argument("--save", default=None, help="Also save the final model here.")

    evaluate = commands.add_parser("eval", help="Line-level completion EM/ES on the held-out test split.")
    evaluate.add_argument("--model", required=True, help="Checkpoint folder (GPT-2 or XTC) with tokenizer.")
    evaluate.add_argument("--samples", type=int, default=200)
    evaluate.add_argument("--seed", type=int, default=0)

    zoo = commands.add_parser("zoo", help="Build the zoo entries: the teacher and its 1W8A6L student.")
    zoo.add_argument("--output-dir", default=os.path.join("zoo", "xtc"))
    zoo.add_argument("--minutes", type=float, default=4.0, help="Teacher training budget in minutes.")
    zoo.add_argument("--teacher-steps", type=int, default=None, help="Exact teacher steps (overrides minutes).")
    zoo.add_argument("--steps", type=int, default=100, help="Optimizer steps per XTC stage.")
    zoo.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))

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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "teacher":
        from .teacher import TeacherSettings, train_teacher

        print(train_teacher(TeacherSettings(minutes=args.minutes, steps=args.steps, seed=args.seed), args.cache_dir))
    elif args.command == "compress":
        from transformers import AutoTokenizer, GPT2LMHeadModel

        from . import XTCRecipeConfig, xtc_compress
        from .data import stdlib_dataset

        teacher = GPT2LMHeadModel.from_pretrained(args.teacher)
        tokenizer = AutoTokenizer.from_pretrained(args.teacher)
        recipe = XTCRecipeConfig(
            student_layers=args.layers,
            weight_bits=args.weight_bits,
            activation_bits=args.activation_bits,
            weight_granularity=args.granularity,
            layer_reduction_steps=args.steps,
            quantization_steps=args.steps,
            max_minutes_per_stage=args.minutes_per_stage,
        )
        model = xtc_compress(teacher, recipe, stdlib_dataset("train"), tokenizer=tokenizer, output_dir=args.output_dir)
        if args.save:
            from .teacher import save_atomic

            save_atomic(args.save, model, tokenizer)
        print(args.save or model.xtc_checkpoint)
    elif args.command == "eval":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from . import XTCGPT2Config  # noqa: F401  (registers the xtc_gpt2 model type)
        from .data import stdlib_code
        from .evaluation import evaluate_line_completion, line_completion_samples

        model = AutoModelForCausalLM.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        samples = line_completion_samples(stdlib_code("test"), args.samples, seed=args.seed)
        scores = evaluate_line_completion(model, tokenizer, samples, progress=not args.quiet)
        print(json.dumps({k: v for k, v in scores.items() if k != "predictions"}, indent=2))
    elif args.command == "zoo":
        import shutil

        from transformers import AutoTokenizer, GPT2LMHeadModel

        from . import XTCRecipeConfig, xtc_compress
        from .data import stdlib_dataset
        from .teacher import TeacherSettings, train_teacher

        settings = TeacherSettings(minutes=args.minutes, steps=args.teacher_steps)
        teacher_dir = train_teacher(settings, args.cache_dir)
        teacher = GPT2LMHeadModel.from_pretrained(teacher_dir)
        tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
        recipe = XTCRecipeConfig(layer_reduction_steps=args.steps, quantization_steps=args.steps)
        output_dir = os.path.join(args.cache_dir, "zoo", os.path.basename(os.path.dirname(teacher_dir)))
        student = xtc_compress(teacher, recipe, stdlib_dataset("train"), tokenizer=tokenizer, output_dir=output_dir)
        targets = {"xtc-gpt2-stdlib-teacher": teacher_dir, "xtc-gpt2-stdlib-1w8a6l": student.xtc_checkpoint}
        for name, source in targets.items():
            destination = os.path.join(args.output_dir, name)
            tmp = destination + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(source, tmp)
            shutil.rmtree(destination, ignore_errors=True)
            os.replace(tmp, destination)  # a half-copied checkpoint never sits at the final name
            print(destination)
    elif args.command == "bench":
        from .bench import BenchSettings, run_bench, to_markdown

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
        result = run_bench(settings, progress=not args.quiet)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
        table = to_markdown(result)
        markdown = args.markdown or os.path.splitext(args.json)[0] + ".md"
        with open(markdown, "w") as handle:
            handle.write("# XTC for GPT-2: measured here\n\n" + table)
        print(table)
    return 0


__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
