"""compress_utils/metrics/clone_detection: the same accuracy/precision/recall/F1 as benchmarks.alpine_finetune, on random and known inputs."""

from pathlib import Path

import evaluate
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import alpine_finetune as finetune
from compress_utils import metric_loading
from compress_utils.metric_loading import load_metric

MODULE = str(Path(__file__).resolve().parents[2] / "compress_utils" / "metrics" / "clone_detection")
LABELS = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60)


@pytest.fixture(scope="module")
def clone_detection():
    return evaluate.load(MODULE, keep_in_memory=True)


def test_known_values(clone_detection):
    # 3 true positives, 1 false positive, 2 false negatives, 2 true negatives
    predictions = [1, 1, 1, 1, 0, 0, 0, 0]
    references = [1, 1, 1, 0, 1, 1, 0, 0]
    scores = clone_detection.compute(predictions=predictions, references=references)
    assert scores == pytest.approx({"accuracy": 5 / 8, "precision": 3 / 4, "recall": 3 / 5, "f1": 2 / 3})
    # no predicted clone: precision, recall and F1 are 0 (no division by zero)
    assert clone_detection.compute(predictions=[0, 0], references=[1, 0]) == {
        "accuracy": 0.5, "f1": 0.0, "precision": 0.0, "recall": 0.0}  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(LABELS)
def test_equals_the_library_function(clone_detection, pairs):
    predictions, labels = np.array([p for p, _ in pairs]), np.array([r for _, r in pairs])
    scores = clone_detection.compute(predictions=predictions.tolist(), references=labels.tolist())
    assert scores == pytest.approx(finetune._clone_detection_scores(predictions, labels), abs=1e-12)


def test_non_binary_labels_are_refused(clone_detection):
    with pytest.raises(ValueError, match=r"`predictions` must be 0/1 clone labels, got values \[2\]"):
        clone_detection.compute(predictions=[0, 2], references=[0, 1])


def test_finetune_uses_the_module_and_falls_back_to_the_same_numbers(monkeypatch, caplog):
    rng = np.random.default_rng(0)
    predictions, labels = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    load_metric.cache_clear()
    assert isinstance(load_metric("clone_detection"), evaluate.EvaluationModule)
    with_module = finetune._metrics(predictions, labels)
    monkeypatch.setattr(metric_loading, "METRICS_DIR", Path("/nonexistent/metrics"))
    load_metric.cache_clear()
    with caplog.at_level("INFO", logger="compress_utils.metric_loading"):
        in_library = finetune._metrics(predictions, labels)
    load_metric.cache_clear()
    assert "scoring in-library" in caplog.text
    assert in_library == pytest.approx(with_module, abs=1e-12)
    assert set(with_module) == {"accuracy", "f1", "precision", "recall"}
