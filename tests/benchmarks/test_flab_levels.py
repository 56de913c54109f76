"""The pruning levels' calibration choices (the real runs are ``flab-recovery`` and ``flab-ablation``)."""

import sys
from pathlib import Path

import pytest
import torch

from benchmarks.flab_levels import level_calibration, prune_key, pruned_result_path
from benchmarks.flab_recovery import RecoverySettings, _recovery_dirs
from flab_hf.recipe import calibration_ids

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flab_hf"))
from flab_testing import tiny_tokenizer  # noqa: E402

CODE = ["def add(a, b):\n    return a + b\n" * 8] * 6
CHAT = [
    "<|im_start|>user\nWrite a function.<|im_end|>\n<|im_start|>assistant\nHere it is, in prose.<|im_end|>\n" * 8
] * 6


def test_calibration_comes_from_code_chat_or_half_each():
    tokenizer, calls = tiny_tokenizer(), []

    def chat():
        calls.append(1)
        return CHAT

    code = level_calibration(tokenizer, "code", CODE, chat, 6, 16, None)
    assert torch.equal(code, calibration_ids(tokenizer, CODE, 6, 16, None)) and not calls  # no answers generated
    chats = level_calibration(tokenizer, "chat", CODE, chat, 6, 16, None)
    assert torch.equal(chats, calibration_ids(tokenizer, CHAT, 6, 16, None)) and len(calls) == 1
    mixed = level_calibration(tokenizer, "mixed", CODE, chat, 5, 16, None)
    assert mixed.shape == (5, 16)
    assert torch.equal(mixed[:3], calibration_ids(tokenizer, CODE, 3, 16, None))  # the odd window goes to code
    assert torch.equal(mixed[3:], calibration_ids(tokenizer, CHAT, 2, 16, None))
    with pytest.raises(ValueError, match="`source` must be one of .*got 'prose'"):
        level_calibration(tokenizer, "prose", CODE, chat, 4, 16, None)


def test_the_calibration_source_names_its_own_folders_and_rows(tmp_path):
    with pytest.raises(ValueError, match="`calibration_source` must be one of .*got 'docs'"):
        RecoverySettings(calibration_source="docs")
    code = RecoverySettings(results_dir=str(tmp_path))
    mixed = RecoverySettings(results_dir=str(tmp_path), calibration_source="mixed")
    # the default leaves every stored name as it was before the setting existed
    assert prune_key("vocab+4L+ffn", code) == prune_key("vocab+4L+ffn", RecoverySettings(calibration_source="code"))
    assert prune_key("vocab+4L+ffn", mixed) != prune_key("vocab+4L+ffn", code)
    assert pruned_result_path(mixed, "vocab+4L+ffn") != pruned_result_path(code, "vocab+4L+ffn")
    assert _recovery_dirs("vocab+4L+ffn", mixed, tmp_path) != _recovery_dirs("vocab+4L+ffn", code, tmp_path)
