# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Exact Match and Edit Similarity of CodeXGLUE line-level code completion, as an ``evaluate`` metric module.

Self-contained (rapidfuzz, datasets, evaluate): ``evaluate.load`` copies this file into its module cache, so it may
not import anything from this repository. The numbers are those of ``benchmarks.xtc_eval`` (tests check it).
"""

import datasets
import evaluate

_CITATION = """\
@article{lu2021codexglue,
  title={CodeXGLUE: A Machine Learning Benchmark Dataset for Code Understanding and Generation},
  author={Shuai Lu and Daya Guo and Shuo Ren and Junjie Huang and Alexey Svyatkovskiy and Ambrosio Blanco and Colin
          Clement and Dawn Drain and Daxin Jiang and Duyu Tang and others},
  journal={arXiv preprint arXiv:2102.04664},
  year={2021}
}
"""

_DESCRIPTION = """\
Line-level code completion scores of CodeXGLUE (CodeCompletion-line), as used to evaluate compressed CodeGPT models
(XTC): Exact Match is the percentage of predictions equal to their reference after stripping surrounding whitespace;
Edit Similarity is the mean Levenshtein (Indel) similarity `fuzz.ratio` of the stripped strings, in [0, 100].
CodeXGLUE's evaluator calls fuzzywuzzy's `fuzz.ratio`, which rounds every score to an integer; this module uses the
maintained rapidfuzz `fuzz.ratio`, the same similarity without the rounding (a per-sample difference below 0.5).
CodeXGLUE counts an exact match when the whitespace-separated tokens agree (`pred.split() == gt.split()`); this
module compares the stripped strings, so inner whitespace counts.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the completed lines the model generated.
    references (`list` of `str`): the true lines.
Returns:
    exact_match (`float`): percentage of stripped predictions equal to their stripped reference, in [0, 100].
    edit_similarity (`float`): mean `rapidfuzz.fuzz.ratio` of the stripped strings, in [0, 100].
Examples:
    >>> code_completion = evaluate.load("compress_utils/metrics/code_completion")
    >>> code_completion.compute(predictions=["return x", "return y "], references=[" return x", "return x"])
    {'exact_match': 50.0, 'edit_similarity': 93.75}
"""


def _fuzz():
    try:
        from rapidfuzz import fuzz
    except ImportError as error:
        raise ImportError("Edit similarity needs rapidfuzz: `pip install 'rapidfuzz>=3,<4'`.") from error
    return fuzz


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CodeCompletion(evaluate.Metric):
    """Exact Match (%) and Edit Similarity (0-100) of completed lines against the true lines."""

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            homepage="https://github.com/microsoft/CodeXGLUE/tree/main/Code-Code/CodeCompletion-line",
            reference_urls=["https://github.com/rapidfuzz/RapidFuzz"],
        )

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("code_completion needs at least one prediction; got empty `predictions`.")
        ratio = _fuzz().ratio
        exact, similarity = 0, 0.0
        # Summed in input order, then divided once, exactly like benchmarks.xtc_eval.evaluate_line_completion.
        for prediction, reference in zip(predictions, references):
            prediction, reference = prediction.strip(), reference.strip()
            exact += prediction == reference
            similarity += float(ratio(prediction, reference))
        n = len(predictions)
        return {"exact_match": 100.0 * exact / n, "edit_similarity": similarity / n}
