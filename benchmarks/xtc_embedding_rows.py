"""What low-bit word embeddings cost a trained teacher, before any distillation (``python -m benchmarks
xtc-embedding-rows``).

The float teacher's word embeddings (and tied LM head) are quantised one way at a time, everything else left as it is
(the LM head's input at per-token int8, as in every 1W8A student), and each variant is compared with the float
teacher on held-out valid-split blocks: mean KL(teacher || variant) per token and top-1 agreement, besides the
quantised matrix's relative distance from the float one. Variants: per-row
8 and 4 bits (``XTCEmbedding``'s quantisers), 4 bits with the ``n`` most frequent training tokens' rows at 8 bits
(``embedding_int8_rows``), the same number of random rows at 8 bits (does frequency matter?), and two 4-bit
alternatives that cost no more bits per weight: a per-row scale clipped for the least squared error, and one scale
per 64 columns. Each row also gives the word embedding's stored bytes (codes, scales, row ids).

Example:
    >>> result = embedding_rows_bench("runs/xtc/teacher/<key>/final")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

import torch

logger = logging.getLogger(__name__)

SCALE_BYTES = 4  # float32 per-row (or per-group) scales, as packed checkpoints store them
ROW_ID_BYTES = 4  # int32 ids of the 8-bit rows


@dataclass
class EmbeddingRowsSettings:
    """What ``python -m benchmarks xtc-embedding-rows`` measures."""

    teacher_dir: str = field(metadata={"help": "A trained teacher folder (`python -m benchmarks xtc-teacher`)."})
    int8_rows: tuple[int, ...] = field(
        default=(512, 1024, 2048, 4096), metadata={"help": "Counts of most frequent tokens' rows kept at 8 bits."}
    )
    blocks: int = field(default=48, metadata={"help": "Held-out valid-split blocks (of the teacher's block size)."})
    batch_size: int = field(default=8, metadata={"help": "Blocks per forward pass."})
    seed: int = field(default=0, metadata={"help": "Seed of the random-rows control."})

    def __post_init__(self):
        if not os.path.isfile(os.path.join(self.teacher_dir, "xtc_teacher.json")):
            raise ValueError(
                f"`teacher_dir`={self.teacher_dir!r} holds no xtc_teacher.json; give the `final` folder that "
                "`python -m benchmarks xtc-teacher` printed."
            )
        for name in ("blocks", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if not self.int8_rows or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.int8_rows):
            raise ValueError(f"`int8_rows` must be positive integers, got {self.int8_rows!r}.")


def clipped_row_quantize(weight: torch.Tensor, bits: int, ratios: int = 36) -> torch.Tensor:
    """Per-row symmetric quantise-dequantise with each row's scale chosen, among ``ratios`` clip points from 30% to
    100% of its largest magnitude, for the least squared error.

    Example:
        >>> w = torch.tensor([[0.1, -0.2, 0.3, 4.0]])
        >>> float((clipped_row_quantize(w, 4) - w).pow(2).sum()) <= 0.02
        True
    """
    from xtc_hf.modeling_xtc import MAX_CODE

    top = MAX_CODE[bits]
    amax = weight.abs().amax(-1, keepdim=True).clamp(min=1e-8)
    best, best_error = None, None
    for ratio in torch.linspace(0.3, 1.0, ratios):
        scale = amax * ratio / top
        candidate = torch.round(weight / scale).clamp(-top, top) * scale
        error = (candidate - weight).pow(2).sum(-1, keepdim=True)
        if best is None:
            best, best_error = candidate, error
        else:
            better = error < best_error
            best = torch.where(better, candidate, best)
            best_error = torch.minimum(error, best_error)
    return best


def grouped_quantize(weight: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Symmetric quantise-dequantise with one absmax scale per ``group`` consecutive columns of each row.

    Example:
        >>> grouped_quantize(torch.tensor([[1.0, 0.5, 0.01, 0.02]]), 4, 2).tolist()
        [[1.0, 0.4285714626312256, 0.008571428246796131, 0.019999999552965164]]
    """
    from xtc_hf.modeling_xtc import MAX_CODE

    top = MAX_CODE[bits]
    rows, cols = weight.shape
    groups = weight.reshape(rows, cols // group, group)
    scale = groups.abs().amax(-1, keepdim=True).clamp(min=1e-8) / top
    return (torch.round(groups / scale).clamp(-top, top) * scale).reshape(rows, cols)


def _embedding(weight: torch.Tensor, bits: int, int8_rows=None) -> torch.Tensor:
    """The matrix ``XTCEmbedding`` trains with (and packs to) at ``bits``, ``int8_rows`` kept at 8 bits."""
    from xtc_hf.modeling_xtc import XTCEmbedding

    module = XTCEmbedding(*weight.shape, weight_bits=bits, int8_rows=0 if int8_rows is None else len(int8_rows))
    with torch.no_grad():
        module.weight.copy_(weight)
        if int8_rows is not None:
            module.set_int8_rows(int8_rows)
        return module.quantized_weight().detach()


def _bytes(rows: int, cols: int, bits: int, int8_rows: int = 0, groups: int = 1) -> int:
    return (rows - int8_rows) * cols * bits // 8 + int8_rows * (cols + ROW_ID_BYTES) + rows * groups * SCALE_BYTES


def embedding_rows_bench(settings: EmbeddingRowsSettings | str, progress: bool = True) -> dict:
    """KL and top-1 agreement of each embedding quantiser against the float teacher (see the module docstring)."""
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from compress_utils.capability import probe
    from xtc_hf.data import pack_blocks
    from xtc_hf.modeling_xtc import fake_quantize_tokens
    from xtc_hf.recipe import frequent_tokens

    from .xtc_teacher import teacher_files

    if isinstance(settings, str):
        settings = EmbeddingRowsSettings(teacher_dir=settings)
    folder = settings.teacher_dir
    tokenizer = AutoTokenizer.from_pretrained(folder)
    teacher = GPT2LMHeadModel.from_pretrained(folder).eval()
    with open(os.path.join(folder, "xtc_teacher.json"), encoding="utf-8") as handle:
        block_size = json.load(handle)["settings"]["block_size"]  # what it trained on (its table may be longer)
    weight = teacher.transformer.wte.weight.detach().clone()
    vocab, width = weight.shape
    train = pack_blocks([f["text"] for f in teacher_files(folder, "train")[0]], tokenizer, block_size)
    valid = pack_blocks([f["text"] for f in teacher_files(folder, "valid")[0]], tokenizer, block_size)
    if len(valid) < settings.blocks:
        raise ValueError(f"`blocks`={settings.blocks}: the valid split has only {len(valid)} blocks of {block_size}.")
    held = torch.tensor(valid[: settings.blocks])
    generator = torch.Generator().manual_seed(settings.seed)

    variants = {"8-bit rows": (_embedding(weight, 8), _bytes(vocab, width, 8))}
    variants["4-bit rows"] = (_embedding(weight, 4), _bytes(vocab, width, 4))
    shares = {}
    for count in settings.int8_rows:
        rows, shares[count] = frequent_tokens({"input_ids": train}, count, vocab)
        variants[f"4-bit, {count} most frequent rows 8-bit"] = (
            _embedding(weight, 4, rows), _bytes(vocab, width, 4, count)
        )  # fmt: skip
    control = max(settings.int8_rows)
    rows = torch.randperm(vocab, generator=generator)[:control]
    variants[f"4-bit, {control} random rows 8-bit"] = (_embedding(weight, 4, rows), _bytes(vocab, width, 4, control))
    variants["4-bit rows, least-squares clip"] = (clipped_row_quantize(weight, 4), _bytes(vocab, width, 4))
    variants["4-bit, a scale per 64 columns"] = (grouped_quantize(weight, 4, 64), _bytes(vocab, width, 4, 0, 4))

    def log_probs(model):
        with torch.no_grad():
            return torch.cat([model(held[i : i + settings.batch_size]).logits.float().log_softmax(-1)
                              for i in range(0, len(held), settings.batch_size)])  # fmt: skip

    reference = log_probs(teacher)
    top1 = reference.argmax(-1)
    hook = teacher.lm_head.register_forward_pre_hook(lambda module, args: (fake_quantize_tokens(args[0]),))
    rows_out = {}
    try:
        for name, (matrix, stored) in tqdm(variants.items(), desc="embedding quantisers", disable=not progress):
            with torch.no_grad():
                teacher.transformer.wte.weight.copy_(matrix)  # tied: the LM head reads the same matrix
            scores = log_probs(teacher)
            kl = (reference.exp() * (reference - scores)).sum(-1).mean()
            rows_out[name] = {
                "kl": float(kl),
                # how far the stored matrix is from the float one: ||Q - W|| / ||W||
                "relative_error": float((matrix - weight).norm() / weight.norm()),
                "top1_agreement": float((scores.argmax(-1) == top1).float().mean()),
                "embedding_bytes": stored,
            }
            logger.info("%s: KL %.5f, agreement %.4f", name, rows_out[name]["kl"], rows_out[name]["top1_agreement"])
    finally:
        hook.remove()
        with torch.no_grad():
            teacher.transformer.wte.weight.copy_(weight)
    return {
        "benchmark": "xtc_embedding_rows",
        "settings": asdict(settings),
        "capability": probe(),
        "teacher": {"vocabulary": vocab, "width": width, "block_size": block_size, "train_blocks": len(train)},
        "token_share": {str(count): share for count, share in shares.items()},
        "held_out_tokens": int(held.numel()),
        "variants": rows_out,
    }


def to_markdown(result: dict) -> str:
    """The comparison as a Markdown table, smallest KL first."""
    teacher = result["teacher"]
    lines = [
        "| word embeddings (tied LM head) | KL to the float teacher | top-1 agreement | relative error | embedding KB |",
        "|---|---|---|---|---|",
    ]
    for name, row in sorted(result["variants"].items(), key=lambda item: item[1]["kl"]):
        error = f"{100 * row['relative_error']:.1f}%" if "relative_error" in row else "n/a"
        lines.append(
            f"| {name} | {row['kl']:.4f} | {100 * row['top1_agreement']:.1f}% | {error} | "
            f"{row['embedding_bytes'] / 1e3:.0f} |"
        )
    shares = ", ".join(f"{count}: {100 * share:.1f}%" for count, share in result["token_share"].items())
    return "\n".join(lines) + (
        f"\n\n{result['held_out_tokens']:,} held-out tokens (valid split); vocabulary {teacher['vocabulary']:,} x "
        f"{teacher['width']}; share of the training tokens the most frequent rows cover: {shares}.\n"
    )


__all__ = [
    "EmbeddingRowsSettings",
    "clipped_row_quantize",
    "embedding_rows_bench",
    "grouped_quantize",
    "to_markdown",
]
