# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""CodeXGLUE-style line-level code completion on held-out code: Exact Match and Edit Similarity.

Target lines are code lines, as in the benchmark the XTC paper used (CodeXGLUE's PY150, whose preprocessing drops
comments and collapses docstrings into one literal token): a line whose first token is code, not a comment, a line
inside a multi-line string, or a docstring (:func:`code_line_numbers`). ``lines="any"`` samples every non-blank line
(the protocol of results recorded without ``"lines"``), whose comment and docstring lines are prose that even a
pretrained code model rarely completes exactly. For each sample the model sees a file up to the end of the line before the target line (without its newline: byte-level
BPE merges a newline with the next line's indentation, so cutting after it would show the model a token boundary it
never saw in training) and greedily generates until the target line is complete; the generated target line is
compared with the true one, both stripped. Edit Similarity is
CodeXGLUE's ``fuzz.ratio`` (here from the maintained ``rapidfuzz``), in [0, 100].

The scores are computed by the shipped ``evaluate`` module ``code_completion`` (what a user loads with
``evaluate.load(compress_utils.metric_loading.metric_path("code_completion"))`` to reproduce them); where ``evaluate``
cannot load it, the same numbers come from :func:`exact_match` and :func:`edit_similarity` below.

Example:
    >>> from benchmarks.xtc_eval import edit_similarity, exact_match
    >>> exact_match("return x", " return x "), round(edit_similarity("return x", "return y"), 1)
    (True, 87.5)
"""

from __future__ import annotations

import io
import logging
import random
import tokenize

import torch

from compress_utils.distributed import distributed_state
from compress_utils.metric_loading import load_metric

logger = logging.getLogger(__name__)

LINE_KINDS = ("code", "any")
# bumped when the sampling or the scoring changes, so that cached scores are not reused (zoo score cache keys)
SAMPLING_VERSION = "code lines v2, trained positions"


def _fuzz():
    try:
        from rapidfuzz import fuzz
    except ImportError as error:  # optional dependency of the evaluation only
        raise ImportError("Edit similarity needs rapidfuzz: `pip install 'rapidfuzz>=3,<4'`.") from error
    return fuzz


def exact_match(prediction: str, target: str) -> bool:
    """Whether the stripped prediction equals the stripped target."""
    return prediction.strip() == target.strip()


def edit_similarity(prediction: str, target: str) -> float:
    """CodeXGLUE's Levenshtein edit similarity ``fuzz.ratio`` of the stripped strings, in [0, 100]."""
    return float(_fuzz().ratio(prediction.strip(), target.strip()))


def line_completion_scores(predictions: list[str], targets: list[str]) -> dict:
    """``{"em", "es"}`` of completed lines: EM in %, ES (CodeXGLUE edit similarity) in [0, 100].

    Example:
        >>> line_completion_scores(["return x", "return y"], ["return x", "return x"])
        {'em': 50.0, 'es': 93.75}
    """
    if not predictions or len(predictions) != len(targets):
        raise ValueError(
            f"`predictions` and `targets` must be non-empty and of equal length, got {len(predictions)} and "
            f"{len(targets)}."
        )
    module = load_metric("code_completion")
    if module is not None:
        scores = module.compute(predictions=list(predictions), references=list(targets))
        return {"em": scores["exact_match"], "es": scores["edit_similarity"]}
    em = sum(exact_match(p, t) for p, t in zip(predictions, targets))
    es = 0.0
    for prediction, target in zip(predictions, targets):  # summed in order, as the module does
        es += edit_similarity(prediction, target)
    return {"em": 100.0 * em / len(predictions), "es": es / len(predictions)}


def paired_with_teacher(teacher: list[str], student: list[str], samples: list[dict]) -> dict:
    """How a student's completed lines compare with its teacher's on the same ``samples`` (``{"path", "target"}``
    dicts, as :func:`line_completion_samples` gives): the share it completes exactly as the teacher does, how many of
    the teacher's exact lines it keeps, how many it gets that the teacher missed, and every line it lost (teacher
    exact, student not) with its file, to read.

    Paired counts separate what compression lost from the sampling noise both models share: EM retention alone
    moves with the teacher's luck on the sampled lines.

    Example:
        >>> samples = [{"path": "a.py", "target": "a = 1"}, {"path": "b.py", "target": "c"}]
        >>> paired = paired_with_teacher(["a = 1", "b"], ["a = 2", "b"], samples)
        >>> paired["same_as_teacher"], paired["teacher_exact"], paired["kept"], paired["gained"]
        (50.0, 1, 0, 0)
        >>> paired["lost"]
        [{'path': 'a.py', 'target': 'a = 1', 'student': 'a = 2'}]
    """
    if not len(teacher) == len(student) == len(samples) or not samples:
        raise ValueError(
            f"`teacher`, `student` and `samples` must be non-empty and of equal length, got {len(teacher)}, "
            f"{len(student)} and {len(samples)}."
        )
    targets = [sample["target"] for sample in samples]
    same = sum(exact_match(t, s) for t, s in zip(teacher, student))
    teacher_exact = [exact_match(t, target) for t, target in zip(teacher, targets)]
    student_exact = [exact_match(s, target) for s, target in zip(student, targets)]
    lost = [
        {"path": sample["path"], "target": sample["target"], "student": s}
        for s, sample, kept_t, kept_s in zip(student, samples, teacher_exact, student_exact)
        if kept_t and not kept_s
    ]  # fmt: skip
    return {
        "same_as_teacher": 100.0 * same / len(targets),
        "teacher_exact": sum(teacher_exact),
        "kept": sum(a and b for a, b in zip(teacher_exact, student_exact)),
        "gained": sum(b and not a for a, b in zip(teacher_exact, student_exact)),
        "lost": lost,
    }


def code_line_numbers(text: str) -> set[int] | None:
    r"""0-based numbers of the lines of ``text`` that start with a code token: not blank, not a comment, not inside a
    multi-line string and not a docstring (a string alone on its line as a statement). None when ``text`` does not
    tokenize as Python.

    Example:
        >>> sorted(code_line_numbers('def f():\n    "Doc."\n    # note\n    return 1\n'))
        [0, 3]
    """
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER)
    try:
        tokens = [token for token in tokenize.generate_tokens(io.StringIO(text).readline) if token.type not in skip]
    except (tokenize.TokenError, SyntaxError, ValueError):  # IndentationError is a SyntaxError
        return None
    lines, seen = set(), set()
    for index, token in enumerate(tokens):
        row = token.start[0] - 1
        if row in seen:
            continue
        seen.add(row)
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            alone = following is None or following.start[0] > token.end[0]
            if token.start[0] != token.end[0] or alone:  # a multi-line string or a docstring-like statement
                continue
        lines.add(row)
    return lines


def line_completion_samples(
    files, num_samples: int = 200, seed: int = 0, min_chars: int = 4, lines: str = "code"
) -> list[dict]:
    """Deterministic ``{"path", "prompt", "target"}`` samples from ``files`` (``{"path", "text"}`` dicts).

    Files are visited in a seeded order and one line per file is picked (round-robin over files until
    ``num_samples``): a line with at least ``min_chars`` non-blank characters that is not the first line and, with
    ``lines="code"`` (the default), a code line (:func:`code_line_numbers`; files that do not tokenize are skipped).
    The prompt is the file up to the end of the previous line (without its newline), the target the stripped line.
    """
    if not files:
        raise ValueError("`files` is empty; give held-out code files as {'path', 'text'} dicts.")
    if lines not in LINE_KINDS:
        raise ValueError(f"`lines` must be one of {LINE_KINDS}, got {lines!r}.")
    rng = random.Random(seed)
    order = list(range(len(files)))
    rng.shuffle(order)
    allowed = {}
    samples, used = [], set()
    rounds = 0
    while len(samples) < num_samples and rounds < 50:
        rounds += 1
        for index in order:
            text = files[index]["text"]
            split = text.split("\n")
            if lines == "code" and index not in allowed:
                allowed[index] = code_line_numbers(text) or set()
            candidates = [
                i for i in range(1, len(split))
                if len(split[i].strip()) >= min_chars and (index, i) not in used
                and (lines == "any" or i in allowed[index])
            ]  # fmt: skip
            if not candidates:
                continue
            line = rng.choice(candidates)
            used.add((index, line))
            prompt = "\n".join(split[:line])
            samples.append({"path": files[index]["path"], "prompt": prompt, "target": split[line].strip()})
            if len(samples) == num_samples:
                break
    return samples


class _LineDone:
    """Stopping criterion: the generated text holds the newline ending the prompt's line and the one ending the
    target line."""

    def __init__(self, tokenizer, prompt_length: int):
        self.tokenizer, self.prompt_length = tokenizer, prompt_length

    def __call__(self, input_ids, scores, **kwargs):
        text = self.tokenizer.decode(input_ids[0, self.prompt_length :])
        return torch.full((input_ids.shape[0],), text.count("\n") >= 2, dtype=torch.bool, device=input_ids.device)


def completed_line(generated: str) -> str:
    r"""The target line from the generated continuation of the previous line (stripped).

    Example:
        >>> completed_line("\n    return x\n")
        'return x'
    """
    parts = generated.split("\n")
    return parts[1].strip() if len(parts) > 1 else ""


def new_tokens_for(positions: int | None, max_new_tokens: int = 48) -> int:
    """``max_new_tokens``, at most half of ``positions`` (a short trained length, e.g. a tiny test teacher's, keeps
    half of it for the prompt).

    Example:
        >>> new_tokens_for(256), new_tokens_for(32), new_tokens_for(None)
        (48, 16, 48)
    """
    return max_new_tokens if positions is None else max(1, min(max_new_tokens, positions // 2))


def line_context(
    model, context_tokens: int = 256, max_new_tokens: int | None = None, positions: int | None = None
) -> int:
    """The prompt tokens :func:`evaluate_line_completion` keeps: ``context_tokens``, less where the prompt and
    ``max_new_tokens`` (``None``: :func:`new_tokens_for` ``positions``) would not fit in ``positions`` (the trained
    length; ``None``: the model's ``n_positions``).

    Example:
        >>> from types import SimpleNamespace
        >>> line_context(SimpleNamespace(config=SimpleNamespace(n_positions=512)), positions=256)
        208
    """
    max_new_tokens = new_tokens_for(positions) if max_new_tokens is None else max_new_tokens
    limit = (positions or getattr(model.config, "n_positions", 1024)) - max_new_tokens
    if limit < 1:
        raise ValueError(
            f"`max_new_tokens`={max_new_tokens} leaves no room for a prompt in {positions or 'n_positions'} "
            "positions; lower it or give the trained length as `positions`."
        )
    return min(context_tokens, limit)


@torch.no_grad()
def evaluate_line_completion(
    model, tokenizer, samples, context_tokens: int = 256, max_new_tokens: int | None = None, progress: bool = True,
    shard: bool = True, positions: int | None = None,
) -> dict:  # fmt: skip
    """Greedy line completion on ``samples``; returns ``{"em", "es", "n", "predictions"}`` (EM in %, ES in [0, 100]).

    The prompt keeps its last ``context_tokens`` tokens, fewer where the prompt and ``max_new_tokens`` (``None``: 48,
    at most half of ``positions``, :func:`new_tokens_for`) would not fit in ``positions``: the longest sequence the
    model was trained on (``None``: its ``n_positions``). A GPT-2 trained on 256-token blocks has untrained position
    embeddings past 255, and generating there derails it (the py150 teacher of ``make bench-xtc-py150`` scored EM 11.0
    / ES 35.4 on its 1,000 lines with 256 prompt tokens, and EM 17.5 / ES 48.4 with 208).

    Generation stops once the target line is complete, one sample at a time so that no padding can change the
    result. Under ``accelerate launch`` each process completes its share of the samples
    (``split_between_processes``) and the predictions are gathered in order, so every process returns what one
    process would; every process must then call it (``shard=False``: each process does all samples).
    """
    from tqdm.auto import tqdm
    from transformers import StoppingCriteriaList

    if not samples:
        raise ValueError("`samples` is empty.")
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    max_new_tokens = new_tokens_for(positions) if max_new_tokens is None else max_new_tokens
    context = line_context(model, context_tokens, max_new_tokens, positions)
    predictions = []
    state = distributed_state() if shard else None
    mine = samples
    if state is not None:
        with state.split_between_processes(list(samples)) as part:
            mine = part
    main = state is None or state.is_main_process
    for sample in tqdm(mine, desc="line completion", disable=not progress or not main):
        ids = tokenizer(sample["prompt"], add_special_tokens=False)["input_ids"][-context:]
        input_ids = torch.tensor([ids], device=device)
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([_LineDone(tokenizer, input_ids.shape[1])]),
            pad_token_id=pad,
        )
        prediction = completed_line(tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True))
        predictions.append(prediction)
    if state is not None:  # contiguous shards, gathered in process order: the original sample order
        from accelerate.utils import gather_object

        predictions = gather_object(predictions)
    scores = line_completion_scores(predictions, [sample["target"] for sample in samples])
    return {**scores, "n": len(samples), "predictions": predictions}


__all__ = [
    "LINE_KINDS",
    "SAMPLING_VERSION",
    "code_line_numbers",
    "completed_line",
    "edit_similarity",
    "evaluate_line_completion",
    "exact_match",
    "line_completion_samples",
    "line_completion_scores",
    "line_context",
    "new_tokens_for",
    "paired_with_teacher",
]
