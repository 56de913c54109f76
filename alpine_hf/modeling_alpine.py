# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""ALPINE: adaptive token pruning inside RoBERTa-family and BERT encoders.

Paper: Saad et al., "ALPINE: An adaptive language-agnostic pruning method for language models for code", FSE 2025.

In each pruning layer, between the attention block (residual + LayerNorm) and the feed-forward block, every token is
scored by the attention it receives (mean over heads and valid query rows, Eq. 14). Tokens whose score lies outside
``[mu - alpha*sigma, mu + alpha*sigma]`` (statistics over the non-special, non-pad tokens) are dropped, or averaged
into one merged row, and the batch is repacked to the longest kept length, so the FFN and every later layer run on
shorter sequences.

This file travels with saved checkpoints (``trust_remote_code``): it imports only torch, transformers and
``configuration_alpine`` from its own folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions
from transformers.models.bert.modeling_bert import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertOnlyMLMHead,
    BertPreTrainedModel,
)
from transformers.models.roberta.modeling_roberta import (
    RobertaClassificationHead,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaLMHead,
    RobertaModel,
    RobertaPreTrainedModel,
)

from .configuration_alpine import AlpineBertConfig, AlpineRobertaConfig

# --------------------------------------------------------------------------------------------------------------------
# Importance scoring
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class AlpineScoringInputs:
    """What a scoring function receives for one pruning layer.

    Attributes:
        query, key, value: ``(batch, heads, length, head_dim)`` projections of the layer's self-attention.
        valid: ``(batch, length)`` bool, True for real (non-pad) rows.
        scaling: softmax scale (``head_dim ** -0.5``).
        dropout: attention-probability dropout to apply to the output (0 in eval mode).
        hidden_states: ``(batch, length, hidden)`` input of the layer, for scorers that look at representations.
    """

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    valid: torch.Tensor
    scaling: float
    dropout: float
    hidden_states: torch.Tensor


ScoringFunction = Callable[[AlpineScoringInputs], tuple[torch.Tensor, torch.Tensor]]
ALPINE_SCORING_FUNCTIONS: dict[str, ScoringFunction] = {}

# Attention-probability tiles are kept near this size so that logits -> softmax -> (P @ V, w @ P) stay in cache
# instead of streaming a (batch, heads, n, n) tensor through memory three times.
_TILE_BYTES = 8 * 2**20


def register_alpine_scoring(name: str):
    """Register an importance-scoring function under ``name`` (usable as ``config.alpine_scoring``).

    A scoring function takes an :class:`AlpineScoringInputs` and returns ``(attn_output, scores)``: the attention
    output ``(batch, heads, length, head_dim)`` and one score per token ``(batch, length)``. Scores of pad rows are
    ignored. Register before building the model; a checkpoint using a custom scorer loads only where the scorer is
    registered.

    Example:
        >>> @register_alpine_scoring("value_norm")
        ... def value_norm(inputs):
        ...     out = sdpa_attention(inputs)
        ...     return out, inputs.value.norm(dim=-1).mean(1)
    """

    def decorator(fn: ScoringFunction) -> ScoringFunction:
        ALPINE_SCORING_FUNCTIONS[name] = fn
        return fn

    return decorator


def sdpa_attention(inputs: AlpineScoringInputs) -> torch.Tensor:
    """Differentiable attention output with PyTorch's fused kernel (no probabilities materialised)."""
    return F.scaled_dot_product_attention(
        inputs.query,
        inputs.key,
        inputs.value,
        attn_mask=inputs.valid[:, None, None, :],
        dropout_p=inputs.dropout,
        scale=inputs.scaling,
    )


def _query_weights(valid: torch.Tensor) -> torch.Tensor:
    """Weights that average over the valid query rows of each sequence."""
    weights = valid.to(torch.float32)
    return weights / weights.sum(-1, keepdim=True).clamp(min=1.0)


def _tiled_attention_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor | None,
    valid: torch.Tensor,
    scaling: float,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Exact attention output (if ``value`` is given) and received-attention scores, tile by tile.

    Each tile holds the probabilities of a few (sequence, head) pairs; it is used for both ``P @ V`` and the
    column means ``w @ P`` while it is still in cache, so attention is computed once. Not differentiable: the
    training path computes the output with ``sdpa_attention`` and only the scores here.
    """
    batch, heads, length, head_dim = query.shape
    rows = batch * heads
    q = query.reshape(rows, length, head_dim)
    k_t = key.reshape(rows, length, head_dim).transpose(1, 2)
    bias = torch.zeros(batch, 1, length, dtype=query.dtype, device=query.device)
    bias = bias.masked_fill(~valid[:, None, :], torch.finfo(query.dtype).min)
    weights = _query_weights(valid)
    received = torch.empty(rows, 1, length, dtype=torch.float32, device=query.device)
    out = None
    if value is not None:
        v = value.reshape(rows, length, head_dim)
        out = torch.empty_like(v)
    fp32 = query.dtype == torch.float32
    # Low precision holds each tile twice (logits, then fp32 probabilities): size tiles by both.
    entry_bytes = 4 if fp32 else query.element_size() + 4
    per_tile = max(1, _TILE_BYTES // (length * length * entry_bytes))
    buffer = torch.empty(min(per_tile, rows), length, length, dtype=query.dtype, device=query.device) if fp32 else None
    for start in range(0, rows, per_tile):  # a loop over cache tiles, not over samples: a handful of iterations
        stop = min(start + per_tile, rows)
        seq = torch.arange(start, stop, device=query.device) // heads
        tile_bias = bias[seq]
        if fp32:
            probs = torch.baddbmm(tile_bias, q[start:stop], k_t[start:stop], alpha=scaling, out=buffer[: stop - start])
            torch._softmax(probs, -1, False, out=probs)  # in place: no second n x n allocation
        else:  # low precision: softmax statistics in fp32, as sdpa does internally
            logits = torch.baddbmm(tile_bias, q[start:stop], k_t[start:stop], alpha=scaling)
            probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        if out is not None:
            if fp32:
                torch.bmm(probs, v[start:stop], out=out[start:stop])
            else:  # fp32 P @ V on the tile: casting V is (rows x n x d), casting P would be (rows x n x n)
                out[start:stop] = torch.bmm(probs, v[start:stop].float()).to(v.dtype)
        torch.bmm(weights[seq][:, None, :], probs, out=received[start:stop])
    scores = received.view(batch, heads, length).mean(1)
    if out is not None:
        out = out.view(batch, heads, length, head_dim)
    return out, scores


@register_alpine_scoring("attention")
def attention_scoring(inputs: AlpineScoringInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's Eq. 14: attention each token receives, averaged over heads and valid query rows."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (inputs.query, inputs.key, inputs.value))
    if needs_grad or inputs.dropout > 0:
        # Training: keep the fused differentiable kernel for the output; scores are a discrete decision.
        out = sdpa_attention(inputs)
        with torch.no_grad():
            _, scores = _tiled_attention_scores(inputs.query, inputs.key, None, inputs.valid, inputs.scaling)
        return out, scores
    return _tiled_attention_scores(inputs.query, inputs.key, inputs.value, inputs.valid, inputs.scaling)


# --------------------------------------------------------------------------------------------------------------------
# Pruning and repacking (Algorithms 1 and 2)
# --------------------------------------------------------------------------------------------------------------------


def alpine_keep_mask(scores: torch.Tensor, valid: torch.Tensor, special: torch.Tensor, alpha: float) -> torch.Tensor:
    """Algorithm 1: which rows survive a pruning layer.

    Special (CLS/SEP) and pad rows are excluded from mu and sigma (population std); special rows are always kept,
    pad rows never. A candidate is kept iff ``|score - mu| <= alpha * sigma`` (up to rounding, so that equal
    scores, sigma = 0, keep everything).

    Example:
        >>> scores = torch.tensor([[9.0, 1.0, 2.0, 3.0, 50.0, 9.0]])
        >>> valid = torch.ones(1, 6, dtype=torch.bool)
        >>> special = torch.tensor([[True, False, False, False, False, True]])
        >>> alpine_keep_mask(scores, valid, special, alpha=1.0).tolist()
        [[True, True, True, True, False, True]]
    """
    scores = scores.to(torch.float32)
    candidates = valid & ~special
    count = candidates.sum(-1, keepdim=True).clamp(min=1)
    masked = torch.where(candidates, scores, torch.zeros_like(scores))
    mu = masked.sum(-1, keepdim=True) / count
    deviation = torch.where(candidates, (scores - mu).abs(), torch.zeros_like(scores))
    sigma = (deviation.square().sum(-1, keepdim=True) / count).sqrt()
    tolerance = 8 * torch.finfo(torch.float32).eps * mu.abs()
    keep = candidates & (deviation <= alpha * sigma + tolerance)
    return keep | (special & valid)


@dataclass
class _TokenState:
    """Per-row bookkeeping that travels with the hidden states through the encoder."""

    valid: torch.Tensor  # (batch, length) bool: real row (not padding)
    special: torch.Tensor  # (batch, length) bool: CLS/SEP, never pruned
    positions: torch.Tensor  # (batch, length) long: index in the input, -1 for merged and pad rows


def alpine_repack(
    hidden_states: torch.Tensor, keep: torch.Tensor, state: _TokenState, merge: bool
) -> tuple[torch.Tensor, _TokenState]:
    """Drop (or merge) the pruned rows and left-align the kept ones, in order, for the whole batch at once.

    With ``merge``, a sequence that lost rows gets one extra row, right after its kept rows, holding the mean of
    its pruned rows (pad rows excluded). The merged row is neither special nor a position of the input, so later
    layers never mistake it for SEP; a sequence that lost nothing gets no merged row.
    """
    batch, length, hidden = hidden_states.shape
    pruned = state.valid & ~keep
    kept_count = keep.sum(-1)
    has_merge = pruned.any(-1) if merge else torch.zeros_like(kept_count, dtype=torch.bool)
    new_lengths = kept_count + has_merge.long()
    new_length = int(new_lengths.max())
    # Stable sort puts kept rows first, in their original order.
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[:, :new_length]
    packed = hidden_states.gather(1, order[..., None].expand(-1, -1, hidden))
    slots = torch.arange(new_length, device=hidden_states.device)[None, :]
    is_kept = slots < kept_count[:, None]
    if merge:
        weights = pruned.to(hidden_states.dtype)
        weights = weights / weights.sum(-1, keepdim=True).clamp(min=1)
        merged = torch.bmm(weights[:, None, :], hidden_states)  # (batch, 1, hidden)
        is_merged = has_merge[:, None] & (slots == kept_count[:, None])
        packed = torch.where(is_merged[..., None], merged, packed)
    new_state = _TokenState(
        valid=slots < new_lengths[:, None],
        special=state.special.gather(1, order) & is_kept,
        positions=state.positions.gather(1, order).masked_fill(~is_kept, -1),
    )
    return packed, new_state


def layer_flops(n_attention: torch.Tensor, n_ffn: torch.Tensor, hidden: int, heads: int, ffn: int) -> torch.Tensor:
    """Analytic FLOPs of one encoder layer whose attention sees ``n_attention`` rows and FFN sees ``n_ffn`` rows.

    MHA is the paper's Eq. 10; the FFN is Eq. 11 + 12 written for any width ``ffn`` (with ``ffn = 4 * hidden`` it is
    Eq. 13, ``16 n d^2 - n d``). Elementwise over tensors of per-sequence lengths.

    Example:
        >>> int(layer_flops(torch.tensor(512.0), torch.tensor(512.0), hidden=768, heads=12, ffn=3072))
        8054243328
    """
    n, m, d = n_attention.double(), n_ffn.double(), float(hidden)
    mha = 8 * n * d**2 + 4 * n**2 * d - 4 * n * d + heads * n**2
    return mha + 2 * m * d * ffn + 2 * m * ffn * d - m * d


# --------------------------------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class AlpineModelOutput(BaseModelOutputWithPoolingAndCrossAttentions):
    """Encoder output with ALPINE's bookkeeping.

    Attributes:
        attention_mask: ``(batch, out_length)`` mask of ``last_hidden_state`` (rows were pruned and repacked).
        token_positions: ``(batch, out_length)`` index in the input of each output row; -1 for merged and pad rows.
        kept_lengths: ``(num_layers, batch)`` number of real rows each sequence has after each layer.
    """

    attention_mask: torch.Tensor | None = None
    token_positions: torch.Tensor | None = None
    kept_lengths: torch.Tensor | None = None


class AlpineFamilyMixin:
    """Writes the whole family's ``auto_map`` so one checkpoint serves every Auto class, whichever head saved it."""

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.auto_map = dict(_AUTO_MAPS[self.config.model_type])
        return super().save_pretrained(save_directory, *args, **kwargs)


class AlpineEncoderMixin(AlpineFamilyMixin):
    """The ALPINE forward pass, shared by the RoBERTa and BERT models (which own the stock submodules)."""

    def _check_alpine(self):
        self._check_alpine_config()
        self.reset_alpine_stats()

    def _check_alpine_config(self):
        # Run at construction and again at every forward: `model.config.alpine_alpha = -1` may be set at any time.
        self.config.check_alpine_settings()
        if self.config.alpine_scoring not in ALPINE_SCORING_FUNCTIONS:
            raise ValueError(
                f"`alpine_scoring={self.config.alpine_scoring!r}` is not a registered scoring function; choose one of "
                f"{sorted(ALPINE_SCORING_FUNCTIONS)} or register yours with `register_alpine_scoring`."
            )
        if self.config.is_decoder or self.config.add_cross_attention:
            raise ValueError("ALPINE prunes encoder tokens; `is_decoder` and `add_cross_attention` must be False.")

    def reset_alpine_stats(self):
        """Clear the running kept-length statistics read by ``AlpineStatsCallback``."""
        layers = self.config.num_hidden_layers
        self.alpine_stats = {
            "sequences": 0,
            "input_tokens": 0.0,
            "kept_tokens": torch.zeros(layers, dtype=torch.float64, device="cpu"),  # not meta under from_pretrained
            "flops_stock": 0.0,
            "flops_alpine": 0.0,
        }

    @torch.no_grad()
    def _update_alpine_stats(self, input_lengths: torch.Tensor, kept_lengths: torch.Tensor):
        """Accumulate kept lengths and analytic FLOPs (stock vs ALPINE) for ``AlpineStatsCallback``."""
        config, stats = self.config, self.alpine_stats
        lengths, kept = input_lengths.double().cpu(), kept_lengths.double().cpu()
        sizes = (config.hidden_size, config.num_attention_heads, config.intermediate_size)
        stats["sequences"] += int(lengths.numel())
        stats["input_tokens"] += float(lengths.sum())
        stats["kept_tokens"] += kept.sum(-1)
        stats["flops_stock"] += float(layer_flops(lengths, lengths, *sizes).sum()) * config.num_hidden_layers
        stats["flops_alpine"] += float(layer_flops(torch.cat([lengths[None], kept[:-1]]), kept, *sizes).sum())

    def _max_input_length(self) -> int:
        offset = self.config.pad_token_id + 1 if self.config.model_type == "alpine_roberta" else 0
        return self.config.max_position_embeddings - offset

    def _initial_state(self, input_ids, attention_mask, shape, device, special_tokens_mask=None) -> _TokenState:
        batch, length = shape
        valid = torch.ones(shape, dtype=torch.bool, device=device) if attention_mask is None else attention_mask.bool()
        special = torch.zeros(shape, dtype=torch.bool, device=device)
        if special_tokens_mask is not None:
            special = special_tokens_mask.to(device=device, dtype=torch.bool)
        elif input_ids is not None and self.config.alpine_special_ids:
            ids = torch.tensor(self.config.alpine_special_ids, device=device)
            special = torch.isin(input_ids, ids)
        slots = torch.arange(length, device=device).expand(batch, -1)
        first = torch.where(valid, slots, length).amin(-1)
        last = torch.where(valid, slots, -1).amax(-1)
        rows = torch.arange(batch, device=device)
        special[rows, first.clamp(max=length - 1)] = True  # CLS, whatever its id
        special[rows, last.clamp(min=0)] = True  # final SEP, as the paper locates it
        return _TokenState(valid=valid, special=special & valid, positions=torch.where(valid, slots, -1))

    def _check_alpine_inputs(self, shape, attention_mask, inputs_embeds, special_tokens_mask):
        """Refuse inputs that would fail deep inside torch or prune the wrong tokens silently."""
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            name = "input_ids" if inputs_embeds is None else "inputs_embeds"
            raise ValueError(
                f"`{name}` must hold at least one sequence of at least one token (batch, length), got shape "
                f"{tuple(shape)}; tokenize non-empty text (the tokenizer adds CLS/SEP)."
            )
        for name, mask in (("attention_mask", attention_mask), ("special_tokens_mask", special_tokens_mask)):
            if mask is not None and tuple(mask.shape) != tuple(shape):
                raise ValueError(f"`{name}` must have the input's shape {tuple(shape)}, got {tuple(mask.shape)}.")
        if attention_mask is not None:
            empty = (attention_mask == 0).all(-1)
            if bool(empty.any()):
                rows = empty.nonzero().flatten().tolist()
                raise ValueError(
                    f"`attention_mask` rows {rows} hold no token (all zeros); remove empty sequences from the batch."
                )
        if inputs_embeds is not None and special_tokens_mask is None and self.config.alpine_layer_indices:
            raise ValueError(
                "`inputs_embeds` without `special_tokens_mask`: ALPINE cannot recognise the SEP tokens of a "
                "sequence pair from embeddings and would prune them; pass `special_tokens_mask` (from "
                "`tokenizer(..., return_special_tokens_mask=True)`) or `input_ids`."
            )

    def _pruning_attention(self, layer, hidden_states, state):
        """Attention block of a pruning layer: output (after residual + LayerNorm) and token scores."""
        attention = layer.attention.self
        batch, length, _ = hidden_states.shape
        shape = (batch, length, -1, attention.attention_head_size)
        inputs = AlpineScoringInputs(
            query=attention.query(hidden_states).view(shape).transpose(1, 2),
            key=attention.key(hidden_states).view(shape).transpose(1, 2),
            value=attention.value(hidden_states).view(shape).transpose(1, 2),
            valid=state.valid,
            scaling=attention.scaling,
            dropout=attention.dropout.p if self.training else 0.0,
            hidden_states=hidden_states,
        )
        context, scores = ALPINE_SCORING_FUNCTIONS[self.config.alpine_scoring](inputs)
        context = context.transpose(1, 2).reshape(batch, length, -1)
        return layer.attention.output(context, hidden_states), scores

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_hidden_states=None,
        return_dict=None,
        output_attentions=None,
        special_tokens_mask=None,
        **kwargs,
    ) -> AlpineModelOutput | tuple:
        """Encode, pruning tokens in ``config.alpine_layer_indices``; see :class:`AlpineModelOutput`.

        ``special_tokens_mask`` (``(batch, length)``, 1 = CLS/SEP, as returned by
        ``tokenizer(..., return_special_tokens_mask=True)``) marks the tokens that are never pruned. Without it the
        special tokens are found from ``input_ids``; with ``inputs_embeds`` it is required whenever a layer prunes,
        because the SEPs in the middle of a sequence pair cannot be recognised from embeddings.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        self._check_alpine_config()
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        self._check_alpine_inputs(shape, attention_mask, inputs_embeds, special_tokens_mask)
        if output_attentions or self.config.output_attentions:
            raise ValueError(
                "`output_attentions=True` is not supported by ALPINE models (sequence lengths change from layer to "
                "layer); use `kept_lengths`/`token_positions`, or a stock model with `alpine_layers='none'` weights."
            )
        if shape[1] > self._max_input_length():
            raise ValueError(
                f"The input has {shape[1]} tokens but this model's position table allows at most "
                f"{self._max_input_length()}; truncate the input (tokenizer(..., truncation=True, "
                f"max_length={self._max_input_length()}))."
            )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        state = self._initial_state(input_ids, attention_mask, shape, device, special_tokens_mask)
        input_lengths = state.valid.sum(-1)
        hidden_states = self.embeddings(
            input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
        )
        prune_layers = set(self.config.alpine_layer_indices)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        kept_lengths = []
        mask = None
        mask_stale = True
        for index, layer in enumerate(self.encoder.layer):
            if index in prune_layers:
                attention_output, scores = self._pruning_attention(layer, hidden_states, state)
                keep = alpine_keep_mask(scores, state.valid, state.special, self.config.alpine_alpha_for(index))
                if not torch.equal(keep, state.valid):
                    attention_output, state = alpine_repack(attention_output, keep, state, self.config.alpine_merge)
                    mask_stale = True
                hidden_states = layer.feed_forward_chunk(attention_output)
            else:
                if mask_stale:  # rebuilt only when the sequence changed; None (fast path) when nothing is padded
                    mask = create_bidirectional_mask(
                        config=self.config, inputs_embeds=hidden_states, attention_mask=state.valid
                    )
                    mask_stale = False
                hidden_states = layer(hidden_states, mask)
            kept_lengths.append(state.valid.sum(-1))
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)

        kept_lengths = torch.stack(kept_lengths)
        self._update_alpine_stats(input_lengths, kept_lengths)
        pooled = self.pooler(hidden_states) if self.pooler is not None else None
        output = AlpineModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooled,
            hidden_states=all_hidden_states,
            attention_mask=state.valid.long(),
            token_positions=state.positions,
            kept_lengths=kept_lengths,
        )
        return output if return_dict is not False else output.to_tuple()


def _gather_labels(labels: torch.Tensor | None, positions: torch.Tensor) -> torch.Tensor | None:
    """Labels of the rows that survived pruning (merged and pad rows get -100)."""
    if labels is None:
        return None
    gathered = labels.gather(1, positions.clamp(min=0))
    return gathered.masked_fill(positions < 0, -100)


# --------------------------------------------------------------------------------------------------------------------
# RoBERTa family (CodeBERT, GraphCodeBERT, UniXcoder)
# --------------------------------------------------------------------------------------------------------------------


class AlpineRobertaPreTrainedModel(RobertaPreTrainedModel):
    config_class = AlpineRobertaConfig
    config: AlpineRobertaConfig


class AlpineRobertaModel(AlpineEncoderMixin, AlpineRobertaPreTrainedModel, RobertaModel):
    """RoBERTa encoder with ALPINE token pruning; loads any stock RoBERTa/CodeBERT/UniXcoder checkpoint.

    Example:
        >>> from alpine_hf import AlpineRobertaModel
        >>> model = AlpineRobertaModel.from_pretrained("microsoft/codebert-base", alpine_alpha=1.0)  # doctest: +SKIP
        >>> out = model(**tokenizer(code, return_tensors="pt"))  # doctest: +SKIP
        >>> out.kept_lengths  # real rows per layer  # doctest: +SKIP
    """

    def __init__(self, config: AlpineRobertaConfig, add_pooling_layer: bool = True):
        RobertaModel.__init__(self, config, add_pooling_layer=add_pooling_layer)
        self._check_alpine()


class AlpineRobertaForSequenceClassification(
    AlpineFamilyMixin, AlpineRobertaPreTrainedModel, RobertaForSequenceClassification
):
    """RoBERTa classifier (head on the CLS row, which ALPINE always keeps) with ALPINE token pruning.

    Example:
        >>> from alpine_hf import AlpineRobertaForSequenceClassification
        >>> model = AlpineRobertaForSequenceClassification.from_pretrained(  # doctest: +SKIP
        ...     "microsoft/codebert-base", num_labels=2, alpine_alpha=1.0, alpine_layers="all")
    """

    def __init__(self, config: AlpineRobertaConfig):
        RobertaPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.roberta = AlpineRobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.post_init()


class AlpineRobertaForMaskedLM(AlpineFamilyMixin, AlpineRobertaPreTrainedModel, RobertaForMaskedLM):
    """RoBERTa masked-LM with ALPINE; logits cover the surviving rows, labels are gathered to match them.

    Use ``outputs.token_positions`` to map logits rows back to input positions.
    """

    def __init__(self, config: AlpineRobertaConfig):
        RobertaPreTrainedModel.__init__(self, config)
        self.roberta = AlpineRobertaModel(config, add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, special_tokens_mask=None, **kwargs):  # fmt: skip
        return _masked_lm_forward(self, self.roberta, self.lm_head, input_ids, attention_mask, token_type_ids,
                                  position_ids, inputs_embeds, labels, special_tokens_mask)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------------------------


class AlpineBertPreTrainedModel(BertPreTrainedModel):
    config_class = AlpineBertConfig
    config: AlpineBertConfig


class AlpineBertModel(AlpineEncoderMixin, AlpineBertPreTrainedModel, BertModel):
    """BERT encoder with ALPINE token pruning; loads any stock BERT checkpoint (e.g. all-MiniLM-L6-v2).

    Example:
        >>> from alpine_hf import AlpineBertModel
        >>> model = AlpineBertModel.from_pretrained(minilm_dir, alpine_alpha=1.0, alpine_layers="even")  # doctest: +SKIP
    """

    def __init__(self, config: AlpineBertConfig, add_pooling_layer: bool = True):
        BertModel.__init__(self, config, add_pooling_layer=add_pooling_layer)
        self._check_alpine()


class AlpineBertForSequenceClassification(AlpineFamilyMixin, AlpineBertPreTrainedModel, BertForSequenceClassification):
    """BERT classifier (pooled CLS row) with ALPINE token pruning."""

    def __init__(self, config: AlpineBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.bert = AlpineBertModel(config)
        classifier_dropout = (
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class AlpineBertForMaskedLM(AlpineFamilyMixin, AlpineBertPreTrainedModel, BertForMaskedLM):
    """BERT masked-LM with ALPINE; logits cover the surviving rows, labels are gathered to match them."""

    def __init__(self, config: AlpineBertConfig):
        BertPreTrainedModel.__init__(self, config)
        self.bert = AlpineBertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, special_tokens_mask=None, **kwargs):  # fmt: skip
        return _masked_lm_forward(self, self.bert, self.cls, input_ids, attention_mask, token_type_ids,
                                  position_ids, inputs_embeds, labels, special_tokens_mask)  # fmt: skip


def _masked_lm_forward(model, encoder, head, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                       labels, special_tokens_mask=None) -> AlpineMaskedLMOutput:  # fmt: skip
    outputs = encoder(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True,
                      special_tokens_mask=special_tokens_mask)  # fmt: skip
    logits = head(outputs.last_hidden_state)
    labels = _gather_labels(labels, outputs.token_positions)
    loss = None
    if labels is not None:
        loss = F.cross_entropy(logits.view(-1, model.config.vocab_size), labels.view(-1).to(logits.device))
    return AlpineMaskedLMOutput(
        loss=loss,
        logits=logits,
        labels=labels,
        attention_mask=outputs.attention_mask,
        token_positions=outputs.token_positions,
        kept_lengths=outputs.kept_lengths,
    )


@dataclass
class AlpineMaskedLMOutput(AlpineModelOutput):
    """Masked-LM output over the rows that survived pruning; ``labels`` are the gathered labels."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None


_AUTO_MAPS = {
    "alpine_roberta": {
        "AutoConfig": "configuration_alpine.AlpineRobertaConfig",
        "AutoModel": "modeling_alpine.AlpineRobertaModel",
        "AutoModelForSequenceClassification": "modeling_alpine.AlpineRobertaForSequenceClassification",
        "AutoModelForMaskedLM": "modeling_alpine.AlpineRobertaForMaskedLM",
    },
    "alpine_bert": {
        "AutoConfig": "configuration_alpine.AlpineBertConfig",
        "AutoModel": "modeling_alpine.AlpineBertModel",
        "AutoModelForSequenceClassification": "modeling_alpine.AlpineBertForSequenceClassification",
        "AutoModelForMaskedLM": "modeling_alpine.AlpineBertForMaskedLM",
    },
}

__all__ = [
    "ALPINE_SCORING_FUNCTIONS",
    "AlpineBertForMaskedLM",
    "AlpineBertForSequenceClassification",
    "AlpineBertModel",
    "AlpineBertPreTrainedModel",
    "AlpineMaskedLMOutput",
    "AlpineModelOutput",
    "AlpineRobertaForMaskedLM",
    "AlpineRobertaForSequenceClassification",
    "AlpineRobertaModel",
    "AlpineRobertaPreTrainedModel",
    "AlpineScoringInputs",
    "alpine_keep_mask",
    "alpine_repack",
    "attention_scoring",
    "layer_flops",
    "register_alpine_scoring",
    "sdpa_attention",
]
