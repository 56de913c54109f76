"""compress_utils/metrics/code_completion: the same EM/ES numbers as benchmarks.xtc_eval, on random and known inputs."""

from pathlib import Path

import evaluate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.xtc_eval import edit_similarity, exact_match, line_completion_scores
from compress_utils import metric_loading
from compress_utils.metric_loading import load_metric

MODULE = str(Path(__file__).resolve().parents[2] / "compress_utils" / "metrics" / "code_completion")
# Code-like text; no surrogate code points (Arrow stores UTF-8, which cannot encode them)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["return x", "  return x  ", "return y", "", " ", "for i in range(10):", "x = {'a': [1, 2]}"]
)


@pytest.fixture(scope="module")
def code_completion():
    return evaluate.load(MODULE, keep_in_memory=True)


def test_known_values(code_completion):
    scores = code_completion.compute(
        predictions=["return x", "return y ", ""], references=[" return x", "return x", "x"]
    )
    assert scores["exact_match"] == pytest.approx(100 / 3)
    # rapidfuzz ratio: 100 * (1 - indel distance / total length); "return y" vs "return x": 1 - 2/16 = 87.5
    assert scores["edit_similarity"] == pytest.approx((100.0 + 87.5 + 0.0) / 3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=12))
def test_equals_the_library_functions(code_completion, pairs):
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    scores = code_completion.compute(predictions=predictions, references=references)
    # what evaluate_line_completion computed before it used this module
    em = sum(exact_match(p, r) for p, r in pairs)
    es = 0.0
    for p, r in pairs:
        es += edit_similarity(p, r)
    assert scores["exact_match"] == pytest.approx(100.0 * em / len(pairs), abs=1e-9)
    assert scores["edit_similarity"] == pytest.approx(es / len(pairs), abs=1e-9)


def test_library_uses_the_module_and_falls_back_to_the_same_numbers(monkeypatch, caplog):
    predictions, targets = ["return x", "if a:", "pass"], ["return y", "if a:", "raise"]
    load_metric.cache_clear()
    assert isinstance(load_metric("code_completion"), evaluate.EvaluationModule)
    with_module = line_completion_scores(predictions, targets)
    monkeypatch.setattr(metric_loading, "METRICS_DIR", Path("/nonexistent/metrics"))
    load_metric.cache_clear()
    with caplog.at_level("INFO", logger="compress_utils.metric_loading"):
        in_library = line_completion_scores(predictions, targets)
    load_metric.cache_clear()
    assert "scoring in-library" in caplog.text
    assert in_library == pytest.approx(with_module, abs=1e-12)
    assert with_module["em"] == pytest.approx(100 / 3)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match=r"equal length, got 2 and 1"):
        line_completion_scores(["a", "b"], ["a"])
