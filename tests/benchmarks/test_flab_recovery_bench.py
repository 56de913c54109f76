"""The recovery benchmark's pieces on tiny inputs (the real run is ``python -m benchmarks flab-recovery``)."""

import json

import pytest
from transformers import AutoTokenizer

from benchmarks.flab_levels import token_windows
from benchmarks.flab_recovery import (
    RecoverySettings,
    _recovery_dirs,
    _run_level,
    _stored_row,
    frontier_points,
    level_result_path,
    nothing_to_recover,
    plot_frontier,
    plot_recovery_curve,
    recovery_markdown,
    zoo_choice,
)
from compress_utils.corpus import package_texts, text_chunks
from compress_utils.embedded import minilm_dir
from flab_hf.distillation import DistillationConfig


def test_chunks_and_windows_are_deterministic():
    texts = ["a" * 1000, "b" * 1000]
    chunks = text_chunks(texts, 3, chars=500)
    assert chunks == text_chunks(texts, 3, chars=500) and len(chunks) == 3 and chunks[0] == "a" * 500
    assert all(len(chunk) == 500 for chunk in chunks)
    with pytest.raises(ValueError, match="fewer than one chunk"):
        text_chunks(["short"], 2, chars=500)
    windows = token_windows(
        AutoTokenizer.from_pretrained(minilm_dir()), ["def add(a, b):\n    return a + b\n"] * 20, 16
    )
    assert windows.dim() == 2 and windows.shape[1] == 16
    assert package_texts("accelerate") and all(isinstance(text, str) for text in package_texts("accelerate")[:3])
    with pytest.raises(ValueError, match="package='no_such_package_here': no installed package"):
        package_texts("no_such_package_here")


def test_settings_refuse_unknown_levels_and_bad_sizes():
    assert RecoverySettings().distill == DistillationConfig()
    with pytest.raises(ValueError, match="levels"):
        RecoverySettings(levels=("vocab+4X",))
    with pytest.raises(ValueError, match="speed_levels"):
        RecoverySettings(speed_levels=("4L+4L",))
    with pytest.raises(ValueError, match="humaneval"):
        RecoverySettings(humaneval=200)
    with pytest.raises(ValueError, match="chat_share"):
        RecoverySettings(chat_share=1.5)
    with pytest.raises(ValueError, match="`vocab_packages` holds 'accelerate', the held-out foreign code"):
        RecoverySettings(vocab_packages=("numpy", "accelerate"))
    with pytest.raises(ValueError, match="vocab_packages='no_such_package_here'"):
        RecoverySettings(vocab_packages=("no_such_package_here",))
    with pytest.raises(ValueError, match="vocab_min_count"):
        RecoverySettings(vocab_min_count=0)
    with pytest.raises(ValueError, match="layer_method"):
        RecoverySettings(layer_method="random")
    with pytest.raises(ValueError, match="assistant_only_loss"):
        RecoverySettings(assistant_only_loss="yes")
    with pytest.raises(ValueError, match="clean_answers"):
        RecoverySettings(clean_answers=1)


def test_a_level_row_is_stored_once_and_read_back_by_its_settings(tmp_path):
    settings = RecoverySettings(results_dir=str(tmp_path))
    assert level_result_path(RecoverySettings(), "vocab") is None  # off by default
    path = level_result_path(settings, "vocab+2L")
    assert path.parent == tmp_path and path.name.startswith("vocab+2L-")
    # what to run, where, threads and checkpoint cadence change no number: same file
    same = RecoverySettings(results_dir=str(tmp_path / "x"), levels=("vocab",), threads=1, work_dir="elsewhere")
    same.distill.save_steps = 7
    assert level_result_path(same, "vocab+2L").name == path.name
    # the level, the training budget or the data do
    assert level_result_path(settings, "vocab+4L").name != path.name
    budget = RecoverySettings(results_dir=str(tmp_path))
    budget.distill.train_tokens = 2_000_000
    assert level_result_path(budget, "vocab+2L") != path
    assert level_result_path(RecoverySettings(results_dir=str(tmp_path), chat_share=0.7), "vocab+2L") != path
    answers_only = RecoverySettings(results_dir=str(tmp_path), assistant_only_loss=True)
    assert level_result_path(answers_only, "vocab+2L") != path
    assert _recovery_dirs("vocab+2L", answers_only, tmp_path) != _recovery_dirs("vocab+2L", settings, tmp_path)
    clean = RecoverySettings(results_dir=str(tmp_path), clean_answers=True)
    assert level_result_path(clean, "vocab+2L") not in (path, level_result_path(answers_only, "vocab+2L"))
    assert _recovery_dirs("vocab+2L", clean, tmp_path) != _recovery_dirs("vocab+2L", settings, tmp_path)
    block = RecoverySettings(results_dir=str(tmp_path), layer_method="block")
    assert level_result_path(block, "vocab+2L") != path
    assert _recovery_dirs("vocab+2L", block, tmp_path) != _recovery_dirs("vocab+2L", settings, tmp_path)
    hidden = RecoverySettings(results_dir=str(tmp_path))
    hidden.distill.hidden_weight = 0.5
    assert level_result_path(hidden, "vocab+2L") != path
    assert _recovery_dirs("vocab+2L", hidden, tmp_path) != _recovery_dirs("vocab+2L", settings, tmp_path)
    # the dense row depends on the measurement only
    assert level_result_path(budget, "dense") == level_result_path(settings, "dense")
    assert level_result_path(RecoverySettings(results_dir=str(tmp_path), humaneval=20), "dense") != level_result_path(
        settings, "dense"
    )
    calls = []

    def compute():
        calls.append(1)
        return {"passed": len(calls)}

    assert _stored_row(settings, "vocab+2L", compute) == {"passed": 1}
    assert _stored_row(settings, "vocab+2L", compute) == {"passed": 1} and len(calls) == 1  # read back
    assert _stored_row(RecoverySettings(), "vocab+2L", compute) == {"passed": 2}  # off: always computed


def _row(ppl, passed):
    quality = {"text_perplexity": ppl, "kl_to_dense": 0.1, "next_token_agreement": 0.9}
    return {"params": 100, "param_ratio": 0.7, "humaneval": {"passed": passed, "problems": 164},
            "stdlib_test": dict(quality), "foreign": dict(quality)}  # fmt: skip


def test_markdown_and_curve_from_a_result(tmp_path):
    curve = [{"tokens": t, "perplexity": p, "dense_perplexity": 8.0, "next_token_agreement": a}
             for t, p, a in ((0, 16.0, 0.6), (500_000, 10.0, 0.7), (1_000_000, 9.0, 0.75))]  # fmt: skip
    result = {
        "model": "tiny", "quality_dtype": "float32", "capability": None, "foreign_package": {"name": "accelerate"},
        "dense": _row(8.0, 9),
        "levels": {"vocab+4L": {"pruned": _row(16.0, 0), "recovered": _row(9.0, 7),
                                "recovery": {"tokens": 1_000_000, "curve": curve}}},
        "targets": {"vocab+4L": {"perplexity_ratio": 1.125}},
    }  # fmt: skip
    table = recovery_markdown(result)
    assert "| vocab+4L recovered (1,000,000 tokens) | 100 (0.7) | 7/164 | 9.0 (1.125x)" in table
    assert "the zoo's pick): none of those measured." in table  # 7/164 is below dense - 1
    # the targets table marks what misses its bar; no speed measured: no speed columns
    assert "| vocab+4L | 30.0% | 1.125x / 1.125x | **7** (no) | no |" in table
    plot_recovery_curve(result, tmp_path / "curve.png")
    first = (tmp_path / "curve.png").read_bytes()
    assert first[:4] == b"\x89PNG"
    plot_recovery_curve(result, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes() == first  # deterministic redraw
    result["levels"]["vocab"] = {**result["levels"]["vocab+4L"], "recovered": {**_row(8.5, 8), "param_ratio": 0.9}}
    result["dense"]["param_ratio"] = 1.0
    plot_frontier(result, tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_recipes_are_compared_by_what_each_changes(tmp_path):
    from benchmarks.render_results import render_figures, render_readme

    def result(settings, passed, tasks, answers, epochs, tokens=1_000_000, bf16=True):
        row = {
            "recovered": {
                **_row(10.0, passed),
                "humaneval": {"passed": passed, "problems": 164, "passed_tasks": tasks},
            },
            "recovery": {
                "tokens": tokens,
                "bf16": bf16,
                "data": {"epochs": {"chat": epochs}},
                "curve": [{"tokens": t, "kl_to_dense": kl, "perplexity": p, "dense_perplexity": 8.0,
                           "next_token_agreement": 0.7} for t, kl, p in ((0, 0.7, 16.0), (1_000_000, 0.2, 9.0))],
            },
        }  # fmt: skip
        if answers is not None:  # logged since clean_answers
            row["recovery"]["data"]["answers"] = answers
        return {"model": "tiny", "capability": None, "foreign_package": {"name": "accelerate"},
                "settings": {"chat_share": 0.5, "keep_whitespace": True, "answers": 1024, **settings},
                "dense": _row(8.0, 9), "levels": {"vocab+4L+ffn": row}}  # fmt: skip

    (tmp_path / "flab_recovery.json").write_text(
        json.dumps(result({}, 7, ["HumanEval/16", "HumanEval/22"], 1024, 2.2))
    )
    hidden = result({"distill": {"hidden_weight": 1.0}}, 8, ["HumanEval/22"], 1024, 2.2)
    (tmp_path / "flab_recovery_hidden.json").write_text(json.dumps(hidden))
    older = result({"keep_whitespace": False, "chat_share": 0.3}, 5, ["HumanEval/22"], None, 1.3)
    del older["settings"]["keep_whitespace"]  # measured before the setting existed: it was off
    (tmp_path / "flab_recovery_chat30.json").write_text(json.dumps(older))
    block = result({"layer_method": "block"}, 6, ["HumanEval/22"], 1024, 2.2)  # the first file predates the setting
    (tmp_path / "flab_recovery_block.json").write_text(json.dumps(block))
    longer = result({"distill": {"train_tokens": 2_000_000}}, 8, ["HumanEval/22"], 1024, 4.4, 2_001_000, False)
    (tmp_path / "flab_recovery_2m.json").write_text(json.dumps(longer))
    chat = result({"calibration_source": "chat"}, 6, ["HumanEval/23"], 1024, 2.2)  # layers chosen on chat answers
    (tmp_path / "flab_recovery_chatcal.json").write_text(json.dumps(chat))
    readme = "<!-- results:flab_recipes -->\n<!-- /results:flab_recipes -->"
    rendered = render_readme(readme, tmp_path)
    assert (
        "| current | `flab_recovery.json` | 7/164 | 16, 22 | 1.250x | 1.250x | 0.1 | 1024 (2.2) | 1,000,000 (bf16) |"
        in (rendered)
    )
    # a longer budget is a recipe setting too, and each row says what it trained on and in which precision
    assert "| distill.train_tokens=2000000 | `flab_recovery_2m.json` | 8/164 | 22 |" in rendered
    assert "| 1024 (4.4) | 2,001,000 (fp32) |" in rendered
    assert "| chat_share=0.3, keep_whitespace=False | `flab_recovery_chat30.json` | 5/164 | 22 |" in rendered
    assert "| distill.hidden_weight=1.0 | `flab_recovery_hidden.json` | 8/164 | 22 |" in rendered
    assert "| layer_method=block | `flab_recovery_block.json` | 6/164 | 22 |" in rendered
    assert "| calibration_source=chat | `flab_recovery_chatcal.json` | 6/164 | 23 |" in rendered
    assert "1024 (1.3) |" in rendered  # the answers from the settings when the log has no count
    assert render_readme(rendered, tmp_path) == rendered
    assert "Not measured yet" in render_readme(readme, tmp_path / "nothing-here")
    # the same files drawn side by side (KL curves, HumanEval against KL), byte-identical when drawn again
    figure = tmp_path / "flab_recipes.png"
    assert figure in render_figures(tmp_path)
    first = figure.read_bytes()
    assert first[:4] == b"\x89PNG"
    render_figures(tmp_path)
    assert figure.read_bytes() == first


def test_the_zoo_pick_is_the_smallest_level_that_meets_every_target():
    def level(ratio, ppl, passed):
        return {"pruned": _row(16.0, 0), "recovered": {**_row(ppl, passed), "param_ratio": ratio},
                "recovery": {"tokens": 1_000_000}}  # fmt: skip

    result = {
        "dense": _row(8.0, 9),
        "levels": {"vocab+2L": level(0.84, 8.4, 9), "vocab+4L": level(0.74, 8.8, 8), "vocab+6L": level(0.70, 9.6, 6)},
        "speed": {"float32": {name: {"speedup_b1": 1.3, "speedup_b8": 1.4} for name in ("vocab+2L", "vocab+4L")}},
    }
    points = frontier_points(result)
    assert [p["level"] for p in points] == ["vocab+6L", "vocab+4L", "vocab+2L"]  # smallest first
    # vocab+6L misses HumanEval (6 < 9 - 1) and 1.15x perplexity; vocab+2L is not 25% smaller
    assert [p["meets_targets"] for p in points] == [False, True, False]
    assert zoo_choice(result) == "vocab+4L"
    result.update(model="tiny", quality_dtype="float32", capability=None, foreign_package={"name": "accelerate"})
    table = recovery_markdown(result)
    assert "| vocab+4L | 26.0% | 1.100x / 1.100x | 8 | 1.300x / 1.400x | yes |" in table
    assert "| vocab+6L | 30.0% | **1.200x / 1.200x** (no) | **6** (no) | not measured | no |" in table
    # a level whose speed was not measured cannot be said to meet the targets
    del result["speed"]["float32"]["vocab+4L"]
    assert [p["meets_targets"] for p in frontier_points(result)] == [False, None, False]
    assert zoo_choice(result) is None


def test_the_speed_table_renders_every_timed_level_with_its_target(tmp_path):
    from benchmarks.render_results import render_readme

    rates = {"dense": {"b1": 16.0, "b8": 68.0, "speedup_b1": 1.0, "speedup_b8": 1.0, "params": 1000},
             "vocab+4L+ffn": {"b1": 20.9, "b8": 91.0, "speedup_b1": 1.306, "speedup_b8": 1.338, "params": 743},
             "vocab+2L": {"b1": 20.0, "b8": 85.0, "speedup_b1": 1.25, "speedup_b8": 1.249}}  # fmt: skip
    (tmp_path / "flab_recovery_avx2.json").write_text(
        json.dumps({"model": "tiny", "capability": None, "speed": {"float32": rates}})
    )
    readme = "<!-- results:flab_speed_avx2 -->\n<!-- /results:flab_speed_avx2 -->"
    rendered = render_readme(readme, tmp_path)
    assert "| dense | 1,000 (1.00) | 16.0 / 68.0 | 1.000x / 1.000x |" in rendered
    assert "| vocab+4L+ffn | 743 (0.74) | 20.9 / 91.0 | 1.306x / 1.338x |" in rendered
    # the bar is >= 1.25x; a result stored before parameters were recorded shows none
    assert "| vocab+2L | - | 20.0 / 85.0 | 1.250x / **1.249x** (no) |" in rendered


def test_a_vocabulary_only_level_is_its_own_recovered_model(tmp_path):
    assert nothing_to_recover("vocab") and not nothing_to_recover("vocab+2L") and not nothing_to_recover("ffn")
    pruned = {**_row(8.0, 9), "removed_layers": [], "vocabulary": 50, "ffn_rule": None, "ffn_rule_kl": None,
              "calibration_kl": 0.0, "prune_seconds": 1.0}  # fmt: skip

    class Yardstick:  # the real one loads SmolLM2; the vocabulary-only path only needs the pruned row and folder
        def pruned_row(self, level):
            return pruned

        def pruned_dir(self, level):
            return tmp_path / level

    def training_data():
        raise AssertionError("a vocabulary-only level must not build training data or train")

    row = _run_level("vocab", RecoverySettings(), Yardstick(), training_data, progress=False)
    assert (
        row["recovered"] == pruned
        and row["recovery"]["tokens"] == 0
        and row["recovered_dir"] == str(tmp_path / "vocab")
    )
    result = {
        "model": "tiny", "quality_dtype": "float32", "capability": None, "foreign_package": {"name": "accelerate"},
        "dense": _row(8.0, 9), "levels": {"vocab": row}, "targets": {},
    }  # fmt: skip
    table = recovery_markdown(result)
    assert "| vocab (nothing to recover) | 100 (0.7) | 9/164 |" in table and "vocab pruned" not in table
    plot_recovery_curve(result, tmp_path / "curve.png")  # no curve to draw: still a figure, no error
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
