"""The Flab ablation and the shared level machinery on a tiny Llama (the real run: `python -m benchmarks flab-ablation`)."""

import dataclasses
import re
import sys
from pathlib import Path

import pytest

import benchmarks.flab_levels as levels
from benchmarks.flab_ablation import AblationSettings, ablation_markdown, run_ablation_bench
from benchmarks.flab_levels import Level, parse_level, pruned_result_path, same_answers
from benchmarks.flab_recovery import RecoverySettings
from flab_hf.pruning import FFN_RULES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flab_hf"))
from flab_testing import tiny_model, tiny_tokenizer  # noqa: E402


@pytest.mark.parametrize(
    ("name", "level"),
    [("vocab", Level(True, 0, 0)), ("4L", Level(False, 4, 0)), ("ffn", Level(False, 0, levels.FFN_NEURONS)),
     ("vocab+4L+ffn", Level(True, 4, levels.FFN_NEURONS)), ("ffn256+2L", Level(False, 2, 256))],
)  # fmt: skip
def test_levels_are_parsed_from_their_names(name, level):
    assert parse_level(name) == level


@pytest.mark.parametrize("name", ["", "vocab+vocab", "4L+2L", "0L", "ffn0", "vocab+", "layers"])
def test_a_bad_level_is_refused_naming_the_argument_and_the_value(name):
    with pytest.raises(ValueError, match=re.escape(f"`levels` has {name!r}: a level joins")):
        AblationSettings(levels=(name,))


def test_same_answers_compares_hashes():
    assert same_answers({"answer_hashes": ["a", "b"]}, {"answer_hashes": ["a", "c"]}) == 0.5
    assert same_answers({}, {"answer_hashes": ["a"]}) is None


def test_pruned_rows_are_shared_with_the_recovery_bench(tmp_path):
    ablation = AblationSettings(results_dir=str(tmp_path), threads=1)
    recovery = RecoverySettings(results_dir=str(tmp_path), levels=("vocab",), chat_share=0.5)
    recovery.distill.train_tokens = 7
    assert pruned_result_path(ablation, "vocab+4L") == pruned_result_path(recovery, "vocab+4L")
    assert pruned_result_path(ablation, "vocab+4L").name.startswith("pruned-vocab+4L-")
    assert pruned_result_path(ablation, "4L") != pruned_result_path(ablation, "vocab+4L")
    calibrated = AblationSettings(results_dir=str(tmp_path), calibration_samples=32)
    assert pruned_result_path(calibrated, "vocab+4L") != pruned_result_path(ablation, "vocab+4L")
    assert pruned_result_path(AblationSettings(), "vocab") is None


def _fake_humaneval(calls):
    def humaneval_pass(model, tokenizer, problems, max_new_tokens, batch_size, progress, keep_answers=False):
        calls.append(len(problems))
        return {"pass@1": 0.0, "passed": 0, "problems": len(problems), "passed_tasks": [],
                "answers": ["```python\npass\n```"] * len(problems)}  # fmt: skip

    return humaneval_pass


def _never(*args, **kwargs):
    raise AssertionError("a stored row must be read back, not pruned again")


def test_each_variant_is_pruned_measured_and_stored_once(monkeypatch, tmp_path):
    monkeypatch.setattr(levels, "load_smollm2", lambda: (tiny_model(layers=4, max_position_embeddings=512),
                                                         tiny_tokenizer()))  # fmt: skip
    calls = []
    monkeypatch.setattr(levels, "humaneval_pass", _fake_humaneval(calls))  # HumanEval's own tests run it for real
    settings = AblationSettings(
        levels=("vocab", "1L+ffn8"), corpus_chars=40_000, vocab_packages=("_pytest",), vocab_min_count=1,
        calibration_samples=2, calibration_length=32, eval_windows=2, humaneval=2, threads=1,
        work_dir=str(tmp_path / "work"), results_dir=str(tmp_path / "rows"),
    )  # fmt: skip
    result = run_ablation_bench(settings, progress=False)
    vocab, pair = result["variants"]["vocab"], result["variants"]["1L+ffn8"]
    full = len(tiny_tokenizer())
    assert vocab["vocabulary"] < full and vocab["removed_layers"] == [] and vocab["ffn_rule"] is None
    assert pair["vocabulary"] == full and len(pair["removed_layers"]) == 1 and pair["ffn_rule"] in FFN_RULES
    assert pair["param_ratio"] < vocab["param_ratio"] < 1
    assert pair["stdlib_test"]["kl_to_dense"] > 0 and vocab["same_answer_as_dense"] == 1.0
    assert calls == [2, 2, 2]  # dense, then each variant
    stored = sorted(path.name.split("-")[0] for path in (tmp_path / "rows").iterdir())
    assert stored == ["dense", "pruned", "pruned"]
    table = ablation_markdown(result)
    assert f"| 1L+ffn8 | layers {pair['removed_layers'][0]}; 8 FFN/layer ({pair['ffn_rule']}) |" in table
    assert f"| vocab | {vocab['vocabulary']:,} tokens |" in table and "vocab_humaneval_ge_dense_minus_1 met" in table
    # another machine (no work folder) reads the stored rows back: nothing is pruned or generated again
    monkeypatch.setattr(levels, "flab_prune", _never)
    again = run_ablation_bench(dataclasses.replace(settings, work_dir=str(tmp_path / "elsewhere")), progress=False)
    assert again["variants"] == result["variants"] and calls == [2, 2, 2]


def test_a_recovery_level_reads_its_pruned_row_from_the_shared_store(monkeypatch, tmp_path):
    from benchmarks.flab_recovery import run_recovery_bench

    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = (  # the recovery data holds the dense model's chat answers
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    monkeypatch.setattr(levels, "load_smollm2", lambda: (tiny_model(layers=4, max_position_embeddings=512), tokenizer))
    calls = []
    monkeypatch.setattr(levels, "humaneval_pass", _fake_humaneval(calls))
    common = dict(
        levels=("1L",), corpus_chars=40_000, vocab_packages=("_pytest",), calibration_samples=2, calibration_length=32,
        eval_windows=2, humaneval=2, threads=1, work_dir=str(tmp_path / "work"), results_dir=str(tmp_path / "rows"),
    )  # fmt: skip
    pruned = run_ablation_bench(AblationSettings(**common), progress=False)["variants"]["1L"]
    settings = RecoverySettings(speed_levels=(), answers=2, answer_tokens=4, train_chars=20_000, curve_windows=2,
                                **common)  # fmt: skip
    settings.distill.train_tokens, settings.distill.block_size, settings.distill.batch_size = 128, 32, 2
    settings.distill.progress = False
    monkeypatch.setattr(levels, "flab_prune", _never)  # the pruned model is in the work folder already
    row = run_recovery_bench(settings, progress=False)["levels"]["1L"]
    del pruned["same_answer_as_dense"]
    assert row["pruned"] == pruned and row["removed_layers"] == pruned["removed_layers"]
    assert row["recovery"]["tokens"] >= 128 and row["recovered"]["param_ratio"] == pruned["param_ratio"]
    assert calls == [2, 2, 2]  # dense and the pruned level once each (shared), then the recovered model
