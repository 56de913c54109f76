"""Flab-Pruner in 2 processes: the sharded KL layer search, ``flab_prune``, LoRA recovery (``lora_recover``) and
recovery by distillation from the dense model (``distill_recover``).

:func:`layer_search` is also imported by the test and run in one process, to compare the sharded search with it.
"""

import copy
import os
import sys

import torch
from ddp_common import digest, use_test_helpers, write

use_test_helpers("flab_hf")
from flab_testing import CODE, tiny_model, tiny_tokenizer  # noqa: E402

from flab_hf import FlabConfig, flab_prune  # noqa: E402
from flab_hf.distillation import DistillationConfig, distill_recover  # noqa: E402
from flab_hf.distillation_data import distillation_blocks  # noqa: E402
from flab_hf.pruning import CalibrationRunner, ffn_importance, select_layers_cosine, select_layers_kl  # noqa: E402
from flab_hf.recovery import RecoveryConfig, lora_recover  # noqa: E402


def layer_search() -> dict:
    """KL and cosine layer search and FFN importance on a tiny Llama: 8 calibration sequences in 4 micro-batches."""
    model = tiny_model("llama", layers=5)
    calibration = torch.randint(0, model.config.vocab_size, (8, 24), generator=torch.Generator().manual_seed(3))
    runner = CalibrationRunner(model, calibration, batch_size=2)
    references = runner.full_log_probs()
    search = select_layers_kl(model, runner, references, 3, progress=False)
    cosine = select_layers_cosine(model, runner, 2)
    importance = ffn_importance(model, runner)
    return {
        "local_batches": len(runner.batches),
        "removed": search["removed"],
        "kl": search["kl"],
        "scores": [{str(k): v for k, v in step.items()} for step in search["scores"]],
        "cosine_removed": cosine["removed"],
        "cosine_scores": cosine["scores"],
        "importance": [values.tolist() for values in importance],
        "mean_kl_dense": runner.mean_kl(references),
    }


def benchmark_metrics() -> dict:
    """The benchmark's held-out quality (5 batches: an uneven split) and HumanEval pass@1 on 5 real problems, where
    the "model" answers with the canonical solution for even-numbered problems (really executed)."""
    from benchmarks import flab_bench as benchmark
    from flab_hf.data import HUMANEVAL_INSTRUCTION, humaneval_problems

    dense = tiny_model("llama", layers=3)
    pruned = tiny_model("llama", layers=3)
    ids = torch.randint(0, dense.config.vocab_size, (10, 12), generator=torch.Generator().manual_seed(5))
    problems = humaneval_problems(5)
    answers = {
        HUMANEVAL_INSTRUCTION.format(prompt=p["prompt"]): "```python\n" + p["prompt"] + (
            p["canonical_solution"] if i % 2 == 0 else "    return None\n") + "```"
        for i, p in enumerate(problems)
    }  # fmt: skip
    seen = []
    benchmark.generate_completions = lambda model, tokenizer, prompts, *args, **kwargs: [
        answers[p] for p in seen.extend(prompts) or prompts
    ]
    result = {
        "quality": benchmark.quality(pruned, dense, ids, None, batch_size=2),
        "humaneval": benchmark.humaneval_pass(None, None, problems, 8, 2, False),
    }
    result["local_problems"] = len(seen)
    return result


def recovery_samples() -> list[dict]:
    """Prompt = first line of a snippet, target = the rest: 16 samples (8 per process)."""
    samples = []
    for snippet in CODE:
        first, _, rest = snippet.partition("\n")
        samples.append({"prompt": first + "\n", "target": rest})
    return (samples * 4)[:16]


def main(out: str) -> None:
    search = layer_search()
    metrics = benchmark_metrics()
    dense, tokenizer = tiny_model("llama", layers=4), tiny_tokenizer()
    config = FlabConfig(
        layers_to_prune=1, ffn_neurons=[8, 24, 40], calibration_samples=4, calibration_length=16, batch_size=2,
        progress=False,
    )  # fmt: skip
    pruned, pruned_tokenizer, report = flab_prune(dense, tokenizer, CODE * 3, config)
    pruned_digest = digest(pruned)
    eval_ids = torch.tensor([pruned_tokenizer(CODE[1])["input_ids"][:24]])
    recovery = RecoveryConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, epochs=2, batch_size=2, learning_rate=5e-3, progress=False,
        checkpoint_dir=os.path.join(out, "flab_checkpoints"), save_steps=4,
    )  # fmt: skip
    distilled, distilled_log = distill_recover(
        copy.deepcopy(pruned), pruned_tokenizer, dense,
        distillation_blocks(pruned_tokenizer, CODE * 3, [], block_size=16, tokens=512, chat_share=0.0)["blocks"],
        DistillationConfig(train_tokens=1024, block_size=16, batch_size=4, learning_rate=3e-3, curve_every=256,
                           bf16=False, progress=False, checkpoint_dir=os.path.join(out, "flab_distill"), save_steps=4),
        kept_token_ids=report["kept_token_ids"], eval_ids=eval_ids, output_dir=os.path.join(out, "flab_distilled"),
    )  # fmt: skip
    recovered, log = lora_recover(
        pruned, pruned_tokenizer, recovery_samples(), recovery, dense_model=dense, eval_ids=eval_ids,
        kept_token_ids=report["kept_token_ids"], output_dir=os.path.join(out, "flab_recovered"),
    )  # fmt: skip
    write(
        out,
        "flab",
        {
            "search": search,
            "metrics": metrics,
            "prune": {"removed_layers": report["removed_layers"], "kl_final": report["kl_final"]},
            "pruned_type": type(pruned).__name__,
            "pruned_digest": pruned_digest,
            "losses": log["train_losses"],
            "steps": log["steps"],
            "kl_before": log.get("kl_before"),
            "kl_history": log.get("kl_history"),
            "digest": digest(recovered),
            "distilled": {
                "steps": distilled_log["steps"],
                "tokens": distilled_log["tokens"],
                "losses": distilled_log["train_losses"],
                "curve": distilled_log["curve"],
                "digest": digest(distilled),
            },
        },
    )


if __name__ == "__main__":
    main(sys.argv[1])
