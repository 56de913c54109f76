"""Recovery: doctest samples from real code, teacher verification, LoRA training with the recovery callback."""

import copy
import json
import os

import pytest
import torch
from flab_testing import CODE, tiny_model, tiny_tokenizer

from flab_hf import FlabConfig, flab_prune
from flab_hf.callbacks import LoRARecoveryCallback
from flab_hf.data import (
    extract_doctest_samples,
    function_body,
    humaneval_completion,
    run_tests,
    sample_program,
    split_of,
    stdlib_recovery_samples,
)
from flab_hf.recovery import RecoveryConfig, lora_recover, teacher_verified_samples, tokenize_samples

MODULE = '''import math

def area(r):
    """Area of a circle.

    >>> round(area(1.0), 4)
    3.1416
    """
    return math.pi * r * r

def helper(x):
    return x
'''


def test_doctest_sample_extraction_and_execution():
    [sample] = extract_doctest_samples(MODULE, "geometry.py")
    assert sample["name"] == "area" and sample["prompt"].startswith("def area(r):")
    assert sample["reference"].strip() == "return math.pi * r * r"
    assert run_tests(sample_program(sample, sample["reference"]))
    assert not run_tests(sample_program(sample, "    return 3\n"))
    assert not run_tests(sample_program(sample, "    while True:\n        pass\n"), timeout=2)


def test_helpers():
    assert function_body("    return 1\n\nprint('x')\n") == "    return 1\n\n"
    assert split_of("a/b.py") == split_of("a/b.py")
    problem = {"entry_point": "f", "prompt": "def f(x):\n    '''doc'''\n"}
    assert "def f(x):" in humaneval_completion(problem, "Sure!\n```python\ndef f(x):\n    return x\n```")
    assert humaneval_completion(problem, "```python\n    return x\n```") == "    return x\n"


def test_teacher_replaces_only_verified_references(monkeypatch):
    [sample] = extract_doctest_samples(MODULE, "geometry.py")
    samples = [sample, {**sample, "task_id": "second"}]
    answers = iter(["    return math.pi * r ** 2\n", "    return 0\n"])
    monkeypatch.setattr(
        "flab_hf.recovery.generate_completions", lambda *args, **kwargs: [next(answers), next(answers)]
    )
    out, stats = teacher_verified_samples(None, None, samples, progress=False)
    assert [s["source"] for s in out] == ["teacher", "reference"]
    assert out[0]["target"] == "    return math.pi * r ** 2\n" and out[1]["target"] == sample["reference"]
    assert stats["teacher_passed"] == 1


def test_samples_without_tests_keep_their_reference_and_skip_generation(monkeypatch):
    untested = extract_doctest_samples(MODULE.replace(">>>", "Example:"), "geometry.py", require_doctest=False)
    assert [s["name"] for s in untested] == ["area"] and untested[0]["test"] is None
    assert extract_doctest_samples(MODULE.replace(">>>", "Example:"), "geometry.py") == []
    [tested] = extract_doctest_samples(MODULE, "geometry.py")
    prompts = []
    monkeypatch.setattr(
        "flab_hf.recovery.generate_completions",
        lambda model, tokenizer, batch, *args, **kwargs: prompts.extend(batch) or ["    return 0\n"] * len(batch),
    )
    out, stats = teacher_verified_samples(None, None, [untested[0], tested], progress=False)
    assert prompts == [tested["prompt"]]  # only the sample with tests is generated
    assert [s["source"] for s in out] == ["reference", "reference"]
    assert stats == {"samples": 2, "with_tests": 1, "teacher_passed": 0, "teacher_pass_rate": 0.0}


def test_recovery_samples_put_doctests_first(tmp_path):
    (tmp_path / "geometry.py").write_text(MODULE)
    (tmp_path / "plain.py").write_text('def double(x):\n    """Twice x."""\n    return 2 * x\n')
    assert split_of("geometry.py") == split_of("plain.py") == "train"
    samples = stdlib_recovery_samples("train", limit=5, root=str(tmp_path))
    assert [s["name"] for s in samples] == ["area", "double"]
    assert [s["name"] for s in stdlib_recovery_samples("train", limit=1, root=str(tmp_path))] == ["area"]
    assert all(s["test"] is None for s in samples if s["name"] == "double")


def test_lora_recovery_callback_merges_and_saves(tmp_path):
    dense = tiny_model("llama", layers=3)
    tokenizer = tiny_tokenizer()
    pruned, pruned_tokenizer, report = flab_prune(
        dense, tokenizer, CODE * 3,
        FlabConfig(layers_to_prune=1, ffn_neurons=8, calibration_samples=2, calibration_length=16, progress=False),
    )  # fmt: skip
    kept = report["kept_token_ids"]
    samples = [{"prompt": "def add(a, b):\n", "target": "    return a + b\n"}] * 4
    features = tokenize_samples(pruned_tokenizer, samples, 64)
    assert features[0]["labels"][: len(pruned_tokenizer("def add(a, b):\n")["input_ids"])] == [-100] * len(
        pruned_tokenizer("def add(a, b):\n")["input_ids"]
    )
    eval_ids = torch.tensor([pruned_tokenizer(CODE[0])["input_ids"][:16]])
    before = copy.deepcopy(pruned)
    recovered, log = lora_recover(
        pruned, pruned_tokenizer, samples, RecoveryConfig(lora_r=4, lora_alpha=8, epochs=2, batch_size=2, progress=False),
        dense_model=dense, eval_ids=eval_ids, kept_token_ids=kept, output_dir=tmp_path / "recovered",
    )  # fmt: skip
    assert type(recovered).__name__ == type(before).__name__ and not hasattr(recovered, "peft_config")
    assert log["steps"] == 4 and len(log["kl_history"]) == 2 and log["kl_before"] > 0
    changed = any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), recovered.state_dict().values()))
    assert changed
    # recovery must move the pruned model towards the dense one, not merely change it
    after = LoRARecoveryCallback(dense, eval_ids, kept_token_ids=kept).kl_to_dense(recovered)
    assert after < log["kl_before"], (after, log)
    saved = json.loads((tmp_path / "recovered" / "config.json").read_text())
    assert saved["model_type"] == "llama" and "tokenizer.json" in os.listdir(tmp_path / "recovered")
    callback = LoRARecoveryCallback(dense, eval_ids, kept_token_ids=kept)
    assert callback.kl_to_dense(before) == pytest.approx(log["kl_before"], rel=1e-5)


@pytest.mark.parametrize("kwargs", [dict(lora_r=0), dict(lora_dropout=1.0), dict(learning_rate=0)])
def test_recovery_config_validation(kwargs):
    with pytest.raises(ValueError):
        RecoveryConfig(**kwargs)


def test_empty_training_set():
    with pytest.raises(ValueError, match="empty"):
        lora_recover(tiny_model("llama", layers=2), tiny_tokenizer(), [])
