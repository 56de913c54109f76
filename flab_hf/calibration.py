# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""What every Flab-Pruner operation shares: supported model types, input checks and the calibration forward
pass (:class:`CalibrationRunner`) with its KL measure ``KL(P_ref || P_pruned)`` (paper Eq. 5-6).

Example:
    >>> from flab_hf.calibration import CalibrationRunner, mean_kl
    >>> runner = CalibrationRunner(model, calibration_ids)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging

import torch
from transformers import PreTrainedModel
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

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


__all__ = [
    "CalibrationRunner",
    "FFN_RULES",
    "FLAB_CLASSES",
    "PAPER_FFN_RULES",
    "SPECIAL_ID_NAMES",
    "SUPPORTED_MODEL_TYPES",
    "SUPPORTED_TOKENIZERS",
    "check_model",
    "kl_divergence",
    "mean_kl",
    "tokenizer_state",
]
