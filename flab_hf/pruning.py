# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""The three Flab-Pruner operations (paper Sec. 3.2-3.4) on Qwen2, Qwen3 and Llama-family causal LMs.

- :func:`prune_vocabulary`: keep the tokens a code corpus uses (plus special, added and byte-level base tokens),
  rebuild the fast tokenizer with contiguous ids in the original order and slice ``embed_tokens``/``lm_head``.
- :func:`select_layers_kl` (greedy, iterative, paper Algorithm 2) and :func:`select_layers_cosine` (ShortGPT's
  one-shot Block Influence, the released code's score), then :func:`remove_layers_`.
- :func:`ffn_keep_indices`, :func:`select_ffn_rule` and :func:`prune_ffn_`: remove K intermediate neurons per layer.

All KL values are ``KL(P_ref || P_pruned)`` of next-token distributions averaged over calibration tokens (Eq. 5-6).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedModel
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

from compress_utils.counting import count_parameters as core_count_parameters
from compress_utils.distributed import distributed_state

from .configuration_flab import FlabLlamaConfig, FlabQwen2Config, FlabQwen3Config
from .modeling_flab import FlabLlamaForCausalLM, FlabQwen2ForCausalLM, FlabQwen3ForCausalLM

logger = logging.getLogger(__name__)

# model_type -> (flab config, flab causal LM) used when per-layer FFN widths differ
FLAB_CLASSES = {
    "llama": (FlabLlamaConfig, FlabLlamaForCausalLM),
    "qwen2": (FlabQwen2Config, FlabQwen2ForCausalLM),
    "qwen3": (FlabQwen3Config, FlabQwen3ForCausalLM),
}
SUPPORTED_MODEL_TYPES = tuple(sorted([*FLAB_CLASSES, *(f"flab_{name}" for name in FLAB_CLASSES)]))
SUPPORTED_TOKENIZERS = "fast byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2/Qwen3, SmolLM2, StarCoder style)"
FFN_RULES = ("top", "bottom", "middle", "random", "importance")
PAPER_FFN_RULES = ("top", "bottom", "middle", "random")
SPECIAL_ID_NAMES = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "decoder_start_token_id")


# --------------------------------------------------------------------------------------------------- checks


def check_model(model: PreTrainedModel) -> None:
    """Raise a ``ValueError`` unless ``model`` is a causal LM of a supported family (Qwen2, Qwen3, Llama)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"Flab-Pruner supports the model families {SUPPORTED_MODEL_TYPES} (Qwen2, Qwen3 and Llama-style "
            f"decoders such as SmolLM2, CodeQwen, Llama 3); got model_type={model_type!r} "
            f"({type(model).__name__})."
        )
    if not hasattr(model, "lm_head") or not hasattr(getattr(model, "model", None), "layers"):
        raise ValueError(
            f"Flab-Pruner needs a *ForCausalLM model with `.model.layers` and `.lm_head`; got {type(model).__name__}. "
            "Load it with AutoModelForCausalLM."
        )


def _has_byte_level(component) -> bool:
    if isinstance(component, dict):
        if component.get("type") == "ByteLevel":
            return True
        return any(_has_byte_level(value) for value in component.values() if isinstance(value, (dict, list)))
    if isinstance(component, list):
        return any(_has_byte_level(value) for value in component)
    return False


def tokenizer_state(tokenizer) -> dict:
    """The ``tokenizer.json`` content of a byte-level BPE fast tokenizer; ``ValueError`` for any other kind."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; vocabulary pruning supports {SUPPORTED_TOKENIZERS}. "
            "Load the tokenizer with AutoTokenizer (use_fast=True)."
        )
    state = json.loads(backend.to_str())
    kind = state["model"].get("type")
    if kind != "BPE" or state["model"].get("byte_fallback") or not _has_byte_level(state.get("pre_tokenizer")):
        described = f"{kind} with byte_fallback" if state["model"].get("byte_fallback") else kind
        raise ValueError(
            f"The tokenizer is {described!r} without a ByteLevel pre-tokenizer; vocabulary pruning supports "
            f"{SUPPORTED_TOKENIZERS} only (SentencePiece/Unigram/WordPiece tokenizers such as Llama 2, CodeLlama or "
            "BERT are not supported). Disable vocabulary pruning with `FlabConfig(vocab=False)`."
        )
    return state


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


def vocabulary_to_keep(model, tokenizer, counts: torch.Tensor, min_count: int = 1) -> list[int]:
    """Sorted original ids to keep: used ``>= min_count`` times, special/added, byte base tokens, merge parents.

    Merge parents make the kept set closed under BPE merges: every merge that can produce a kept token keeps both
    of its parts, so any text whose original encoding uses only kept tokens is encoded identically afterwards.
    """
    state = tokenizer_state(tokenizer)
    vocab: dict[str, int] = state["model"]["vocab"]
    keep = {int(i) for i in torch.nonzero(counts >= min_count).flatten().tolist()}
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


def prune_vocabulary(model, tokenizer, corpus, min_count: int = 1, text_column: str | None = None, progress=True):
    """Vocabulary pruning (paper Sec. 3.2, Algorithm 1): returns ``(model, tokenizer, kept_ids)``.

    ``model`` is changed in place (embeddings sliced, special ids remapped); ``kept_ids`` are the original ids of
    the new ids ``0..len-1``.

    Example:
        >>> model, tokenizer, kept = prune_vocabulary(model, tokenizer, ["def f(x):\\n    return x\\n"])  # doctest: +SKIP
    """
    check_model(model)
    tokenizer_state(tokenizer)
    texts = iter_corpus_texts(corpus, text_column=text_column)
    counts = count_token_ids(tokenizer, texts, progress=progress)
    kept = vocabulary_to_keep(model, tokenizer, counts, min_count=min_count)
    pruned_tokenizer = rebuild_tokenizer(tokenizer, kept)
    slice_embeddings_(model, kept)
    logger.info("vocabulary: %d -> %d tokens", counts.numel(), len(kept))
    return model, pruned_tokenizer, kept


# --------------------------------------------------------------------------------------------------- forward pieces


class CalibrationRunner:
    """Runs decoder layers on fixed calibration batches so that candidate prunings reuse computed prefixes.

    Rotary embeddings and causal masks depend only on positions, so they are computed once per micro-batch.

    In a distributed run (``accelerate launch``) each process keeps only its share of the micro-batches
    (``PartialState.split_between_processes``) and the searches below sum their KL/similarity totals over every
    process (:meth:`all_sum`), so every process gets the same result as a single process would, in less time. A
    single process runs exactly as before. ``shard=False`` gives every process every batch.
    """

    def __init__(self, model, input_ids: torch.Tensor, batch_size: int = 4, shard: bool = True):
        check_model(model)
        self.model = model
        device = model.get_input_embeddings().weight.device
        batches = list(torch.split(input_ids, batch_size))
        self.state = distributed_state() if shard else None
        if self.state is not None:
            # whole micro-batches, not samples: each batch runs with exactly the shapes a single process uses
            with self.state.split_between_processes(list(range(len(batches)))) as mine:
                batches = [batches[index] for index in mine]
        self.batches = [b.to(device) for b in batches]
        self.context = []
        decoder = model.model
        with torch.no_grad():
            for batch in self.batches:
                embeds = decoder.embed_tokens(batch)
                positions = torch.arange(batch.shape[1], device=device).unsqueeze(0)
                kwargs = dict(
                    config=decoder.config,
                    inputs_embeds=embeds,
                    attention_mask=None,
                    past_key_values=None,
                    position_ids=positions,
                )
                masks = {"full_attention": create_causal_mask(**kwargs)}
                if "sliding_attention" in (getattr(decoder.config, "layer_types", None) or []):
                    masks["sliding_attention"] = create_sliding_window_causal_mask(**kwargs)
                self.context.append((positions, decoder.rotary_emb(embeds, positions), masks))

    @torch.no_grad()
    def embed(self, index: int) -> torch.Tensor:
        return self.model.model.embed_tokens(self.batches[index])

    @torch.no_grad()
    def run(self, index: int, hidden: torch.Tensor, layers) -> torch.Tensor:
        """Run ``layers`` (decoder layer modules, in order) on the hidden states of micro-batch ``index``."""
        positions, rotary, masks = self.context[index]
        for layer in layers:
            kind = getattr(layer.self_attn, "layer_type", None) or getattr(layer, "attention_type", None)
            out = layer(
                hidden,
                attention_mask=masks.get(kind or "full_attention", masks["full_attention"]),
                position_embeddings=rotary,
                position_ids=positions,
            )
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    @torch.no_grad()
    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.lm_head(self.model.model.norm(hidden))
        return torch.log_softmax(logits.float(), dim=-1)

    @torch.no_grad()
    def full_log_probs(self) -> list[torch.Tensor]:
        layers = list(self.model.model.layers)
        return [self.log_probs(self.run(i, self.embed(i), layers)) for i in range(len(self.batches))]

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` (float64) summed over the processes sharing the calibration set; unchanged in one process.

        A collective: every process must call it the same number of times, whatever its share of batches.
        """
        values = values.double()
        if self.state is None:
            return values
        values = values.to(self.state.device)  # nccl reduces on the GPU, gloo on the CPU
        torch.distributed.all_reduce(values)
        return values.cpu()

    @torch.no_grad()
    def mean_kl(self, references: list[torch.Tensor], candidates: list[torch.Tensor] | None = None) -> float:
        """:func:`mean_kl` of ``candidates`` (default: the model's current log-probs) over the whole calibration set."""
        if candidates is None:
            candidates = self.full_log_probs()
        if self.state is None:
            return mean_kl(references, candidates)
        values = [kl_divergence(r, q) for r, q in zip(references, candidates, strict=True)]
        local = [sum(float(v.double().sum()) for v in values), sum(v.numel() for v in values)]
        total, count = self.all_sum(torch.tensor(local, dtype=torch.float64)).tolist()
        return total / count


def kl_divergence(reference: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of KL(P || Q) with ``reference = log P`` and ``log_q = log Q`` (same last dimension)."""
    return (reference.exp() * (reference - log_q)).sum(-1).flatten()


def mean_kl(references: list[torch.Tensor], candidates: list[torch.Tensor]) -> float:
    values = torch.cat([kl_divergence(r, q) for r, q in zip(references, candidates, strict=True)])
    return float(values.mean())


# --------------------------------------------------------------------------------------------------- layers


def check_layer_count(model, n: int) -> None:
    total = len(model.model.layers)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < total:
        raise ValueError(
            f"`layers_to_prune={n!r}` but the model has {total} decoder layers; prune an int in [0, {total - 1}] "
            "(at least one layer must remain)."
        )


def select_layers_kl(model, runner: CalibrationRunner, references, n: int, progress: bool = True) -> dict:
    """Greedy iterative layer removal minimising KL to ``references`` (paper Algorithm 2).

    At each step every remaining layer is tried; the hidden states entering each layer are computed once per step
    and reused, so trying layer ``j`` runs only the layers after it. Does not change ``model``.

    Returns ``{"removed": original indices in removal order, "kl": KL after each step, "scores": per-step KL of
    every candidate}``.
    """
    check_layer_count(model, n)
    layers = list(model.model.layers)
    current = list(range(len(layers)))
    removed, kls, scores = [], [], []
    main = runner.state is None or runner.state.is_main_process
    bar = tqdm(
        total=sum(len(current) - s for s in range(n)), desc="flab: KL layer search", disable=not progress or not main
    )
    for _ in range(n):
        # running KL sums per candidate: storing every candidate's log-probs would take candidates x calibration x
        # vocabulary floats
        totals = [0.0] * len(current)
        tokens = 0
        for b in range(len(runner.batches)):
            hidden = runner.embed(b)
            prefixes = []
            for position in range(len(current)):
                prefixes.append(hidden)
                hidden = runner.run(b, hidden, [layers[current[position]]])
            for position in range(len(current)):
                rest = [layers[i] for i in current[position + 1 :]]
                log_q = runner.log_probs(runner.run(b, prefixes[position], rest))
                totals[position] += float(kl_divergence(references[b], log_q).sum())
            tokens += references[b].shape[0] * references[b].shape[1]
        # sums over this process's batches -> sums over the whole calibration set (a no-op in one process)
        summed = runner.all_sum(torch.tensor([*totals, tokens], dtype=torch.float64)).tolist()
        totals, tokens = summed[:-1], summed[-1]
        step_scores = {}
        for position in range(len(current)):
            step_scores[current[position]] = totals[position] / tokens
            bar.update(1)
        best = min(step_scores, key=step_scores.get)
        removed.append(best)
        kls.append(step_scores[best])
        scores.append(step_scores)
        current.remove(best)
        logger.info("KL layer search: removed layer %d (KL %.4f)", best, step_scores[best])
    bar.close()
    return {"removed": removed, "kl": kls, "scores": scores}


def select_layers_cosine(model, runner: CalibrationRunner, n: int) -> dict:
    """ShortGPT's one-shot Block Influence: remove the ``n`` layers whose output is most similar to their input.

    ``BI_i = 1 - mean_token cos(h_i, h_{i+1})``; the released Flab-Pruner code uses this score. Does not change
    ``model``. Returns ``{"removed": original indices, "scores": BI per layer}``.
    """
    check_layer_count(model, n)
    layers = list(model.model.layers)
    totals = torch.zeros(len(layers), dtype=torch.float64)
    count = 0
    for b in range(len(runner.batches)):
        hidden = runner.embed(b)
        for index, layer in enumerate(layers):
            out = runner.run(b, hidden, [layer])
            totals[index] += torch.cosine_similarity(hidden.float(), out.float(), dim=-1).sum().double()
            hidden = out
        count += runner.batches[b].numel()
    summed = runner.all_sum(torch.cat([totals, torch.tensor([count], dtype=torch.float64)]))
    totals, count = summed[:-1], summed[-1].item()
    influence = 1 - totals / count
    removed = sorted(torch.argsort(influence)[:n].tolist())
    return {"removed": removed, "scores": {i: float(v) for i, v in enumerate(influence)}}


def remove_layers_(model, indices: Iterable[int]) -> PreTrainedModel:
    """Delete decoder layers in place; renumber ``layer_idx`` and shorten ``layer_types``/``intermediate_sizes``."""
    indices = set(indices)
    total = len(model.model.layers)
    if any(not 0 <= i < total for i in indices) or len(indices) >= total:
        raise ValueError(f"cannot remove layers {sorted(indices)} from a {total}-layer model; keep at least one.")
    kept = [i for i in range(total) if i not in indices]
    model.model.layers = nn.ModuleList([model.model.layers[i] for i in kept])
    for new_index, layer in enumerate(model.model.layers):
        # the KV cache is indexed by layer_idx: stale numbers break generate() with cache
        layer.self_attn.layer_idx = new_index
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_index
    config = model.config
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[i] for i in kept]
    if getattr(config, "intermediate_sizes", None) is not None:
        config.intermediate_sizes = [config.intermediate_sizes[i] for i in kept]
    config.num_hidden_layers = len(kept)
    return model


# --------------------------------------------------------------------------------------------------- FFN


def ffn_widths(model) -> list[int]:
    return [layer.mlp.down_proj.in_features for layer in model.model.layers]


def resolve_ffn_neurons(model, ffn_neurons) -> list[int]:
    """Neurons to remove per layer, from an int (every layer) or a per-layer list; ``ValueError`` if too many."""
    widths = ffn_widths(model)
    if isinstance(ffn_neurons, int) and not isinstance(ffn_neurons, bool):
        counts = [ffn_neurons] * len(widths)
    elif isinstance(ffn_neurons, (list, tuple)):
        counts = list(ffn_neurons)
        if len(counts) != len(widths):
            raise ValueError(
                f"`ffn_neurons` lists {len(counts)} values but the model has {len(widths)} layers after layer "
                "pruning; give one count per remaining layer or a single int."
            )
    else:
        raise ValueError(f"`ffn_neurons` must be an int or a list of ints, got {ffn_neurons!r}.")
    for index, (count, width) in enumerate(zip(counts, widths)):
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < width:
            raise ValueError(
                f"`ffn_neurons` asks to remove {count!r} neurons from layer {index}, which has {width}; remove an int "
                f"in [0, {width - 1}] (at least one neuron must remain)."
            )
    return counts


def ffn_keep_indices(rule: str, width: int, remove: int, seed: int = 0, importance=None) -> torch.Tensor:
    """Sorted indices of the ``width - remove`` intermediate neurons a rule keeps (paper Sec. 3.4).

    ``top`` keeps the first neurons, ``bottom`` the last, ``middle`` a centred block, ``random`` a seeded sample,
    ``importance`` the highest ``importance`` scores.

    Example:
        >>> ffn_keep_indices("middle", 6, 2).tolist()
        [1, 2, 3, 4]
    """
    keep = width - remove
    if rule == "top":
        return torch.arange(keep)
    if rule == "bottom":
        return torch.arange(remove, width)
    if rule == "middle":
        start = remove // 2
        return torch.arange(start, start + keep)
    if rule == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.sort(torch.randperm(width, generator=generator)[:keep]).values
    if rule == "importance":
        if importance is None:
            raise ValueError("the `importance` FFN rule needs importance scores (see `ffn_importance`).")
        return torch.sort(torch.topk(importance.float().cpu(), keep).indices).values
    raise ValueError(f"`ffn_rule` must be one of {FFN_RULES} or 'auto', got {rule!r}.")


@torch.no_grad()
def ffn_importance(model, runner: CalibrationRunner) -> list[torch.Tensor]:
    """Per-layer neuron importance: mean |act(gate x) * up x| on the calibration set times ``||down_proj[:, j]||``."""
    layers = list(model.model.layers)
    sums = [torch.zeros(w, dtype=torch.float64) for w in ffn_widths(model)]
    counts = [0] * len(layers)
    handles = []
    for index, layer in enumerate(layers):

        def hook(module, args, index=index):
            activation = args[0].detach().float().abs()
            sums[index] += activation.reshape(-1, activation.shape[-1]).sum(0).double().cpu()
            counts[index] += activation[..., 0].numel()

        handles.append(layer.mlp.down_proj.register_forward_pre_hook(hook))
    try:
        for b in range(len(runner.batches)):
            runner.run(b, runner.embed(b), layers)
    finally:
        for handle in handles:
            handle.remove()
    if runner.state is not None:  # sums over every process's share of the calibration set
        summed = runner.all_sum(torch.cat([*sums, torch.tensor(counts, dtype=torch.float64)]))
        sums = list(torch.split(summed[: -len(layers)], [len(s) for s in sums]))
        counts = [int(c) for c in summed[-len(layers) :].tolist()]
    norms = [layer.mlp.down_proj.weight.detach().float().norm(dim=0).cpu() for layer in layers]
    return [(s / max(c, 1)).float() * n for s, c, n in zip(sums, counts, norms)]


def _sliced_linears(mlp, keep: torch.Tensor) -> dict[str, nn.Linear]:
    out = {}
    for name, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
        old = getattr(mlp, name)
        index = keep.to(old.weight.device)
        weight = old.weight.detach().index_select(dim, index).clone()
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=old.bias is not None, device="meta")
        new.weight = nn.Parameter(weight)
        if old.bias is not None:
            bias = old.bias.detach()
            new.bias = nn.Parameter((bias.index_select(0, index) if dim == 0 else bias).clone())
        out[name] = new
    return out


def _set_linears(mlp, linears: dict[str, nn.Linear]) -> None:
    for name, module in linears.items():
        setattr(mlp, name, module)
    mlp.intermediate_size = linears["down_proj"].in_features


def ffn_plan(model, rule: str, counts: list[int], seed: int = 0, importance=None) -> list[torch.Tensor]:
    """The kept neuron indices of every layer under ``rule`` (layer ``i`` uses seed ``seed + i`` for ``random``)."""
    widths = ffn_widths(model)
    return [
        ffn_keep_indices(rule, width, count, seed + index, None if importance is None else importance[index])
        for index, (width, count) in enumerate(zip(widths, counts))
    ]


def prune_ffn_(model, plan: list[torch.Tensor]) -> PreTrainedModel:
    """Keep only the planned intermediate neurons of every layer, in place (widths may then differ per layer)."""
    for layer, keep in zip(model.model.layers, plan, strict=True):
        _set_linears(layer.mlp, _sliced_linears(layer.mlp, keep))
    widths = ffn_widths(model)
    if getattr(model.config, "intermediate_sizes", None) is not None:
        model.config.intermediate_sizes = widths
    if len(set(widths)) == 1:
        model.config.intermediate_size = widths[0]
    return model


@torch.no_grad()
def ffn_rule_kl(model, runner, references, plan) -> float:
    """KL to ``references`` if ``plan`` were applied; the model is restored afterwards."""
    layers = list(model.model.layers)
    originals = [
        {name: getattr(layer.mlp, name) for name in ("gate_proj", "up_proj", "down_proj")} for layer in layers
    ]
    widths = [layer.mlp.down_proj.in_features for layer in layers]
    try:
        for layer, keep in zip(layers, plan):
            _set_linears(layer.mlp, _sliced_linears(layer.mlp, keep))
        return runner.mean_kl(references)
    finally:
        for layer, linears, width in zip(layers, originals, widths):
            _set_linears(layer.mlp, linears)
            layer.mlp.intermediate_size = width


def select_ffn_rule(model, runner, references, counts, rules=FFN_RULES, auto_rules=PAPER_FFN_RULES, seed=0,
                    progress=True) -> dict:  # fmt: skip
    """KL of every rule in ``rules``; the chosen rule is the lowest-KL one among ``auto_rules``."""
    importance = ffn_importance(model, runner) if "importance" in rules else None
    kls = {}
    for rule in tqdm(rules, desc="flab: FFN rules", disable=not progress):
        kls[rule] = ffn_rule_kl(model, runner, references, ffn_plan(model, rule, counts, seed, importance))
        logger.info("FFN rule %s: KL %.4f", rule, kls[rule])
    candidates = [rule for rule in auto_rules if rule in kls]
    chosen = min(candidates, key=kls.get)
    return {"kl": kls, "chosen": chosen, "importance": importance}


# --------------------------------------------------------------------------------------------------- saving format


def to_saveable(model: PreTrainedModel) -> PreTrainedModel:
    """A model whose config describes its shapes: stock class if FFN widths are uniform, else a Flab class.

    A uniform stock model is returned unchanged (its ``intermediate_size`` is already set by :func:`prune_ffn_`).
    """
    widths = ffn_widths(model)
    model_type = model.config.model_type
    base_type = model_type.removeprefix("flab_")
    if len(set(widths)) == 1 and not model_type.startswith("flab_"):
        model.config.intermediate_size = widths[0]
        return model
    config_class, model_class = FLAB_CLASSES[base_type]
    if model_type.startswith("flab_"):
        model.config.intermediate_sizes = widths
        model.config.intermediate_size = max(widths)
        return model
    values = model.config.to_dict()
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "intermediate_size"):
        values.pop(key, None)
    config = config_class(**values, intermediate_sizes=widths, intermediate_size=max(widths))
    reference = model.get_input_embeddings().weight
    new = model_class(config).to(device=reference.device, dtype=reference.dtype)
    new.load_state_dict(model.state_dict(), strict=True)
    new.generation_config = copy.deepcopy(model.generation_config)
    new.eval()
    return new


def _component(name: str) -> str:
    if "embed_tokens" in name:
        return "embed_tokens"
    if "lm_head" in name:
        return "lm_head"
    if ".self_attn." in name:
        return "attention"
    if ".mlp." in name:
        return "ffn"
    return "norms"


def count_parameters(model: PreTrainedModel) -> dict[str, int]:
    """Parameters per component (tied ``lm_head`` counted once, under ``embed_tokens``).

    Example:
        >>> count_parameters(model)["total"]  # doctest: +SKIP
    """
    counts = {"embed_tokens": 0, "lm_head": 0, "attention": 0, "ffn": 0, "norms": 0}
    counts.update(core_count_parameters(model, component=_component))
    return counts


__all__ = [
    "CalibrationRunner",
    "FFN_RULES",
    "PAPER_FFN_RULES",
    "SUPPORTED_MODEL_TYPES",
    "check_model",
    "count_parameters",
    "count_token_ids",
    "distributed_state",
    "ffn_importance",
    "ffn_keep_indices",
    "ffn_plan",
    "ffn_rule_kl",
    "ffn_widths",
    "iter_corpus_texts",
    "kl_divergence",
    "mean_kl",
    "prune_ffn_",
    "prune_vocabulary",
    "rebuild_tokenizer",
    "remove_layers_",
    "resolve_ffn_neurons",
    "select_ffn_rule",
    "select_layers_cosine",
    "select_layers_kl",
    "slice_embeddings_",
    "to_saveable",
    "tokenizer_state",
    "vocabulary_to_keep",
]
