# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Training data for recovery by distillation: code windows and the dense model's own chat answers, packed into
blocks of the pruned tokenizer's ids.

The dense model's greedy answers to instruction prompts built from the corpus (self-distillation data) teach the
pruned model the chat turn, markdown and English it writes around code; the code windows teach the code.

Example:
    >>> from flab_hf.distillation_data import pack_blocks
    >>> pack_blocks([[1, 2, 3], [4, 5]], block_size=2, eos_id=0)
    [[1, 2], [3, 0], [4, 5]]
"""

from __future__ import annotations

import ast
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Sequence

from tqdm.auto import tqdm

from .answers import ANSWER_BATCH_SIZE, _stop_ids, generate_ids
from .data import CODE_BLOCK

logger = logging.getLogger(__name__)

# Share of the recovery tokens from the dense model's chat answers (the rest: code windows). Measured on
# SmolLM2-135M-Instruct pruned to vocab+4L+ffn, 1M tokens of 1,024 answers: 0.3 -> 5/164 HumanEval, 0.5 -> 7/164
# with fewer answers that close the code block right after the echoed docstring, at the same held-out perplexity
# (benchmarks/results/flab_recovery_chat30.json and flab_recovery_no_whitespace.json, both before keep_whitespace).
CHAT_SHARE = 0.5


def self_answers(model, tokenizer, prompts: Sequence[str], cache_file: str | os.PathLike, max_new_tokens: int = 256,
                 batch_size: int = ANSWER_BATCH_SIZE, progress: bool = True) -> list[dict]:  # fmt: skip
    """The model's greedy chat answers to ``prompts``, as ``{"prompt", "answer", "finished", "ids"}`` records,
    cached in ``cache_file``. ``finished`` is False where the answer was cut at ``max_new_tokens`` before the model
    ended its turn (:func:`chat_texts` then leaves the turn open instead of teaching the student to end it there);
    ``ids`` are the generated token ids (what vocabulary pruning keeps; older caches have no such field).

    The cache is a JSON-lines file appended one batch at a time (flushed and synced), so an interrupted run resumes
    where it stopped; records are matched to prompts by position and text, and a cache written for other prompts is
    refused rather than mixed in.

    Example:
        >>> records = self_answers(dense, tokenizer, prompts, "runs/answers.jsonl")  # doctest: +SKIP
        >>> records[0]["answer"][:9]  # doctest: +SKIP
        '```python'
    """
    records: list[dict] = []
    if os.path.exists(cache_file):
        with open(cache_file, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):  # a batch cut by a crash: generate it again
                    break
                records.append(json.loads(line))
    for index, record in enumerate(records):
        if index >= len(prompts) or record["prompt"] != prompts[index]:
            raise ValueError(
                f"`cache_file={os.fspath(cache_file)!r}` holds answers to other prompts (record {index} differs); "
                "pass a new cache file for these prompts or delete that one."
            )
    valid_bytes = sum(len(json.dumps(r, ensure_ascii=False).encode("utf-8")) + 1 for r in records)
    remaining = list(prompts[len(records) :])
    if not remaining:
        return records
    os.makedirs(os.path.dirname(os.path.abspath(cache_file)), exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with open(cache_file, "a+b") as handle:
            handle.truncate(valid_bytes)  # drop a partial last line
            bar = tqdm(total=len(prompts), initial=len(records), desc="flab: the dense model's answers",
                       disable=not progress)  # fmt: skip
            stop = _stop_ids(model, tokenizer)
            for start in range(0, len(remaining), batch_size):
                batch = remaining[start : start + batch_size]
                ids = generate_ids(model, tokenizer, batch, max_new_tokens, len(batch), chat=True, progress=False)
                lines = []
                for prompt, row in zip(batch, ids):
                    record = {
                        "prompt": prompt,
                        "answer": tokenizer.decode(row, skip_special_tokens=True),
                        "finished": bool(row) and row[-1] in stop,  # generate_ids keeps the stop token it cut at
                        "ids": row,
                    }
                    records.append(record)
                    lines.append(json.dumps(record, ensure_ascii=False) + "\n")
                handle.write("".join(lines).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
                bar.update(len(batch))
            bar.close()
    finally:
        model.train(was_training)
    return records


def _loops(ids: Sequence[int], ngram: int, max_repeats: int) -> bool:
    counts = Counter(tuple(ids[i : i + ngram]) for i in range(len(ids) - ngram + 1))
    return bool(counts) and max(counts.values()) > max_repeats


def _code_parses(answer: str) -> bool:
    for block in CODE_BLOCK.findall(answer):
        try:
            ast.parse(block)
        except (SyntaxError, ValueError):
            return False
    return True


def clean_answers(records: Sequence[dict], ngram: int = 8, max_repeats: int = 2) -> list[dict]:
    """The answers of :func:`self_answers` worth imitating: those the model finished within its token budget, that
    repeat no ``ngram``-token sequence more than ``max_repeats`` times, and whose fenced code blocks all parse.

    A small model's greedy answers often fall into a loop (the same line again until the budget ends); distilled
    from, they teach the student to loop. Measured on SmolLM2-135M-Instruct's 1,024 answers to stdlib prompts
    (256 tokens at most): 266 unfinished, 85 more looping, 27 more with code that does not parse; 646 kept.

    Example:
        >>> done = {"prompt": "p", "answer": "x = 1", "finished": True, "ids": [1, 2, 3]}
        >>> looping = {**done, "ids": [7] * 20}
        >>> [r["ids"] for r in clean_answers([done, looping, {**done, "finished": False}])]
        [[1, 2, 3]]
    """
    for name, value in (("ngram", ngram), ("max_repeats", max_repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
    kept = []
    for index, record in enumerate(records):
        if "ids" not in record or "finished" not in record:
            raise ValueError(
                f"`records[{index}]` has no token ids or `finished` flag (a cache from an older version): make the "
                "answers again with self_answers and a new cache file."
            )
        if record["finished"] and not _loops(record["ids"], ngram, max_repeats) and _code_parses(record["answer"]):
            kept.append(record)
    logger.info("clean answers: %d of %d kept", len(kept), len(records))
    return kept


def chat_texts(tokenizer, records: Sequence[dict]) -> list[str]:
    """Each ``{"prompt", "answer"}`` record rendered as a conversation by the tokenizer's chat template: a whole one,
    or, for a record with ``"finished": False`` (cut at the token limit), the user turn, the generation prompt and
    the answer with the assistant's turn left open. Records without ``finished`` (older caches) count as finished."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; chat answers need one (use code windows only).")
    texts = []
    for r in records:
        user = [{"role": "user", "content": r["prompt"]}]
        if r.get("finished", True):
            texts.append(
                tokenizer.apply_chat_template(user + [{"role": "assistant", "content": r["answer"]}], tokenize=False)
            )
        else:
            texts.append(tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True) + r["answer"])
    return texts


def chat_prompt_chars(tokenizer, records: Sequence[dict]) -> list[int]:
    """The length in characters of each conversation's prompt as :func:`chat_texts` renders it: everything before the
    answer (system and user turns, the generation prompt). :func:`distillation_blocks` takes it to train on the
    answers alone (``assistant_only_loss``).

    Example:
        >>> chars = chat_prompt_chars(tokenizer, records)  # doctest: +SKIP
        >>> chat_texts(tokenizer, records)[0][chars[0]:].startswith(records[0]["answer"])  # doctest: +SKIP
        True
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; chat answers need one (use code windows only).")
    return [
        len(tokenizer.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                          add_generation_prompt=True))
        for r in records
    ]  # fmt: skip


def pack_blocks(documents: Sequence[Sequence[int]], block_size: int, eos_id: int | None) -> list[list[int]]:
    """Documents (token ids) each followed by ``eos_id``, concatenated and cut into ``block_size`` blocks.

    The last, shorter block is dropped unless it is the only one, so every block has the same length. Per-token loss
    masks pack into the same blocks with ``eos_id=1`` (the end of a document is a target).
    """
    stream: list[int] = []
    for document in documents:
        stream.extend(document)
        if eos_id is not None:
            stream.append(eos_id)
    blocks = [stream[i : i + block_size] for i in range(0, len(stream), block_size)]
    if len(blocks) > 1 and len(blocks[-1]) < block_size:
        blocks.pop()
    return blocks


def _prompt_masks(tokenizer, texts: Sequence[str], ids: list[list[int]], prompt_chars: Sequence[int]) -> list:
    """Per-token loss masks of chat documents: 0 on the tokens of each text's first ``prompt_chars`` characters."""
    if len(prompt_chars) != len(texts):
        raise ValueError(
            f"`chat_prompt_chars` has {len(prompt_chars)} lengths for {len(texts)} chat texts; build both from the "
            "same records (chat_texts and chat_prompt_chars)."
        )
    masks = []
    for text, document, chars in zip(texts, ids, prompt_chars):
        prompt = tokenizer(text[:chars], add_special_tokens=False)["input_ids"]
        if document[: len(prompt)] != prompt:
            raise ValueError(
                f"the chat text {text[:60]!r}... does not tokenize as its prompt ({chars} characters) followed by the "
                "answer: the prompt's last token merges with the answer's first. Pass `chat_prompt_chars` from "
                "chat_prompt_chars(tokenizer, records) for these texts, or train on every token (None)."
            )
        masks.append([0] * len(prompt) + [1] * (len(document) - len(prompt)))
    return masks


def distillation_blocks(tokenizer, code_texts: Sequence[str], chat: Sequence[str], block_size: int, tokens: int,
                        chat_share: float = CHAT_SHARE, seed: int = 0,
                        chat_prompt_chars: Sequence[int] | None = None) -> dict:  # fmt: skip
    """``tokens`` training tokens in blocks of ``block_size``: ``chat_share`` of them from the rendered conversations
    ``chat``, the rest from ``code_texts``, each part packed separately, then the blocks shuffled under ``seed``.

    A part with more tokens than its share gives blocks spread evenly over all of it (a corpus read in path order
    would otherwise train on its first files only); one with fewer is repeated (the returned ``epochs`` says how
    often each part is seen). Returns ``{"blocks", "loss_masks", "code_tokens", "chat_tokens", "epochs"}``.

    With ``chat_prompt_chars`` (:func:`chat_prompt_chars`: the prompt's length in each chat text), ``loss_masks``
    holds one 0/1 list per block, 0 on the prompt tokens, so that :func:`flab_hf.distillation.distill_recover` trains
    on the answers and the code only (``assistant_only_loss``); otherwise it is None (every token counts).
    """
    if not 0 <= chat_share <= 1:
        raise ValueError(f"`chat_share` must be in [0, 1], got {chat_share!r}.")
    if chat_share > 0 and not chat:
        raise ValueError(f"`chat_share={chat_share}` but there are no chat texts; give answers or chat_share=0.")
    if chat_share < 1 and not code_texts:
        raise ValueError(f"`chat_share={chat_share}` leaves code tokens to fill but there are no code texts.")
    eos = tokenizer.eos_token_id
    wanted = {"chat": round(tokens * chat_share), "code": tokens - round(tokens * chat_share)}
    blocks: list[list[int]] = []
    masks: list[list[int]] = []
    summary = {}
    for part, texts in (("code", code_texts), ("chat", chat)):
        if not wanted[part]:
            summary[part] = (0, 0.0)
            continue
        ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        if part == "chat" and chat_prompt_chars is not None:
            part_masks = _prompt_masks(tokenizer, texts, ids, chat_prompt_chars)
        else:
            part_masks = [[1] * len(document) for document in ids]
        packed = pack_blocks(ids, block_size, eos)
        packed_masks = pack_blocks(part_masks, block_size, None if eos is None else 1)
        needed = -(-wanted[part] // block_size)
        if needed <= len(packed):
            taken = [i * len(packed) // needed for i in range(needed)]
        else:
            taken = [i % len(packed) for i in range(needed)]
        blocks.extend(packed[i] for i in taken)
        masks.extend(packed_masks[i] for i in taken)
        summary[part] = (needed * block_size, round(needed / len(packed), 3))
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    logger.info("distillation data: %d blocks of %d tokens (%s)", len(blocks), block_size, summary)
    return {
        "blocks": [blocks[i] for i in order],
        "loss_masks": None if chat_prompt_chars is None else [masks[i] for i in order],
        "code_tokens": summary["code"][0],
        "chat_tokens": summary["chat"][0],
        "epochs": {"code": summary["code"][1], "chat": summary["chat"][1]},
    }


__all__ = [
    "CHAT_SHARE",
    "chat_prompt_chars",
    "chat_texts",
    "clean_answers",
    "distillation_blocks",
    "pack_blocks",
    "self_answers",
]
