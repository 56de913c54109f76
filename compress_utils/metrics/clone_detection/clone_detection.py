# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Accuracy, precision, recall and F1 of binary code clone detection, as an ``evaluate`` metric module.

Self-contained (numpy, datasets, evaluate): ``evaluate.load`` copies this file into its module cache, so it may not
import anything from this repository. The numbers are those of ``benchmarks.alpine_finetune`` (tests check it).
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{saad2025alpine,
  title={An Adaptive Language-Agnostic Pruning Method for Greener Language Models for Code},
  author={Mootez Saad and Jos{\\'e} Antonio Hern{\\'a}ndez L{\\'o}pez and Boqi Chen and D{\\'a}niel Varr{\\'o} and
          Tushar Sharma},
  journal={Proceedings of the ACM on Software Engineering},
  volume={2},
  number={FSE},
  year={2025},
  doi={10.1145/3715773}
}
"""

_DESCRIPTION = """\
Binary clone detection (is the second function a clone of the first?) scored as in ALPINE's fine-tuning experiments
(BigCloneBench-style): accuracy, and precision, recall and F1 of the positive class (label 1 = clone). A score whose
denominator is zero (no predicted positives, no true positives, or precision + recall = 0) is 0, as scikit-learn's
`zero_division=0` gives.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels, 0 (not a clone) or 1 (clone).
    references (`list` of `int`): true labels, 0 or 1.
Returns:
    accuracy (`float`), f1 (`float`), precision (`float`), recall (`float`): all in [0, 1].
Examples:
    >>> clone_detection = evaluate.load("compress_utils/metrics/clone_detection")
    >>> clone_detection.compute(predictions=[1, 1, 0, 0], references=[1, 0, 1, 0])
    {'accuracy': 0.5, 'f1': 0.5, 'precision': 0.5, 'recall': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CloneDetection(evaluate.Metric):
    """Accuracy and positive-class precision, recall and F1 of 0/1 clone labels."""

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            homepage="https://arxiv.org/abs/2407.04147",
            reference_urls=[
                "https://github.com/microsoft/CodeXGLUE/tree/main/Code-Code/Clone-detection-BigCloneBench"
            ],
        )

    def _compute(self, predictions, references):
        predictions, labels = np.asarray(predictions), np.asarray(references)
        if predictions.size == 0:
            raise ValueError("clone_detection needs at least one prediction; got empty `predictions`.")
        for name, values in (("predictions", predictions), ("references", labels)):
            unexpected = sorted(set(np.unique(values).tolist()) - {0, 1})
            if unexpected:
                raise ValueError(f"`{name}` must be 0/1 clone labels, got values {unexpected}.")
        true_positive = int(((predictions == 1) & (labels == 1)).sum())
        precision = true_positive / max(int((predictions == 1).sum()), 1)
        recall = true_positive / max(int((labels == 1).sum()), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        return {"accuracy": float((predictions == labels).mean()), "f1": f1, "precision": precision, "recall": recall}
