# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Vocabulary pruning (paper Sec. 3.2): keep the tokens a code corpus uses (plus special, added and byte-level base
tokens), rebuild the fast tokenizer with contiguous ids in the original order and slice ``embed_tokens``/``lm_head``.

Example:
    >>> from flab_hf.vocabulary import prune_vocabulary
    >>> model, tokenizer, kept_ids = prune_vocabulary(model, tokenizer, ["def f():\n    return 1\n"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedModel

from .calibration import (
    SPECIAL_ID_NAMES,
    check_model,
    tokenizer_state,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- corpus


def iter_corpus_texts(corpus, text_column: str | None = None, suffixes: Sequence[str] = (".py",)) -> list[str]:
    """The non-empty texts of a corpus: a ``datasets.Dataset``, an iterable of strings or a directory of files.

    Example:
        >>> iter_corpus_texts(["def f():\\n    return 1\\n", ""])
        ['def f():\\n    return 1\\n']
    """
    if isinstance(corpus, (str, os.PathLike)):
        folder = os.fspath(corpus)
        if not os.path.isdir(folder):
            raise ValueError(
                f"`corpus` is the string {folder[:80]!r}, which is not a directory; pass a directory of source "
                "files, a datasets.Dataset or a list of strings."
            )
        texts = []
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(tuple(suffixes)):
                    with open(os.path.join(root, name), encoding="utf-8", errors="replace") as handle:
                        texts.append(handle.read())
        where = f"the directory {folder!r} (files ending in {tuple(suffixes)})"
    else:
        column_names = getattr(corpus, "column_names", None)
        if column_names is not None:  # a datasets.Dataset
            if text_column is None:
                text_column = next((name for name in ("text", "content", "code") if name in column_names), None)
            if text_column is None or text_column not in column_names:
                raise ValueError(
                    f"`text_column={text_column!r}` is not a column of the dataset {column_names}; "
                    "pass the name of the column that holds the code."
                )
            corpus = corpus[text_column]
        texts = []
        for index, item in enumerate(corpus):
            if not isinstance(item, str):
                raise ValueError(
                    f"`corpus` item #{index} is a {type(item).__name__}, not text; the corpus must yield strings."
                )
            texts.append(item)
        where = "`corpus`"
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise ValueError(f"{where} holds no text; give Flab-Pruner a non-empty code corpus.")
    return texts


def count_token_ids(tokenizer, texts: Iterable[str], batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """How often each token id occurs when the tokenizer encodes ``texts`` (without added special tokens)."""
    backend = tokenizer.backend_tokenizer
    size = max(backend.get_vocab_size(with_added_tokens=True), len(tokenizer))
    counts = torch.zeros(size, dtype=torch.long)
    texts = list(texts)
    for start in tqdm(range(0, len(texts), batch_size), desc="flab: counting tokens", disable=not progress):
        encodings = backend.encode_batch(texts[start : start + batch_size], add_special_tokens=False)
        ids = torch.tensor([i for encoding in encodings for i in encoding.ids], dtype=torch.long)
        counts += torch.bincount(ids, minlength=size)[:size]
    return counts


def used_token_ids(tokenizer, texts: Sequence[str], min_count: int = 1) -> set[int]:
    """The ids that encoding ``texts`` uses at least ``min_count`` times (without added special tokens)."""
    counts = count_token_ids(tokenizer, list(texts), progress=False) if texts else torch.zeros(0, dtype=torch.long)
    return {int(i) for i in torch.nonzero(counts >= min_count).flatten().tolist()}


# --------------------------------------------------------------------------------------------------- vocabulary


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: the 256 base tokens of every byte-level BPE vocabulary."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    visible += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(visible), 0
    for byte in range(256):
        if byte not in visible:
            visible.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(visible, (chr(c) for c in chars)))


def _merge_pair(merge) -> tuple[str, str]:
    # tokenizer.json stores merges as "a b" strings (older files) or ["a", "b"] pairs (SmolLM2, newer files)
    if isinstance(merge, str):
        left, right = merge.split(" ", 1)
        return left, right
    return merge[0], merge[1]


def _remap_post_processor(component, new_id: dict[int, int]):
    """Remap token ids in a ``post_processor`` (TemplateProcessing, Roberta/Bert processing, Sequence)."""
    if isinstance(component, dict):
        out = {}
        for key, value in component.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [new_id[i] for i in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                out[key] = [value[0], new_id[value[1]]]
            else:
                out[key] = _remap_post_processor(value, new_id)
        return out
    if isinstance(component, list):
        return [_remap_post_processor(value, new_id) for value in component]
    return component


def _remap_ids(value, new_id: dict[int, int]):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return new_id.get(value, value)
    if isinstance(value, list):
        return [new_id.get(v, v) for v in value]
    return value


def vocabulary_to_keep(model, tokenizer, counts: torch.Tensor, min_count: int = 1, required: Iterable[int] = ()
                       ) -> list[int]:  # fmt: skip
    """Sorted original ids to keep: used ``>= min_count`` times, ``required``, special/added, byte base tokens and
    merge parents.

    Merge parents make the kept set closed under BPE merges: every merge that can produce a kept token keeps both
    of its parts, so any text whose original encoding uses only kept tokens is encoded identically afterwards.
    """
    state = tokenizer_state(tokenizer)
    vocab: dict[str, int] = state["model"]["vocab"]
    keep = {int(i) for i in torch.nonzero(counts >= min_count).flatten().tolist()}
    keep |= {int(i) for i in required}
    keep |= {token["id"] for token in state.get("added_tokens", [])}
    keep |= set(tokenizer.all_special_ids)
    for name in SPECIAL_ID_NAMES:
        value = getattr(model.config, name, None)
        keep |= {v for v in (value if isinstance(value, list) else [value]) if isinstance(v, int)}
    base = [vocab[char] for char in bytes_to_unicode().values() if char in vocab]
    if len(base) < 256:
        logger.warning(
            "The vocabulary lacks %d byte-level base tokens; some texts cannot be encoded.", 256 - len(base)
        )
    keep |= set(base)
    parents: dict[str, list[tuple[str, str]]] = {}
    for merge in state["model"].get("merges", []):
        left, right = _merge_pair(merge)
        parents.setdefault(left + right, []).append((left, right))
    id_to_token = {i: token for token, i in vocab.items()}
    stack = [id_to_token[i] for i in keep if i in id_to_token]
    while stack:
        token = stack.pop()
        for left, right in parents.get(token, ()):
            for part in (left, right):
                if part in vocab and vocab[part] not in keep:
                    keep.add(vocab[part])
                    stack.append(part)
    rows = model.get_input_embeddings().weight.shape[0]
    too_big = sorted(i for i in keep if i >= rows)
    if too_big:
        raise ValueError(
            f"The tokenizer uses ids {too_big[:5]} but the model has only {rows} embedding rows; the tokenizer does "
            "not belong to this model."
        )
    return sorted(keep)


def merge_result_ids(tokenizer, count: int) -> set[int]:
    """Ids of the tokens produced by the tokenizer's first ``count`` BPE merges: the pieces most frequent in the
    tokenizer's own training data (common English words and identifiers), in merge order.

    Example:
        >>> len(merge_result_ids(tokenizer, 1000)) <= 1000  # doctest: +SKIP
        True
    """
    state = tokenizer_state(tokenizer)
    vocab = state["model"]["vocab"]
    ids = set()
    for merge in state["model"].get("merges", [])[:count]:
        left, right = _merge_pair(merge)
        if left + right in vocab:
            ids.add(vocab[left + right])
    return ids


def whitespace_token_ids(tokenizer) -> set[int]:
    """Ids of the tokens that decode to whitespace only: a code tokenizer's runs of spaces, tabs and newlines.

    A corpus uses only some of them (SmolLM2: 102 of 166 in stdlib and package code), but prompts hold others (a
    trailing space before a newline and indentation); keeping them all costs one embedding row each and keeps such
    text tokenized as before.

    Example:
        >>> whitespace_token_ids(tokenizer)  # doctest: +SKIP
        {220, 216, ...}
    """
    vocab = tokenizer_state(tokenizer)["model"]["vocab"]
    ids = sorted(vocab.values())
    texts = tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
    return {i for i, text in zip(ids, texts) if text and not text.strip()}


def rebuild_tokenizer(tokenizer, kept_ids: Sequence[int]):
    """A fast tokenizer over ``kept_ids`` only, ids renumbered ``0..len-1`` in the original order.

    Merges are kept only when both parts and the result are kept; added tokens and the ids in the post-processor
    are remapped. The tokenizer is written to a temporary folder and read back, so that ``tokenizer_config.json``
    (chat template, special tokens) carries over exactly as ``save_pretrained`` writes it.
    """
    state = tokenizer_state(tokenizer)
    new_id = {old: new for new, old in enumerate(kept_ids)}
    vocab = state["model"]["vocab"]
    new_vocab = {token: new_id[i] for token, i in sorted(vocab.items(), key=lambda item: item[1]) if i in new_id}
    merges = []
    for merge in state["model"].get("merges", []):
        left, right = _merge_pair(merge)
        if left in new_vocab and right in new_vocab and left + right in new_vocab:
            merges.append(merge)
    state["model"]["vocab"] = new_vocab
    state["model"]["merges"] = merges
    for token in state.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    state["post_processor"] = _remap_post_processor(state.get("post_processor"), new_id)
    with tempfile.TemporaryDirectory(prefix="flab-tokenizer-") as folder:
        tokenizer.save_pretrained(folder)
        for stale in ("vocab.json", "merges.txt"):  # slow-tokenizer files would override tokenizer.json
            if os.path.exists(os.path.join(folder, stale)):
                os.remove(os.path.join(folder, stale))
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as handle:
            json.dump(state, handle, ensure_ascii=False)
        config_path = os.path.join(folder, "tokenizer_config.json")
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        if "added_tokens_decoder" in config:
            config["added_tokens_decoder"] = {
                str(new_id[int(key)]): value for key, value in config["added_tokens_decoder"].items()
            }
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, ensure_ascii=False, indent=2)
        pruned = AutoTokenizer.from_pretrained(folder)
    if len(pruned) != len(kept_ids):
        raise RuntimeError(f"rebuilt tokenizer has {len(pruned)} tokens, expected {len(kept_ids)}")
    return pruned


def slice_embeddings_(model: PreTrainedModel, kept_ids: Sequence[int]) -> PreTrainedModel:
    """Keep only the rows ``kept_ids`` of ``embed_tokens`` and ``lm_head`` (tied or untied) and remap special ids."""
    index = torch.tensor(list(kept_ids), dtype=torch.long)
    new_id = {old: new for new, old in enumerate(kept_ids)}
    config = model.config
    embeddings = model.get_input_embeddings()
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embeddings.weight
    weight = embeddings.weight.detach()
    pad = _remap_ids(getattr(config, "pad_token_id", None), new_id)
    new_embeddings = nn.Embedding(
        len(kept_ids), weight.shape[1], padding_idx=pad if isinstance(pad, int) else None, device="meta"
    )  # meta: every parameter is replaced below, so skip the random initialisation
    new_embeddings.weight = nn.Parameter(weight[index.to(weight.device)].clone())
    model.set_input_embeddings(new_embeddings)
    if output is not None:
        new_output = nn.Linear(weight.shape[1], len(kept_ids), bias=output.bias is not None, device="meta")
        if tied:
            new_output.weight = new_embeddings.weight
        else:
            new_output.weight = nn.Parameter(output.weight.detach()[index.to(weight.device)].clone())
        if output.bias is not None:
            new_output.bias = nn.Parameter(output.bias.detach()[index.to(weight.device)].clone())
        model.set_output_embeddings(new_output)
    config.vocab_size = len(kept_ids)
    for name in SPECIAL_ID_NAMES:
        if getattr(config, name, None) is not None:
            setattr(config, name, _remap_ids(getattr(config, name), new_id))
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        for name in SPECIAL_ID_NAMES:
            if getattr(generation, name, None) is not None:
                setattr(generation, name, _remap_ids(getattr(generation, name), new_id))
    return model


def chat_token_ids(model, tokenizer, texts: Sequence[str], answer_prompts: int = 64, answer_tokens: int = 256,
                   progress: bool = True, answers_cache: str | os.PathLike | None = None) -> dict[str, set[int]]:  # fmt: skip
    """The ids an instruct model needs to keep its chat: ``"template"`` (the rendered chat template), ``"prompts"``
    (``answer_prompts`` instruction prompts built from ``texts``, the user turns it reads) and ``"answers"`` (its own
    greedy answers to them, at most ``answer_tokens`` tokens each). With ``answers_cache`` the answers are read from
    and written to that JSON-lines file (:func:`flab_hf.distillation_data.self_answers`: resumable, and reusable as
    self-distillation data for recovery)."""
    from .answers import answer_token_ids, chat_template_texts, instruction_prompts

    prompts = instruction_prompts(texts, limit=answer_prompts) if answer_prompts else []
    if answer_prompts and not prompts:
        logger.warning("the corpus has no documented public functions: no instruction prompts, no answers kept")
    if answers_cache is not None and prompts:
        from .distillation_data import self_answers

        records = self_answers(model, tokenizer, prompts, answers_cache, answer_tokens, progress=progress)
        # caches written before records held their ids: the answer's own tokens
        answers = [
            r["ids"] if "ids" in r else tokenizer.encode(r["answer"], add_special_tokens=False) for r in records
        ]
    else:
        answers = answer_token_ids(model, tokenizer, prompts, answer_tokens, progress=progress)

    return {
        "template": used_token_ids(tokenizer, chat_template_texts(tokenizer)),
        "prompts": used_token_ids(tokenizer, prompts),
        "answers": {token for row in answers for token in row},
    }


def prune_vocabulary(model, tokenizer, corpus, min_count: int = 1, text_column: str | None = None, progress=True,
                     keep_chat: bool | None = None, answer_prompts: int = 64, answer_tokens: int = 256,
                     keep_texts: Sequence[str] = (), keep_merges: int = 0,
                     answers_cache: str | os.PathLike | None = None, keep_whitespace: bool = True):  # fmt: skip
    """Vocabulary pruning (paper Sec. 3.2, Algorithm 1): returns ``(model, tokenizer, kept_ids)``.

    ``model`` is changed in place (embeddings sliced, special ids remapped); ``kept_ids`` are the original ids of
    the new ids ``0..len-1``.

    The kept set is every token the corpus uses ``>= min_count`` times, plus every token of ``keep_texts``, plus,
    with ``keep_chat`` (the default when the tokenizer has a chat template), what an instruct model reads and
    writes besides code: the rendered chat template, ``answer_prompts`` instruction prompts built from the corpus's
    documented functions and the model's own greedy answers to them (at most ``answer_tokens`` tokens each). Without them a code-only
    vocabulary drops markdown fences and much of the English of prompts: measured on SmolLM2-135M-Instruct, the pruned
    model then answers HumanEval in unfenced prose (see ``benchmarks/results/flab_vocabulary.json``).
    ``keep_chat=False`` prunes from the code alone (smaller, for completion-only use). ``keep_merges`` also keeps the
    results of the tokenizer's first ``keep_merges`` BPE merges (its most frequent pieces), so that more unseen English
    tokenizes as before, at 1 embedding row per token (measured trade-off in ``flab_vocabulary.json``).
    ``answers_cache``: a JSON-lines file the model's answers are cached in (see :func:`chat_token_ids`).
    ``keep_whitespace`` keeps every whitespace-only token (:func:`whitespace_token_ids`): measured on
    SmolLM2-135M-Instruct, that is 64 more rows and turns 36 more of the 164 HumanEval prompts back into their dense
    tokenization (91 -> 127: their trailing spaces and indentation).

    Example:
        >>> model, tokenizer, kept = prune_vocabulary(model, tokenizer, ["def f(x):\\n    return x\\n"])  # doctest: +SKIP
    """
    check_model(model)
    tokenizer_state(tokenizer)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if keep_chat is None:
        keep_chat = has_template
    elif keep_chat and not has_template:
        raise ValueError(
            "`keep_chat=True` but the tokenizer has no chat template; pass keep_chat=False (or None) to prune from "
            "the corpus alone."
        )
    for name, value, low in (("answer_prompts", answer_prompts, 0), ("answer_tokens", answer_tokens, 1),
                             ("keep_merges", keep_merges, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
    texts = iter_corpus_texts(corpus, text_column=text_column)
    counts = count_token_ids(tokenizer, texts, progress=progress)
    required = used_token_ids(tokenizer, keep_texts)
    required |= merge_result_ids(tokenizer, keep_merges) if keep_merges else set()
    required |= whitespace_token_ids(tokenizer) if keep_whitespace else set()
    sources = {}
    if keep_chat:
        sources = chat_token_ids(model, tokenizer, texts, answer_prompts, answer_tokens, progress, answers_cache)
        for ids in sources.values():
            required |= ids
    kept = vocabulary_to_keep(model, tokenizer, counts, min_count=min_count, required=required)
    pruned_tokenizer = rebuild_tokenizer(tokenizer, kept)
    slice_embeddings_(model, kept)
    corpus_ids = {int(i) for i in torch.nonzero(counts >= min_count).flatten().tolist()}
    added = {name: len(ids - corpus_ids) for name, ids in sources.items()}
    logger.info("vocabulary: %d -> %d tokens (%d used by the corpus; not in the corpus: %s)", counts.numel(),
                len(kept), len(corpus_ids), added or "-")  # fmt: skip
    return model, pruned_tokenizer, kept


__all__ = [
    "bytes_to_unicode",
    "chat_token_ids",
    "count_token_ids",
    "iter_corpus_texts",
    "merge_result_ids",
    "prune_vocabulary",
    "rebuild_tokenizer",
    "slice_embeddings_",
    "used_token_ids",
    "vocabulary_to_keep",
    "whitespace_token_ids",
]
