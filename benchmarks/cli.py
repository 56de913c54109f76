"""``python -m benchmarks``: the benchmarks and experiments (argument parsing only; the work is in the modules).

Examples:
    python -m benchmarks alpine-speed --model minilm --threads 1 --json benchmarks/results/alpine_minilm.json
    python -m benchmarks alpine-finetune --json benchmarks/results/alpine_finetune_minilm.json
    python -m benchmarks alpine-finetune --modes none all 'layers=1-5;alpha=1.5,1.5,1,1,0.5,0.5' --schedules a b
    python -m benchmarks flab --json benchmarks/results/flab_smollm2.json
    python -m benchmarks flab-calibration --sizes 6x128,16x256,32x256
    python -m benchmarks flab-ablation --levels vocab,4L,ffn --results-dir benchmarks/results/flab_levels
    python -m benchmarks flab-recovery --levels vocab+4L --train-tokens 1000000
    python -m benchmarks flab-humaneval --model runs/flab/pruned --humaneval 164
    python -m benchmarks xtc-teacher --tokens 20000000 --curve-every-tokens 2000000
    python -m benchmarks xtc-eval --model runs/xtc/teacher/<key>/final
    python -m benchmarks xtc --threads 1 --json benchmarks/results/xtc_gpt2.json
    python -m benchmarks cpu-allocator --json benchmarks/results/cpu_allocator.json
    python -m benchmarks results README.md
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
from pathlib import Path


def _alpine_speed(args) -> int:
    import torch

    from compress_utils.io import check_output_file

    from .alpine_speed import markdown_table, run_benchmark, write_results

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
        modes=tuple(args.modes),
    )
    if args.json:
        write_results(results, args.json)
    print(markdown_table(results))
    return 0


def _alpine_finetune(args) -> int:
    import torch
    from accelerate import PartialState

    from compress_utils.io import atomic_write_text, check_output_file

    from .alpine_finetune import FinetuneConfig, finetune_markdown, plot_frontier, run_finetune

    if args.json:
        for suffix in (".json", ".md", ".png"):
            check_output_file(args.json.rsplit(".", 1)[0] + suffix, argument="--json")

    from compress_utils.cli_args import dataclass_from_args

    config = dataclass_from_args(FinetuneConfig, args, modes=tuple(args.modes), schedules=tuple(args.schedules))
    results = run_finetune(
        config,
        save_mode=args.save_mode,
        save_to=args.save_to,
        overwrite=args.overwrite,
        save_schedule=args.save_schedule,
        stored_only=args.stored_only,
    )
    # under `accelerate launch` every process holds the same results: one writes them
    if not PartialState(cpu=not torch.cuda.is_available()).is_main_process:
        return 0
    table = finetune_markdown(results)
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        atomic_write_text(args.json.rsplit(".", 1)[0] + ".md", table + "\n")
        plot_frontier(results, args.json.rsplit(".", 1)[0] + ".png")
    print(table)
    return 0


def _flab(args) -> int:
    from compress_utils.io import check_output_file

    from .flab_bench import markdown_table, run_benchmark

    if args.model != "smollm2":
        raise ValueError(f"`--model`={args.model!r} is not an embedded benchmark model; use smollm2.")
    if args.json:
        check_output_file(args.json, argument="--json")
    result = run_benchmark(
        json_path=args.json, full=args.full, humaneval=args.humaneval, threads=args.threads,
        humaneval_variants=args.humaneval_variants.split(",") if args.humaneval_variants else None,
        recovery_samples=args.recovery_samples, recovery_epochs=args.recovery_epochs,
        progress=not args.quiet, recover=not args.no_recover, save_dir=args.save_dir,
    )  # fmt: skip
    print(markdown_table(result))
    return 0


def _settings_run(args, settings_class, run, markdown) -> int:
    """Settings from ``args``, the run, then ``args.json`` and the Markdown table beside it (checked before the run)."""
    from compress_utils.cli_args import dataclass_from_args
    from compress_utils.io import atomic_write_text, check_output_file

    settings = dataclass_from_args(settings_class, args)
    table_path = args.json.rsplit(".", 1)[0] + ".md"
    for path in (args.json, table_path):
        check_output_file(path, argument="--json")
    result = run(settings, progress=not args.quiet)
    table = markdown(result).rstrip("\n") + "\n"
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    atomic_write_text(table_path, table)
    print(table)
    return 0


def _flab_vocab(args) -> int:
    from .flab_vocabulary import VocabularySettings, run_vocabulary_bench, vocabulary_markdown

    return _settings_run(args, VocabularySettings, run_vocabulary_bench, vocabulary_markdown)


def _flab_calibration(args) -> int:
    from .flab_calibration import CalibrationSettings, calibration_markdown, run_calibration_bench

    return _settings_run(args, CalibrationSettings, run_calibration_bench, calibration_markdown)


def _flab_ablation(args) -> int:
    from .flab_ablation import AblationSettings, ablation_markdown, run_ablation_bench

    return _settings_run(args, AblationSettings, run_ablation_bench, ablation_markdown)


def _flab_recovery(args) -> int:
    from compress_utils.cli_args import dataclass_from_args
    from compress_utils.io import atomic_write_text, check_output_file
    from flab_hf.distillation import DistillationConfig

    from .flab_recovery import (
        RecoverySettings,
        plot_frontier,
        plot_recovery_curve,
        recovery_markdown,
        run_recovery_bench,
    )

    distill = dataclass_from_args(DistillationConfig, args, progress=not args.quiet)
    settings = dataclass_from_args(RecoverySettings, args, distill=distill)
    stem = args.json.rsplit(".", 1)[0]
    for path in (args.json, stem + ".md", stem + ".png", stem + "-frontier.png"):
        check_output_file(path, argument="--json")
    result = run_recovery_bench(settings, progress=not args.quiet)
    table = recovery_markdown(result)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    atomic_write_text(stem + ".md", table)
    plot_recovery_curve(result, stem + ".png")
    plot_frontier(result, stem + "-frontier.png")
    print(table)
    return 0


def _flab_humaneval(args) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flab_hf.data import check_humaneval_executes, humaneval_problems

    from .flab_bench import humaneval_pass

    if args.model != "smollm2" and not os.path.isdir(args.model):
        raise FileNotFoundError(f"`--model`={args.model!r} is not a folder; give a causal-LM folder or 'smollm2'.")
    if args.model == "smollm2":
        from compress_utils.embedded import load_smollm2

        model, tokenizer = load_smollm2()
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    check_humaneval_executes()
    result = humaneval_pass(model, tokenizer, humaneval_problems(args.humaneval), 256, 8, not args.quiet)
    print(json.dumps(result, indent=2))
    return 0


def _cpu_allocator(args) -> int:
    from compress_utils.io import atomic_write_text, check_output_file

    from .cpu_allocator import markdown, run_allocator_bench

    if args.json:
        check_output_file(args.json, argument="--json")
    results = run_allocator_bench(steps=args.steps, threads=args.threads)
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0


def _xtc_embedding_rows(args) -> int:
    from compress_utils.io import atomic_write_text, check_output_file

    from .xtc_embedding_rows import EmbeddingRowsSettings, embedding_rows_bench, to_markdown

    check_output_file(args.json, argument="--json")
    settings = EmbeddingRowsSettings(
        teacher_dir=args.teacher_dir, int8_rows=tuple(args.int8_rows), blocks=args.blocks, seed=args.seed
    )  # checks the teacher folder before any work
    result = embedding_rows_bench(settings, progress=not args.quiet)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(to_markdown(result))
    return 0


def _xtc_teacher(args) -> int:
    from compress_utils.cli_args import dataclass_from_args

    from .xtc_teacher import TeacherSettings, plot_teacher_curves, store_teacher_result, train_teacher

    settings = dataclass_from_args(TeacherSettings, args, progress=args.progress and not args.quiet)
    if args.preset is not None:  # the options given (those not at their default) go on top of the preset
        default = TeacherSettings()
        given = {
            spec.name: getattr(settings, spec.name)
            for spec in dataclasses.fields(TeacherSettings)
            if spec.name != "progress" and getattr(settings, spec.name) != getattr(default, spec.name)
        }
        settings = TeacherSettings.preset(args.preset, progress=settings.progress, **given)
    if args.results_dir is not None and os.path.isfile(args.results_dir):
        raise NotADirectoryError(f"`--results-dir`={args.results_dir!r} is a file; give a folder.")
    folder = train_teacher(settings, args.cache_dir)
    print(folder)
    if args.results_dir is not None:
        print(store_teacher_result(folder, args.results_dir))
        stored = sorted(glob.glob(os.path.join(args.results_dir, "teacher-*.json")))
        plot_teacher_curves([json.loads(Path(name).read_text()) for name in stored],
                            os.path.join(args.results_dir, "curves.png"))  # fmt: skip
    return 0


def _xtc_eval(args) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from compress_utils.capability import cpu_model
    from compress_utils.io import atomic_write_text, check_output_file
    from xtc_hf import XTCGPT2Config  # noqa: F401  (registers the xtc_gpt2 model type)
    from xtc_hf.data import stdlib_code

    from .xtc_eval import evaluate_line_completion, line_completion_samples
    from .xtc_teacher import LITERALS_FILE, META_FILE, teacher_files

    if args.json:
        check_output_file(args.json, argument="--json")  # before loading and generating
    if args.model == "smollm2":  # a pretrained code-capable reference (trained on trillions of tokens)
        from compress_utils.embedded import load_smollm2

        model, tokenizer = load_smollm2()
    elif os.path.isdir(args.model):
        model = AutoModelForCausalLM.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    else:
        raise FileNotFoundError(f"`--model`={args.model!r} is not a folder; give a checkpoint folder or 'smollm2'.")
    py150 = os.path.isfile(os.path.join(str(args.model), LITERALS_FILE))
    # a teacher trained on PY150-form code is scored on PY150-form lines, as it learnt
    files, lines = teacher_files(args.model, "test") if py150 else (stdlib_code("test"), args.lines)
    samples = line_completion_samples(files, args.samples, seed=args.seed, lines=lines)
    positions, meta = args.positions, os.path.join(str(args.model), META_FILE)
    if positions is None and os.path.isfile(meta):  # a teacher trained here: the block length it learnt
        positions = json.loads(Path(meta).read_text())["settings"]["block_size"]
    scores = evaluate_line_completion(model, tokenizer, samples, progress=not args.quiet, positions=positions)
    summary = {**{k: v for k, v in scores.items() if k != "predictions"}, "lines": lines,
               "code_form": "py150" if py150 else "source", "positions": positions}  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json:  # the scores with every sample's target and prediction, so that a number can be read back
        rows = [{"path": sample["path"], "target": sample["target"], "prediction": prediction}
                for sample, prediction in zip(samples, scores["predictions"])]  # fmt: skip
        result = {"model": args.model, "split": "test", "seed": args.seed, **summary,
                  "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "samples": rows}  # fmt: skip
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _xtc(args) -> int:
    from compress_utils.io import check_output_file

    from .xtc_bench import (
        BenchSettings,
        SpeedSettings,
        StudentQuantization,
        run_bench,
        run_speed_bench,
        write_results,
        write_speed_results,
    )

    # the quantised students' embedding and scale flags: the quality run's and --speed-only's
    student_flags = [field.name for field in dataclasses.fields(StudentQuantization)]

    check_output_file(args.json, argument="--json")  # before the teacher training and measurements
    check_output_file(args.markdown or os.path.splitext(args.json)[0] + ".md", argument="--markdown")
    if args.speed_only:  # no teacher training: random teacher-shaped models, forward speed (and a training step)
        student = {key: getattr(args, key) for key in student_flags if getattr(args, key) is not None}
        result = run_speed_bench(
            SpeedSettings(threads=args.threads, train_step=args.train_step, rounds=args.rounds, **student)
        )
        print(write_speed_results(result, args.json, args.markdown))
        return 0
    overrides = {"threads": args.threads, "cache_dir": args.cache_dir, "variants": tuple(args.variants.split(",")),
                 "until_converged": args.until_converged, "student_packages": args.student_packages}  # fmt: skip
    for key, value in (
        ("teacher_minutes", args.minutes),
        ("teacher_steps", args.teacher_steps),
        ("teacher_tokens", args.teacher_tokens),
        ("teacher_dir", args.teacher_dir),
        *((key, getattr(args, key)) for key in student_flags),
        ("quantization_learning_rate", args.quantization_learning_rate),
        ("stage_steps", args.steps),
        ("samples", args.samples),
    ):
        if value is not None:
            overrides[key] = value
    settings = BenchSettings.full(**overrides) if args.full else BenchSettings(**overrides)
    print(write_results(run_bench(settings, progress=not args.quiet), args.json, args.markdown))
    return 0


def _results(args) -> int:
    from .render_results import main as render

    return render([args.readme])


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m benchmarks`` argument parser."""
    from compress_utils.cli_args import add_dataclass_arguments, positive_int
    from flab_hf.distillation import DistillationConfig
    from xtc_hf.constants_xtc import GRANULARITIES

    from .alpine_finetune import SCHEDULES, FinetuneConfig
    from .alpine_plans import ALL_MODES, PLAN_EXAMPLE
    from .alpine_speed import BENCHMARK_MODELS
    from .alpine_speed import MODES as SPEED_MODES
    from .flab_ablation import AblationSettings
    from .flab_calibration import CalibrationSettings
    from .flab_recovery import RecoverySettings
    from .flab_vocabulary import VocabularySettings
    from .xtc_eval import LINE_KINDS
    from .xtc_teacher import TEACHER_PRESETS, TeacherSettings

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet", action="store_true", help="Only warnings and errors; no progress bars.")
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("alpine-speed", help="Stock (sdpa) vs ALPINE all/even/odd: FLOPs, speed, memory.")
    bench.add_argument("--model", default="minilm", help=f"One of {BENCHMARK_MODELS} or a checkpoint folder.")
    bench.add_argument(
        "--modes", nargs="+", default=list(SPEED_MODES), metavar="MODE",
        help=f"Pruning modes to measure against stock: named modes ({', '.join(ALL_MODES[1:])}) or quoted plans, e.g. "
        f"'{PLAN_EXAMPLE}' (default: {' '.join(SPEED_MODES)}).",
    )  # fmt: skip
    bench.add_argument("--batch-size", type=positive_int, default=8)
    bench.add_argument("--seq-len", type=positive_int, default=512)
    bench.add_argument("--alpha", type=float, default=1.0)
    bench.add_argument("--no-merge", action="store_true", help="Drop pruned tokens instead of merging them.")
    bench.add_argument("--num-batches", type=positive_int, default=2)
    bench.add_argument(
        "--repeats", type=positive_int, default=5, help="Interleaved timing rounds (median is reported)."
    )
    bench.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "auto"], help="auto: the fastest dtype here."
    )
    bench.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's).")
    bench.add_argument("--corpus", default=None, help="Folder of source files (default: the Python stdlib).")
    bench.add_argument("--json", default=None, help="Write results here (plus .md table and .png plot).")
    bench.add_argument("--plot", default=None, help="Kept-length plot path (default: next to --json).")
    bench.set_defaults(func=_alpine_speed)

    finetune = commands.add_parser("alpine-finetune", help="Clone-detection accuracy retention with a stock Trainer.")
    # every FinetuneConfig field is an option (help and default from the dataclass); modes and schedules take
    # several words, since a plan string holds commas
    add_dataclass_arguments(finetune, FinetuneConfig, exclude=("modes", "schedules"))
    finetune.add_argument(
        "--modes", nargs="+", default=list(ALL_MODES), metavar="MODE",
        help=f"Modes from {', '.join(ALL_MODES)}, or plans of ';'-separated layers=, alpha=, merge=on|off settings, "
        f"quoted, e.g. '{PLAN_EXAMPLE}' (layer indices and ranges a-b; one alpha, or one per layer).",
    )  # fmt: skip
    finetune.add_argument(
        "--schedules", nargs="+", default=["a"], choices=SCHEDULES,
        help="a: prune from the first step; b: fine-tune unpruned first, then continue with pruning on, distilling "
        "from it (both: side by side in one JSON).",
    )  # fmt: skip
    finetune.add_argument(
        "--stored-only", action="store_true",
        help="Train nothing: report the runs of --modes x --schedules already stored in --results-dir (a grid "
        "measured so far).",
    )  # fmt: skip
    finetune.add_argument("--save-mode", default=None, help="Save this mode's fine-tuned model (one of --modes).")
    finetune.add_argument(
        "--save-schedule", default="a", choices=SCHEDULES, help="The schedule of --save-mode's model (default: a)."
    )
    finetune.add_argument("--save-to", default=None, help="Folder for --save-mode's model.")
    finetune.add_argument("--overwrite", action="store_true", help="Replace --save-to if it exists and is not empty.")
    finetune.add_argument("--json", default=None, help="Write results here (plus a .md table and a .png plot).")
    finetune.set_defaults(func=_alpine_finetune)

    flab = commands.add_parser("flab", help="Flab-Pruner: dense vs pruned vs recovered SmolLM2; JSON + Markdown.")
    flab.add_argument("--model", default="smollm2")
    flab.add_argument("--json", default="benchmarks/results/flab_smollm2.json")
    flab.add_argument("--full", action="store_true", help="more calibration, evaluation and recovery data")
    flab.add_argument("--humaneval", type=positive_int, default=None)
    flab.add_argument("--no-recover", action="store_true")
    flab.add_argument("--save-dir", default=None, help="also save the pruned and recovered checkpoints here")
    flab.add_argument(
        "--humaneval-variants",
        default=None,
        help="comma-separated variants that run HumanEval (default: all), e.g. dense,flab,flab_recovered",
    )
    flab.add_argument("--recovery-samples", type=positive_int, default=None, help="recovery training functions")
    flab.add_argument("--recovery-epochs", type=float, default=None, help="recovery epochs")
    flab.add_argument("--threads", type=positive_int, default=1, help="torch threads (1 gives stable ratios).")
    flab.set_defaults(func=_flab)

    vocab = commands.add_parser(
        "flab-vocab", help="Flab vocabulary: code-only vs chat-keeping (coverage, tokenization, HumanEval)."
    )
    add_dataclass_arguments(vocab, VocabularySettings)
    vocab.add_argument("--json", default="benchmarks/results/flab_vocabulary.json", help="Results (+ .md table).")
    vocab.set_defaults(func=_flab_vocab)

    calibration = commands.add_parser(
        "flab-calibration", help="Flab: layer and FFN choices against the calibration size (which size is stable)."
    )
    add_dataclass_arguments(calibration, CalibrationSettings)
    calibration.add_argument("--json", default="benchmarks/results/flab_calibration.json", help="Results (+ .md).")
    calibration.set_defaults(func=_flab_calibration)

    ablation = commands.add_parser(
        "flab-ablation", help="Flab ablation: each component alone and in pairs, HumanEval (164) and perplexity."
    )
    add_dataclass_arguments(ablation, AblationSettings)
    ablation.add_argument("--json", default="benchmarks/results/flab_ablation.json", help="Results (+ .md).")
    ablation.set_defaults(func=_flab_ablation)

    recovery = commands.add_parser(
        "flab-recovery", help="Flab recovery by distillation: pruning levels, each recovered on one token budget."
    )
    add_dataclass_arguments(recovery, RecoverySettings, exclude=("distill",))
    add_dataclass_arguments(recovery, DistillationConfig, exclude=("checkpoint_dir", "progress"))
    recovery.add_argument("--json", default="benchmarks/results/flab_recovery.json", help="Results (+ .md, .png).")
    recovery.set_defaults(func=_flab_recovery)

    humaneval = commands.add_parser("flab-humaneval", help="HumanEval pass@1 (greedy, chat template, executed).")
    humaneval.add_argument("--model", required=True, help="a causal-LM folder, or 'smollm2'")
    humaneval.add_argument("--humaneval", type=positive_int, default=164, help="number of problems (164 = all)")
    humaneval.set_defaults(func=_flab_humaneval)

    allocator = commands.add_parser(
        "cpu-allocator", help="A SmolLM2 training step with glibc's default allocator and with MALLOC_TUNABLES."
    )
    allocator.add_argument("--steps", type=positive_int, default=4, help="timed steps per setting (after 1 warm-up)")
    allocator.add_argument("--threads", type=positive_int, default=2, help="torch threads")
    allocator.add_argument("--json", default=None, help="results file (e.g. benchmarks/results/cpu_allocator.json)")
    allocator.set_defaults(func=_cpu_allocator)

    rows = commands.add_parser(
        "xtc-embedding-rows", help="What each low-bit word-embedding quantiser costs a trained teacher (KL, top-1)."
    )
    rows.add_argument("--teacher-dir", required=True, help="A trained teacher folder (xtc-teacher prints it).")
    rows.add_argument("--int8-rows", type=positive_int, nargs="+", default=[512, 1024, 2048, 4096],
                      help="Counts of most frequent tokens' rows kept at 8 bits.")  # fmt: skip
    rows.add_argument("--blocks", type=positive_int, default=48, help="Held-out valid-split blocks.")
    rows.add_argument("--seed", type=int, default=0, help="Seed of the random-rows control.")
    rows.add_argument("--json", default="benchmarks/results/xtc_embedding_rows.json", help="Results file.")
    rows.set_defaults(func=_xtc_embedding_rows)

    teacher = commands.add_parser("xtc-teacher", help="Train (or reuse) the CodeGPT-style GPT-2 teacher.")
    # the options are TeacherSettings' fields; the two budgets are checked while parsing, before any data is read
    add_dataclass_arguments(teacher, TeacherSettings, exclude=("steps", "tokens"))
    teacher.add_argument("--steps", type=positive_int, default=None, help="Exact number of steps (deterministic).")
    teacher.add_argument(
        "--tokens", type=positive_int, default=None, help="Training tokens (the budget; deterministic steps)."
    )
    teacher.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    teacher.add_argument(
        "--preset", choices=sorted(TEACHER_PRESETS), default=None,
        help="A named teacher (benchmarks.xtc_teacher.TEACHER_PRESETS; py150: the long run, 20M tokens); options "
        "given beside it change it.",
    )  # fmt: skip
    teacher.add_argument(
        "--results-dir", default=None,
        help="Also store the teacher's settings, metadata and learning curve here (one JSON per teacher) and plot "
        "every stored curve to curves.png.",
    )  # fmt: skip
    teacher.set_defaults(func=_xtc_teacher)

    evaluate = commands.add_parser("xtc-eval", help="Line-level completion EM/ES on the held-out test split.")
    evaluate.add_argument(
        "--model", required=True, help="Checkpoint folder (GPT-2 or XTC) with tokenizer, or 'smollm2' (a reference)."
    )
    evaluate.add_argument("--samples", type=positive_int, default=200)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", default=None, help="Also write the scores and every prediction to this file.")
    evaluate.add_argument(
        "--lines", choices=LINE_KINDS, default="code",
        help="Target lines: code lines (the paper's PY150 has no comments or docstrings) or any non-blank line.",
    )  # fmt: skip
    evaluate.add_argument(
        "--positions", type=positive_int, default=None,
        help="The longest sequence the model was trained on: prompt and completion stay within it (default: the "
        "block length of a teacher trained here, else the model's n_positions). XTC students of a teacher trained "
        "here: 256.",
    )  # fmt: skip
    evaluate.set_defaults(func=_xtc_eval)

    xtc = commands.add_parser("xtc", help="XTC Table 1 + 2 of the paper, measured here; writes JSON and Markdown.")
    xtc.add_argument("--json", required=True, help="Where to write the JSON result.")
    xtc.add_argument("--markdown", default=None, help="Where to write the Markdown table (default: JSON path .md).")
    xtc.add_argument("--full", action="store_true", help="Longer run: 30-min teacher, 600 steps/stage, 500 samples.")
    xtc.add_argument("--minutes", type=float, default=None, help="Teacher training budget in minutes.")
    xtc.add_argument("--teacher-steps", type=positive_int, default=None)
    xtc.add_argument("--teacher-dir", default=None,
                     help="Compress this trained teacher (an xtc-teacher folder) instead of training one.")  # fmt: skip
    xtc.add_argument("--teacher-tokens", type=positive_int, default=None, help="Teacher training tokens (the budget).")
    xtc.add_argument(
        "--until-converged",
        action="store_true",
        help="Distil each stage until held-out KL stops falling (--steps caps).",
    )
    xtc.add_argument(
        "--student-packages",
        action="store_true",
        help="Distil on the packages' sources the teacher also read, besides the stdlib train split.",
    )
    xtc.add_argument("--embedding-bits", type=int, default=None,
                     help="Word-embedding bits of the quantised students (default: their weight bits).")  # fmt: skip
    xtc.add_argument("--embedding-int8-rows", type=positive_int, default=None,
                     help="Word-embedding rows kept at 8 bits under lower --embedding-bits: the most frequent "
                     "training tokens' (default: none).")  # fmt: skip
    xtc.add_argument("--position-embedding-bits", type=int, default=None,
                     help="Position-embedding bits of the quantised students (default: float).")  # fmt: skip
    xtc.add_argument("--weight-granularity", choices=GRANULARITIES, default=None,
                     help="Weight scale of the quantised students per `matrix` (default, XTC's) or per `row`.")  # fmt: skip
    xtc.add_argument("--quantization-learning-rate", type=float, default=None,
                     help="Peak learning rate of the quantisation stage (default: the recipe's, 5e-4).")  # fmt: skip
    xtc.add_argument("--steps", type=positive_int, default=None, help="Optimizer steps per XTC stage.")
    xtc.add_argument("--samples", type=positive_int, default=None, help="Line-completion samples.")
    xtc.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1: shared machines).")
    xtc.add_argument("--variants", default="1W8A,6L,1W8A6L,2W8A6L")
    xtc.add_argument("--cache-dir", default=os.path.join("runs", "xtc"))
    xtc.add_argument(
        "--speed-only",
        action="store_true",
        help="Forward speed of teacher-shaped models only (random weights; the 1W8A6L "
        "takes the embedding and granularity flags).",
    )
    xtc.add_argument("--train-step", action="store_true", help="With --speed-only: time a QAT step, fp32 vs bf16.")
    xtc.add_argument(
        "--rounds", type=positive_int, default=7, help="With --speed-only: interleaved timing rounds (median)."
    )
    xtc.set_defaults(func=_xtc)

    results = commands.add_parser("results", help="Regenerate README's result tables from benchmarks/results/*.")
    results.add_argument("readme", nargs="?", default="README.md")
    results.set_defaults(func=_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a benchmark; bad input ends as ``python -m benchmarks: error: ...`` with exit code 2 (no traceback)."""
    from compress_utils.cli_args import run_main

    return run_main(build_parser(), argv)


__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
