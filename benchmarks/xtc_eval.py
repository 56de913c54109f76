# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""CodeXGLUE-style line-level code completion on held-out code: Exact Match and Edit Similarity.

For each sample the model sees a file up to the end of the line before the target line (without its newline: byte-level
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

import logging
import random

import torch

from compress_utils.distributed import distributed_state
from compress_utils.metric_loading import load_metric

logger = logging.getLogger(__name__)


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


def line_completion_samples(files, num_samples: int = 200, seed: int = 0, min_chars: int = 4) -> list[dict]:
    """Deterministic ``{"path", "prompt", "target"}`` samples from ``files`` (``{"path", "text"}`` dicts).

    Files are visited in a seeded order and one line per file is picked (round-robin over files until
    ``num_samples``): a line with at least ``min_chars`` non-blank characters that is not the first line. The prompt is
    the file up to the end of the previous line (without its newline), the target the stripped line.
    """
    if not files:
        raise ValueError("`files` is empty; give held-out code files as {'path', 'text'} dicts.")
    rng = random.Random(seed)
    order = list(range(len(files)))
    rng.shuffle(order)
    samples, used = [], set()
    rounds = 0
    while len(samples) < num_samples and rounds < 50:
        rounds += 1
        for index in order:
            text = files[index]["text"]
            lines = text.split("\n")
            candidates = [
                i for i in range(1, len(lines)) if len(lines[i].strip()) >= min_chars and (index, i) not in used
            ]
            if not candidates:
                continue
            line = rng.choice(candidates)
            used.add((index, line))
            prompt = "\n".join(lines[:line])
            samples.append({"path": files[index]["path"], "prompt": prompt, "target": lines[line].strip()})
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
    """The target line from the generated continuation of the previous line (stripped).

    Example:
        >>> completed_line("\n    return x\n")
        'return x'
    """
    parts = generated.split("\n")
    return parts[1].strip() if len(parts) > 1 else ""


@torch.no_grad()
def evaluate_line_completion(
    model, tokenizer, samples, context_tokens: int = 256, max_new_tokens: int = 48, progress: bool = True,
    shard: bool = True,
) -> dict:  # fmt: skip
    """Greedy line completion on ``samples``; returns ``{"em", "es", "n", "predictions"}`` (EM in %, ES in [0, 100]).

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
    limit = getattr(model.config, "n_positions", 1024) - max_new_tokens
    context = min(context_tokens, limit)
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
    "completed_line",
    "edit_similarity",
    "evaluate_line_completion",
    "exact_match",
    "line_completion_samples",
    "line_completion_scores",
]
