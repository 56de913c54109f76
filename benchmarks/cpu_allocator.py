"""Training-step time with glibc's default allocator against :data:`compress_utils.allocator.MALLOC_TUNABLES`.

Each setting runs in its own fresh process (glibc reads it at start): a distillation step of SmolLM2-135M-Instruct
(the student and a frozen copy as teacher, KL on the logits, AdamW), bf16 autocast where bf16 is fast here, one
warm-up step, then ``steps`` timed ones. Reported per step: wall seconds, kernel (system) and user CPU seconds, minor
page faults; and the process's peak RSS.

Example:
    python -m benchmarks cpu-allocator --json benchmarks/results/cpu_allocator.json
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

logger = logging.getLogger(__name__)

SETTINGS = ("default", "tuned")


def _child(steps: int, batch_size: int, length: int, threads: int) -> dict:
    """One process's measurement (run by :func:`run_allocator_bench` in a fresh interpreter)."""
    import copy
    import resource
    import time

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from compress_utils.capability import resolve_bf16
    from compress_utils.embedded import smollm2_dir

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    student = AutoModelForCausalLM.from_pretrained(smollm2_dir())
    teacher = copy.deepcopy(student).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)
    ids = torch.randint(0, student.config.vocab_size, (batch_size, length))
    bf16 = resolve_bf16(None)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                target = teacher(input_ids=ids).logits
            logits = student(input_ids=ids).logits
        loss = F.kl_div(F.log_softmax(logits.float(), -1), F.log_softmax(target.float(), -1), log_target=True,
                        reduction="batchmean")  # fmt: skip
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "bf16": bf16,
        "seconds_per_step": round(wall / steps, 3),
        "system_seconds_per_step": round((after.ru_stime - before.ru_stime) / steps, 3),
        "user_seconds_per_step": round((after.ru_utime - before.ru_utime) / steps, 3),
        "page_faults_per_step": (after.ru_minflt - before.ru_minflt) // steps,
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),  # Linux reports kilobytes
    }


def run_allocator_bench(steps: int = 4, batch_size: int = 8, length: int = 256, threads: int = 2) -> dict:
    """Both settings, each in a fresh process; returns the result dict (JSON-ready)."""
    import os

    from compress_utils.allocator import MALLOC_TUNABLES, is_glibc, tuned_environment
    from compress_utils.capability import probe

    if not is_glibc():
        raise OSError("the allocator benchmark measures glibc's settings; this Python does not run on glibc.")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("length", length), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
    default = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    environments = {"default": default, "tuned": tuned_environment(default)}
    rows = {}
    for setting in SETTINGS:
        logger.info("allocator benchmark: %s settings, %d steps", setting, steps)
        code = (
            "import json, sys; from benchmarks.cpu_allocator import _child; "
            f"print(json.dumps(_child({steps}, {batch_size}, {length}, {threads})))"
        )
        done = subprocess.run([sys.executable, "-c", code], env=environments[setting], capture_output=True,
                              text=True, check=True)  # fmt: skip
        rows[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "benchmark": "cpu_allocator",
        "model": "SmolLM2-135M-Instruct distillation step (student + frozen copy as teacher)",
        "settings": {
            "steps": steps,
            "batch_size": batch_size,
            "length": length,
            "threads": threads,
            "tunables": MALLOC_TUNABLES,
        },  # fmt: skip
        "capability": probe(),
        "rows": rows,
        "speedup": round(rows["default"]["seconds_per_step"] / rows["tuned"]["seconds_per_step"], 2),
        "peak_rss_ratio": round(rows["tuned"]["peak_rss_mb"] / rows["default"]["peak_rss_mb"], 3),
    }


def markdown(results: dict) -> str:
    """The README table of a result."""
    lines = [
        f"{results['model']}, batch {results['settings']['batch_size']} x {results['settings']['length']} tokens, "
        f"{results['settings']['threads']} threads, each allocator in a fresh process.",
        "",
        "| allocator | s / step | kernel s / step | user s / step | page faults / step | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        row = results["rows"][setting]
        lines.append(
            f"| {setting} | {row['seconds_per_step']} | {row['system_seconds_per_step']} | "
            f"{row['user_seconds_per_step']} | {row['page_faults_per_step']:,} | {row['peak_rss_mb']} |"
        )
    lines += ["", f"Speed-up {results['speedup']}x, peak RSS x{results['peak_rss_ratio']}."]
    return "\n".join(lines)


__all__ = ["SETTINGS", "markdown", "run_allocator_bench"]
