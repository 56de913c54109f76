"""XTC in 2 processes: ``xtc_compress`` (layer-reduction distillation, then 1-bit quantisation-aware distillation) on
a tiny GPT-2, line-completion evaluation sharded over the processes, and a ``TimeBudgetCallback`` whose budget runs
out on one process only."""

import os
import sys

import torch
from datasets import Dataset
from ddp_common import Recorder, digest, use_test_helpers, world, write
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from benchmarks import xtc_eval as evaluation
from benchmarks.xtc_eval import evaluate_line_completion, line_completion_samples
from xtc_hf import XTCGPT2LMHeadModel, XTCRecipeConfig, xtc_compress
from xtc_hf.callbacks import TimeBudgetCallback
from xtc_hf.recipe import stage_reports

use_test_helpers("flab_hf")
from flab_testing import CODE, tiny_tokenizer  # noqa: E402  (a small byte-level BPE tokenizer)


def completion_samples() -> list[dict]:
    """5 line-completion samples from the snippets (3 for process 0, 2 for process 1)."""
    return line_completion_samples([{"path": f"{i}.py", "text": text} for i, text in enumerate(CODE)], 5)


def raw_continuations(generated: str) -> str:
    """Stands in for ``completed_line``: a random tiny model hardly ever ends a line, which would make every
    prediction ``""``; its raw continuations differ per sample, so they show whether the gathered order is right."""
    return generated.strip()


class _ExhaustBudgetOnRankZero(TrainerCallback):
    """Pretend an hour has passed on process 0 only, at the start of step 3: its clock alone is over budget."""

    def __init__(self, budget: TimeBudgetCallback):
        self.budget = budget

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 2 and world()["rank"] == 0:
            self.budget._start -= 3600.0


def budget_run(teacher, dataset, out: str) -> dict:
    """Without agreeing on when to stop, process 0 would leave the loop and process 1 would wait forever in the next
    gradient all-reduce."""
    torch.manual_seed(0)
    student = XTCGPT2LMHeadModel.from_gpt2(teacher, teacher_layers=[1, 3], weight_bits=32, activation_bits=32)
    budget = TimeBudgetCallback(minutes=10.0)
    recorder = Recorder()
    args = TrainingArguments(
        output_dir=os.path.join(out, "budget"), max_steps=20, per_device_train_batch_size=2, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    callbacks = [budget, _ExhaustBudgetOnRankZero(budget), recorder]
    Trainer(model=student, args=args, train_dataset=dataset, callbacks=callbacks).train()
    return {"steps": recorder.result["steps"], "max_steps": args.max_steps}


def main(out: str) -> None:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    config = GPT2Config(
        n_layer=4, n_embd=32, n_head=2, vocab_size=vocab, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    teacher = GPT2LMHeadModel(config).eval()
    ids = torch.randint(1, vocab, (64, 16), generator=torch.Generator().manual_seed(2)).tolist()
    dataset = Dataset.from_dict({"input_ids": ids, "labels": ids})
    recipe = XTCRecipeConfig(
        student_layers="odd", weight_bits=1, activation_bits=8, layer_reduction_steps=8, quantization_steps=4,
        batch_size=4, logging_steps=1, save_steps=4, bf16=False, learning_rate=2e-3, warmup_ratio=0.0,
    )  # fmt: skip
    student = xtc_compress(teacher, recipe, dataset, output_dir=os.path.join(out, "xtc_runs"))
    reports = stage_reports(os.path.join(out, "xtc_runs"))
    evaluation.completed_line = raw_continuations
    scores = evaluate_line_completion(student, tokenizer, completion_samples(), max_new_tokens=24, progress=False)
    write(
        out,
        "xtc",
        {
            "stages": {
                name: {"steps": report["steps"], "losses": [entry["loss"] for entry in report["log"]]}
                for name, report in reports.items()
            },
            "packed": bool(student.config.packed),
            "checkpoint": student.xtc_checkpoint,
            "digest": digest(student),
            "completion": scores,
            "budget": budget_run(teacher, dataset, out),
        },
    )


if __name__ == "__main__":
    main(sys.argv[1])
