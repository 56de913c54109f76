# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""XTC GPT-2: GPT-2 on ``nn.Linear``-style layers with binary/ternary/int8 weights and int8 activations.

Two representations of the same model:

* training (``config.packed=False``): float weights, quantised on the fly in the forward pass with a
  straight-through estimator (STE), so the model trains with quantisation-aware knowledge distillation;
* packed (``config.packed=True``, after :meth:`XTCGPT2LMHeadModel.pack_`): 1-bit weights 8 per byte, 2-bit 4 per
  byte, 8-bit 1 per byte, stored as buffers with their float scales. ``save_pretrained`` therefore writes a really
  small safetensors file, and inference runs every quantised Linear as an int8 x int8 matrix product
  (``torch._int_mm`` where it is fast, else an fp32 product of the same integer codes: bit-identical, see
  ``config.xtc_kernel``) with the scales applied after.

Quantisers (XTC): binary ``sign(W) * mean|W|``; ternary ``alpha * sign(W) * [|W| > 0.7 mean|W|]`` with ``alpha`` the
mean magnitude of the kept weights; int8 ``round(W / s)``, ``s = max|W| / 127``; one scale per matrix (default) or
per output row; word embeddings (the tied LM head) per row, at ``config.embedding_bits`` where set (e.g. 8-bit
embeddings under 1-bit blocks; ``config.embedding_int8_rows`` rows of the most frequent tokens at 8 bits under lower
ones), and position embeddings per position at ``config.position_embedding_bits`` where set;
activations symmetric per token, ``s = max|x| / 127``. LayerNorm and biases stay in floating point.

This file travels with saved checkpoints (``trust_remote_code``): it imports only torch, transformers and
``configuration_xtc`` from its own folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import zlib

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions
from transformers.models.gpt2.modeling_gpt2 import (
    GPT2MLP,
    GPT2Attention,
    GPT2Block,
    GPT2Model,
    GPT2PreTrainedModel,
)
from transformers.utils.output_capturing import OutputRecorder

from .configuration_xtc import XTC_KERNELS, XTCGPT2Config

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Quantisers
# --------------------------------------------------------------------------------------------------------------------

_EPS = 1e-8
MAX_CODE = {1: 1, 2: 1, 4: 7, 8: 127}  # max|code| per weight width (symmetric: 4 bits use [-7, 7], 8 bits [-127, 127])
TERNARY_THRESHOLD = 0.7  # XTC / TWN: weights below 0.7 * mean|W| become 0


def _reduce_dims(weight: torch.Tensor, per_row: bool):
    return {"dim": tuple(range(1, weight.ndim)), "keepdim": True} if per_row else {}


def quantize_weight(weight: torch.Tensor, bits: int, per_row: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes (as floats) and scales of ``weight``: ``codes * scale`` is the quantised weight.

    Returns codes of ``weight``'s shape (``+-1`` for 1 bit, ``-1/0/+1`` for 2 bits, ``[-7, 7]`` for 4 bits,
    ``[-127, 127]`` for 8 bits) and a scale of shape ``(rows, 1)`` (``per_row``) or ``()``.

    Example:
        >>> codes, scale = quantize_weight(torch.tensor([[0.5, -1.5]]), bits=1)
        >>> codes.tolist(), float(scale)
        ([[1.0, -1.0]], 1.0)
    """
    w = weight.float()
    reduce = _reduce_dims(w, per_row)
    magnitude = w.abs()
    if bits == 1:
        # sign(0) is 0 in torch; a binary weight must be +-1, so 0 maps to +1
        codes = torch.where(w >= 0, 1.0, -1.0)
        scale = magnitude.mean(**reduce)
    elif bits == 2:
        threshold = TERNARY_THRESHOLD * magnitude.mean(**reduce)
        keep = (magnitude > threshold).float()
        codes = torch.sign(w) * keep
        scale = (magnitude * keep).sum(**reduce) / keep.sum(**reduce).clamp(min=1.0)
    elif bits in (4, 8):
        top = MAX_CODE[bits]
        scale = magnitude.amax(**reduce) / top
        codes = torch.round(w / scale.clamp(min=_EPS)).clamp(-top, top)
    else:
        raise ValueError(f"`bits` must be 1, 2, 4 or 8 to quantise a weight, got {bits!r}.")
    return codes, scale.clamp(min=_EPS)


class _StraightThrough(torch.autograd.Function):
    """Forward the quantised value, pass the gradient through unchanged (STE)."""

    @staticmethod
    def forward(ctx, value, quantized):
        return quantized

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def fake_quantize_weight(weight: torch.Tensor, bits: int, per_row: bool = False) -> torch.Tensor:
    """Quantise-dequantise ``weight`` with a straight-through gradient (identity for ``bits=32``)."""
    if bits >= 32:
        return weight
    codes, scale = quantize_weight(weight.detach(), bits, per_row)
    return _StraightThrough.apply(weight, (codes * scale).to(weight.dtype))


def quantize_tokens(x: torch.Tensor, overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric dynamic per-token int8 quantisation: float codes in ``[-127, 127]`` and ``(..., 1)`` float32 scales.

    ``codes = round(x * 127 / max|x|)`` needs no clamp: ``|x| * 127 / max|x| <= 127`` up to one rounding error, far
    from 127.5. Multiplying by ``127 / max|x|`` (not dividing by the scale) is what the int8 path does too.
    ``overwrite=True`` writes the codes into ``x`` itself (float32 ``x`` only), for callers that own ``x``: a fresh
    multi-megabyte buffer per call costs as much as the quantisation (page faults).

    Example:
        >>> codes, scale = quantize_tokens(torch.tensor([[1.0, -0.5]]))
        >>> codes.tolist(), scale.tolist()
        ([[127.0, -64.0]], [[0.007874015718698502]])
    """
    if x.dtype in (torch.bfloat16, torch.float16):
        # one upcast, then float32 passes: 2-3x faster on CPU than mixed-dtype ones, the same codes and scales
        # (bf16/fp16 -> fp32 is exact, and so are max and min)
        x, overwrite = x.float(), True
    # max|x| as max(max x, -min x): the same value without an |x| temporary (a fresh page-faulted buffer per call)
    amax = torch.maximum(x.amax(dim=-1, keepdim=True), x.amin(dim=-1, keepdim=True).neg()).float().clamp_(min=_EPS)
    # rounded in place: a second fresh buffer would cost as much again
    if overwrite and x.dtype == torch.float32:
        return x.mul_(127.0 / amax).round_(), amax / 127.0
    return (x * (127.0 / amax)).round_(), amax / 127.0


def fake_quantize_tokens(x: torch.Tensor) -> torch.Tensor:
    """Per-token int8 quantise-dequantise with a straight-through gradient."""
    codes, scale = quantize_tokens(x.detach())
    return _StraightThrough.apply(x, (codes * scale).to(x.dtype))


# --------------------------------------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------------------------------------


def packed_columns(in_features: int, bits: int) -> int:
    """Bytes per row of a packed weight with ``in_features`` columns."""
    per_byte = 8 // bits
    return -(-in_features // per_byte)


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes ``(rows, cols)`` into ``uint8`` ``(rows, packed_columns(cols, bits))``.

    1 bit: bit ``j`` of byte ``k`` is ``codes[:, 8k + j] > 0``. 2 bits: code 0 -> 0b00, +1 -> 0b01, -1 -> 0b10, field
    ``j`` at bits ``2j..2j+1``. 4 bits: the code's two's-complement nibble, column ``2k`` in the low half of byte
    ``k``. 8 bits: the int8 value's byte.

    Example:
        >>> pack_codes(torch.tensor([[1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0]]), 1).tolist()
        [[13]]
    """
    codes = codes.to(torch.int16)
    if bits == 8:
        return codes.to(torch.int8).view(torch.uint8).contiguous()
    per_byte = 8 // bits
    rows, cols = codes.shape
    pad = packed_columns(cols, bits) * per_byte - cols
    if bits == 1:
        fields = (codes > 0).to(torch.int16)
    elif bits == 4:
        fields = codes & 0xF
    else:
        fields = torch.where(codes > 0, 1, torch.where(codes < 0, 2, 0)).to(torch.int16)
    fields = F.pad(fields, (0, pad)).view(rows, -1, per_byte)
    shifts = torch.arange(per_byte, device=codes.device, dtype=torch.int16) * bits
    return (fields << shifts).sum(-1).to(torch.uint8)


def unpack_codes(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``int8`` codes ``(rows, cols)``. Raises ``ValueError`` on invalid 2-bit fields."""
    if bits == 8:
        return packed.view(torch.int8)[:, :cols]
    per_byte = 8 // bits
    shifts = torch.arange(per_byte, device=packed.device, dtype=torch.int16) * bits
    fields = (packed.to(torch.int16).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    fields = fields.view(packed.shape[0], -1)[:, :cols]
    if bits == 1:
        return (fields * 2 - 1).to(torch.int8)
    if bits == 4:
        return torch.where(fields >= 8, fields - 16, fields).to(torch.int8)
    if bool((fields == 3).any()):
        raise ValueError("Packed ternary weights hold the invalid code 0b11: the checkpoint is corrupted.")
    return torch.where(fields == 2, -1, fields).to(torch.int8)


def checksum(tensor: torch.Tensor, value: int = 0) -> int:
    """CRC32 of a tensor's bytes, stored next to packed weights so a corrupted checkpoint is detected on load.
    ``value`` continues a running CRC (``checksum(b, checksum(a))`` covers ``a`` then ``b``)."""
    data = tensor.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes()
    return zlib.crc32(data, value)


# --------------------------------------------------------------------------------------------------------------------
# int8 matrix product
# --------------------------------------------------------------------------------------------------------------------

# int8 products run in (ROWS x CHUNK) output tiles so that the int32 tile and its float32 rescaling stay in cache
# instead of streaming a (tokens, vocab) int32 tensor through memory several times
CHUNK = 1024
ROWS = 256
TILE = 2**18  # output elements per tile (1 MB in float32)
_INT_MM_OK = {"cpu": hasattr(torch, "_int_mm"), "cuda": hasattr(torch, "_int_mm")}
KERNELS = XTC_KERNELS
FLOAT_EXACT = 2**24  # every integer of magnitude <= 2**24 is a float32; sums that stay below it are exact
# oneDNN's u8 x s8 product on CPUs without VNNI adds pairs of u8 * s8 products in int16 (vpmaddubsw), which
# saturates beyond 32767: 2 * 255 * 64 fits, 2 * 255 * 65 may not. Wider weight codes (8-bit) use another kernel.
ONEDNN_MAX_WEIGHT_CODE = 64
ONEDNN_MIN_ROWS = 16  # below ~16 tokens (batch-1 decoding) the call overhead makes the fp32 product faster
ONEDNN_ZERO_POINT = 128  # activation codes [-127, 127] travel as uint8 [1, 255]

# --------------------------------------------------------------------------------------------------------------------
# Kernel choice. The int8 check is a copy of `compress_utils.capability.probe`'s, kept minimal: this file travels
# alone with checkpoints (trust_remote_code) and may import only torch, transformers and its own folder.
# --------------------------------------------------------------------------------------------------------------------

_KERNEL_ORDER: dict[str, tuple[str, ...]] = {}  # device type -> working kernels, fastest first (timed once)
_PROBE_SHAPE = (128, 256, 1024)  # (M, K, N) of the timed products; ~1 ms each where the kernel is fast


def onednn_available(device="cpu") -> bool:
    """True where oneDNN's quantised linear (``torch.ops.onednn.qlinear_pointwise``) can run on ``device``."""
    return (
        torch.device(device).type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.onednn, "qlinear_prepack")
        and hasattr(torch.ops.onednn, "qlinear_pointwise")
    )


def onednn_prepack(codes: torch.Tensor) -> dict:
    """oneDNN's packed form of int8 weight codes ``(out, in)``, with the unit scales and zero points its product
    takes (the real scales are applied after, as on the other kernels)."""
    out_features = codes.shape[0]
    return {
        "weight": torch.ops.onednn.qlinear_prepack(codes.to(torch.int8).contiguous(), None),
        "scales": torch.ones(out_features),
        "zero_points": torch.zeros(out_features, dtype=torch.int64),
        "bytes": codes.numel(),
    }


def onednn_codes_matmul(codes_u8: torch.Tensor, packed: dict) -> torch.Tensor:
    """The exact integer product of uint8 activation codes (``codes + 128``) and a :func:`onednn_prepack` weight,
    as float32 (exact while every sum stays below ``2**24``, the same bound as the float kernel's)."""
    return torch.ops.onednn.qlinear_pointwise(
        codes_u8, 1.0, ONEDNN_ZERO_POINT, packed["weight"], packed["scales"], packed["zero_points"], None,
        1.0, 0, torch.float32, "none", [], "",
    )  # fmt: skip


def _measure_kernels(device: torch.device) -> tuple[str, ...]:
    """Kernels that run on ``device``, fastest first, from one-thread timings of a ``_PROBE_SHAPE`` product with
    1-bit weight codes (best of 5 interleaved rounds after 2 untimed ones that build kernels)."""
    m, k, n = _PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(-127, 128, (m, k), generator=generator).float().to(device)
    b = (torch.randint(0, 2, (n, k), generator=generator) * 2 - 1).to(device)
    b_t = b.t().float().contiguous()
    runs = {"float": lambda: torch.mm(a, b_t)}
    if _INT_MM_OK.get(device.type, False):
        a8, b8 = a.to(torch.int8), b.t().to(torch.int8).contiguous()
        runs["int8"] = lambda: torch._int_mm(a8, b8)
    if onednn_available(device):
        try:
            packed = onednn_prepack(b)
        except (RuntimeError, TypeError):  # an older op schema or a build without it
            packed = None
        if packed is not None:
            a_u8 = (a + ONEDNN_ZERO_POINT).to(torch.uint8)
            runs["onednn"] = lambda: onednn_codes_matmul(a_u8, packed)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = dict.fromkeys(runs, float("inf"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-core speed, independent of how loaded the other cores are
    try:
        for round_index in range(7):
            for name in list(best):
                start = time.perf_counter()
                try:
                    runs[name]()
                    sync()
                except (RuntimeError, TypeError):
                    del best[name]  # no kernel for this device or build
                    continue
                if round_index >= 2:
                    best[name] = min(best[name], time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    # ties go to float: exact everywhere, no layer restrictions
    return tuple(sorted(best, key=lambda name: (best[name], name != "float")))


def kernel_order(device="cpu") -> tuple[str, ...]:
    """The kernels that run on ``device``, fastest first: ``"int8"`` (``torch._int_mm``), ``"onednn"`` (oneDNN's
    u8 x s8 product) and ``"float"`` (an fp32 product of the same integer codes).

    Timed once per process and device type (~20 ms): int8 is ~10x faster than fp32 on AVX-512 VNNI/AMX CPUs and
    ~50x slower on AVX2-only CPUs, where oneDNN's u8 x s8 product is ~2x faster than fp32; no CPU flag tells these
    apart reliably.

    Example:
        >>> "float" in kernel_order("cpu")
        True
    """
    device = torch.device(device)
    if device.type not in _KERNEL_ORDER:
        _KERNEL_ORDER[device.type] = _measure_kernels(device)
    return _KERNEL_ORDER[device.type]


def int8_is_fast(device="cpu") -> bool:
    """True where ``torch._int_mm`` is no slower than an fp32 product of the same shape on ``device``.

    Example:
        >>> isinstance(int8_is_fast("cpu"), bool)
        True
    """
    order = kernel_order(device)
    return "int8" in order and order.index("int8") < order.index("float")


def resolve_kernel(kernel: str, device="cpu") -> str:
    """``"int8"``, ``"onednn"`` or ``"float"``: ``kernel`` itself, or for ``"auto"`` the fastest of
    :func:`kernel_order`. Layers that a kernel cannot compute exactly use :func:`layer_kernel`'s fallback.

    Example:
        >>> resolve_kernel("float")
        'float'
    """
    if kernel not in KERNELS:
        raise ValueError(f"`xtc_kernel` must be one of {KERNELS}, got {kernel!r}.")
    if kernel == "auto":
        return kernel_order(device)[0]
    return kernel


def layer_kernel(kernel: str, device, max_weight_code: int, rows: int) -> str:
    """The kernel one product runs on: :func:`resolve_kernel`'s answer where it applies, else the next fastest.

    The oneDNN kernel applies to CPU products of at least ``ONEDNN_MIN_ROWS`` tokens with weight codes of at most
    ``ONEDNN_MAX_WEIGHT_CODE`` (1- and 2-bit weights; 8-bit ones could saturate). All kernels give the same numbers,
    so the choice changes speed only.

    Example:
        >>> layer_kernel("onednn", "cpu", max_weight_code=127, rows=512)
        'float'
    """
    resolved = resolve_kernel(kernel, device)
    if resolved != "onednn":
        return resolved
    device = torch.device(device)
    if max_weight_code <= ONEDNN_MAX_WEIGHT_CODE and rows >= ONEDNN_MIN_ROWS and onednn_available(device):
        return "onednn"
    order = kernel_order(device) if kernel == "auto" else ("float",)
    return next(name for name in order if name != "onednn")


# --------------------------------------------------------------------------------------------------------------------
# Products of integer codes
# --------------------------------------------------------------------------------------------------------------------


def exact_float_depth(max_weight_code: int) -> int:
    """Largest inner dimension ``K`` whose fp32 product of int8 activation codes (``|a| <= 127``) and weight codes
    (``|w| <= max_weight_code``) is exact: every partial sum is an integer of magnitude ``<= K * 127 * max|w| <=
    2**24``, whatever the summation order.

    Example:
        >>> exact_float_depth(1), exact_float_depth(127)
        (132104, 1040)
    """
    return FLOAT_EXACT // (127 * max(int(max_weight_code), 1))


def float_codes_matmul(a: torch.Tensor, b: torch.Tensor, max_weight_code: int) -> torch.Tensor:
    """The exact integer product of float-valued codes ``a (M, K)`` (``|a| <= 127``) and ``b (K, N)`` in fp32.

    Returns float32 holding the exact integers while ``K <= exact_float_depth(max_weight_code)`` (every 1- and 2-bit
    layer below 132k inputs); deeper products are split along ``K`` into exact pieces summed in int32, as
    ``torch._int_mm`` accumulates.
    """
    depth = exact_float_depth(max_weight_code)
    if a.shape[1] <= depth:
        return a @ b
    acc = None
    for start in range(0, a.shape[1], depth):
        part = (a[:, start : start + depth] @ b[start : start + depth]).to(torch.int32)
        acc = part if acc is None else acc.add_(part)
    return acc


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for int8 ``a (M, K)`` and ``b (K, N)``, accumulated in int32.

    Uses ``torch._int_mm`` (VNNI/AMX on CPU) where it works and otherwise the exact float product of
    :func:`float_codes_matmul` (so 8-bit weights deeper than 1040 inputs stay exact too).
    """
    device = a.device.type
    if _INT_MM_OK.get(device, False):
        try:
            return torch._int_mm(a, b)
        except RuntimeError:
            _INT_MM_OK[device] = False  # unsupported shape/backend: remember, use the portable path from now on
    return float_codes_matmul(a.float(), b.float(), 127).to(torch.int32)


def int8_linear(x: torch.Tensor, weight_chunks, weight_scale: torch.Tensor, bias=None) -> torch.Tensor:
    """``F.linear`` for int8 weight codes with per-token int8 activations: ``y = (q_x @ q_w) * s_x * s_w + b``.

    Args:
        x: ``(..., in)`` float activations.
        weight_chunks: contiguous int8 ``(in, n_i)`` blocks of the transposed weight codes, in output order.
        weight_scale: ``(1,)`` or ``(out,)`` float scales.
        bias: ``(out,)`` or ``None``.

    The product runs in ``(ROWS, CHUNK)`` output tiles (see ``ROWS``/``CHUNK``), each quantised, multiplied,
    rescaled and written into the output in ``x``'s dtype while it is in cache.
    """
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    per_tensor = weight_scale.numel() == 1
    weight_scale = weight_scale.float()  # conversions hoisted out of the tile loops: each op costs ~10 us dispatch
    bias = bias.float() if bias is not None else None
    widths = [chunk.shape[1] for chunk in weight_chunks]
    out = torch.empty(x2.shape[0], sum(widths), dtype=x.dtype, device=x.device)
    rows = max(ROWS, TILE // widths[0])  # narrow outputs: taller tiles, fewer ops
    for row in range(0, x2.shape[0], rows):
        codes, scale = quantize_tokens(x2[row : row + rows])
        codes = codes.to(torch.int8)
        token_scale = scale * weight_scale if per_tensor else scale
        start = 0
        for chunk, width in zip(weight_chunks, widths):
            stop = start + width
            acc = int8_matmul(codes, chunk)
            # int32 * float32 promotes to float32 in one pass; the rest is in place (faster than out=-casting)
            if per_tensor and bias is not None:
                y = torch.addcmul(bias[start:stop], acc, token_scale)
            else:
                y = torch.mul(acc, token_scale)
                if not per_tensor:
                    y.mul_(weight_scale[start:stop])
                if bias is not None:
                    y.add_(bias[start:stop])
            if len(widths) == 1 and rows >= x2.shape[0]:
                return y.to(x.dtype).view(*shape[:-1], width)  # one tile: no copy into `out`
            out[row : row + rows, start:stop] = y
            start = stop
    return out.view(*shape[:-1], out.shape[-1])


def float_codes_linear(
    x: torch.Tensor,
    weight_codes_t: torch.Tensor,
    weight_scale: torch.Tensor,
    bias=None,
    max_weight_code: int = 127,
    overwrite_input: bool = False,
) -> torch.Tensor:
    """:func:`int8_linear` computed in fp32: the same int8 activation codes times the same weight codes, as float32.

    The integer product is exact (see :func:`exact_float_depth`), and the rescaling runs the same elementwise ops
    on the same values, so the output is bit-identical to the int8 path; it is the fast path where ``torch._int_mm``
    is slow (AVX2-only CPUs). One product over all rows and columns (fp32 GEMMs lose nothing on large shapes, and
    the rescaling then runs in place).

    Args:
        x: ``(..., in)`` float activations.
        weight_codes_t: float32 ``(in, out)`` transposed weight codes.
        weight_scale: ``(1,)`` or ``(out,)`` float scales.
        bias: ``(out,)`` or ``None``.
        max_weight_code: ``max|codes|`` (1 for 1- and 2-bit weights, 127 for 8-bit).
        overwrite_input: quantise ``x`` in place (the caller owns ``x`` and does not read it afterwards).

    Example:
        >>> codes_t = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
        >>> float_codes_linear(torch.tensor([[1.0, 0.5]]), codes_t, torch.tensor([2.0]), max_weight_code=1)
        tensor([[ 3.0079, -0.9921]])
    """
    shape = x.shape
    codes, scale = quantize_tokens(x.reshape(-1, shape[-1]), overwrite=overwrite_input and x.is_contiguous())
    acc = float_codes_matmul(codes, weight_codes_t, max_weight_code)
    return _rescale_product(acc, x, scale, weight_scale, bias)


def onednn_codes_linear(
    x: torch.Tensor, packed: dict, weight_scale: torch.Tensor, bias=None, overwrite_input: bool = False
) -> torch.Tensor:
    """:func:`int8_linear` on oneDNN's u8 x s8 product (the fast int8 path of AVX2 and AVX-512 CPUs without VNNI,
    where ``torch._int_mm`` is slow): the same activation codes, shifted to uint8 with zero point 128, times the
    same weight codes, so the output is bit-identical to the int8 and float kernels for weight codes of at most
    ``ONEDNN_MAX_WEIGHT_CODE`` (see :func:`layer_kernel`).

    Args:
        x: ``(..., in)`` float activations.
        packed: :func:`onednn_prepack` of the ``(out, in)`` weight codes.
        weight_scale: ``(1,)`` or ``(out,)`` float scales.
        bias: ``(out,)`` or ``None``.
        overwrite_input: quantise ``x`` in place (the caller owns ``x`` and does not read it afterwards).
    """
    shape = x.shape
    codes, scale = quantize_tokens(x.reshape(-1, shape[-1]), overwrite=overwrite_input and x.is_contiguous())
    # `codes` is a fresh tensor or x itself when the caller gave it away: shifting it in place is safe
    acc = onednn_codes_matmul(codes.add_(ONEDNN_ZERO_POINT).to(torch.uint8), packed)
    return _rescale_product(acc, x, scale, weight_scale, bias)


def _rescale_product(acc, x, scale, weight_scale, bias):
    """``acc * token_scale (* weight_scale) + bias`` in ``x``'s dtype and shape, with the same elementwise ops as
    :func:`int8_linear` (so that every kernel gives the same bits), in place on a float32 ``acc``."""
    shape = x.shape
    per_tensor = weight_scale.numel() == 1
    weight_scale = weight_scale.float()
    bias = bias.float() if bias is not None else None
    token_scale = scale * weight_scale if per_tensor else scale
    # an int32 product (after a K split) promotes; out of place where autograd records the ops (out= refuses tensors
    # that require grad)
    if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
        if per_tensor and bias is not None:
            y = bias.addcmul(acc, token_scale)
        else:
            y = torch.mul(acc, token_scale)
            y = y if per_tensor else y * weight_scale
            y = y if bias is None else y + bias
    elif per_tensor and bias is not None:
        y = (
            torch.addcmul(bias, acc, token_scale, out=acc)
            if acc.is_floating_point()
            else bias.addcmul(acc, token_scale)
        )
    else:
        y = acc if acc.is_floating_point() else acc.float()
        # row blocks of ~TILE elements: every op after the first runs on a block still in cache (a wide LM head's
        # logits are tens of MB; one whole-tensor pass per op would read and write them again each time)
        rows = max(1, TILE // y.shape[1])
        for start in range(0, y.shape[0], rows):
            block = y[start : start + rows].mul_(token_scale[start : start + rows])
            if not per_tensor:
                block.mul_(weight_scale)
            if bias is not None:
                block.add_(bias)
    return y.to(x.dtype).view(*shape[:-1], y.shape[-1])


# --------------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------------


def _check_input_ids(input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids"):
    """Raise ``IndexError`` like stock ``nn.Embedding`` does: a packed row lookup would wrap -1 to the last row."""
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        fix = (
            "tokenize with this model's tokenizer"
            if name == "input_ids"
            else f"give at most {vocab_size} positions (`max_position_embeddings`)"
        )
        raise IndexError(
            f"index out of range in self: `{name}` must lie in [0, {vocab_size - 1}], got values in "
            f"[{int(input_ids.min())}, {int(input_ids.max())}]; {fix}."
        )


CHECKSUMS_NAME = "xtc_checksums.json"


def _tensor_checksums(folder: str) -> dict[str, dict[str, int]]:
    """``{file: {tensor: crc32}}`` over every tensor of every ``*.safetensors`` file in ``folder``, as stored."""
    from safetensors import safe_open

    sums = {}
    for file in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
        with safe_open(os.path.join(folder, file), framework="pt") as handle:
            sums[file] = {key: checksum(handle.get_tensor(key)) for key in sorted(handle.keys())}
    return sums


def write_checksums(folder: str):
    """Write ``xtc_checksums.json``: a CRC32 of every tensor of the saved checkpoint (weights, scales, wpe, norms)."""
    sums = _tensor_checksums(folder)
    with open(os.path.join(folder, CHECKSUMS_NAME), "w", encoding="utf-8") as handle:
        json.dump({"format": "crc32", "files": sums}, handle, indent=1, sort_keys=True)


def verify_checksums(folder: str):
    """Raise ``ValueError`` naming the file and tensor whose bytes do not match ``xtc_checksums.json``.

    Example:
        >>> verify_checksums("xtc-1w8a6l")  # doctest: +SKIP
    """
    path = os.path.join(folder, CHECKSUMS_NAME)
    if not os.path.isfile(path):
        logger.warning(
            "%s has no %s (saved before whole-checkpoint checksums): only packed weights are checked; re-save it "
            "with `save_pretrained` to cover every tensor.",
            folder,
            CHECKSUMS_NAME,
        )
        return
    try:
        with open(path, encoding="utf-8") as handle:
            expected = json.load(handle)["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a valid checksum file ({error}): the checkpoint is corrupted.") from error
    found = _tensor_checksums(folder)
    for file, tensors in expected.items():
        if file not in found:
            raise ValueError(f"{os.path.join(folder, file)} is missing: the checkpoint is incomplete.")
        for name, crc in tensors.items():
            if found[file].get(name) != crc:
                raise ValueError(
                    f"Tensor `{name}` in {os.path.join(folder, file)} does not match its checksum: the checkpoint is "
                    "corrupted or truncated. Re-save it from the training checkpoint or download it again."
                )
        extra = sorted(set(found[file]) - set(tensors))
        if extra:
            raise ValueError(f"{os.path.join(folder, file)} holds tensors {extra[:5]} not in {CHECKSUMS_NAME}.")


def _checkpoint_folder(path, kwargs) -> str | None:
    """The local folder of a checkpoint (a directory, or the hub cache snapshot holding its config)."""
    if os.path.isdir(str(path)):
        return os.path.join(str(path), kwargs.get("subfolder") or "")
    try:
        from transformers.utils import cached_file

        config_file = cached_file(
            str(path), "config.json", revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir"),
            subfolder=kwargs.get("subfolder") or "", _raise_exceptions_for_missing_entries=False,
        )  # fmt: skip
    except OSError:
        return None
    if config_file is None:
        return None
    folder = os.path.dirname(config_file)
    # pull the checksum file into the snapshot too (absent in older checkpoints)
    try:
        cached_file(str(path), CHECKSUMS_NAME, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir"),
                    subfolder=kwargs.get("subfolder") or "", _raise_exceptions_for_missing_entries=False)  # fmt: skip
    except OSError:
        pass
    return folder


class _PackedWeightMixin:
    """Packed buffers (``weight_packed``, ``weight_scale``, ``weight_crc``) and the cached int8 codes."""

    def _register_packed(self, rows: int, cols: int, scales: int):
        self.register_buffer(
            "weight_packed", torch.zeros(rows, packed_columns(cols, self.weight_bits), dtype=torch.uint8)
        )
        self.register_buffer("weight_scale", torch.ones(scales, dtype=torch.float32))
        self.register_buffer("weight_crc", torch.zeros(1, dtype=torch.int64))
        self.weight = None
        self._codes_cache = None

    xtc_kernel = "auto"  # one of KERNELS; set per model by XTCGPT2LMHeadModel.set_xtc_kernel

    def _extra_cache_key(self) -> tuple:
        return ()

    def _packed_checksum(self) -> int:
        return checksum(self.weight_packed)

    def packed_bytes(self) -> int:
        """Bytes of the packed codes (scales not included)."""
        return self.weight_packed.numel()

    @property
    def max_weight_code(self) -> int:
        return MAX_CODE[self.weight_bits]

    def codes_linear(self, x: torch.Tensor, bias=None, overwrite_input: bool = False) -> torch.Tensor:
        """``x @ (codes * scale)^T + bias`` with int8 activations, on the kernel this layer uses on ``x``'s device
        (``overwrite_input``: the float kernel may quantise ``x`` in place)."""
        kernel = layer_kernel(self.xtc_kernel, x.device, self.max_weight_code, x.numel() // max(x.shape[-1], 1))
        if kernel == "int8":
            return int8_linear(x, self.int8_blocks(), self.weight_scale, bias)
        if kernel == "onednn":
            packed = self._cached("onednn", lambda: onednn_prepack(self.int8_codes()))
            return onednn_codes_linear(x, packed, self.weight_scale, bias, overwrite_input=overwrite_input)
        return float_codes_linear(
            x, self.float_codes_t(), self.weight_scale, bias, self.max_weight_code, overwrite_input=overwrite_input
        )

    @property
    def is_packed(self) -> bool:
        return getattr(self, "weight_packed", None) is not None

    def _cached(self, kind: str, build):
        # Rebuilt whenever the packed buffer changes (load_state_dict, .to(device), in-place edits).
        packed = self.weight_packed
        key = (kind, packed.data_ptr(), packed.device, packed._version, *self._extra_cache_key())
        cache = self._codes_cache if isinstance(self._codes_cache, dict) else {}
        if cache.get(kind, (None,))[0] != key:
            cache[kind] = (key, build())
            self._codes_cache = cache
        return cache[kind][1]

    def int8_codes(self) -> torch.Tensor:
        """The int8 codes ``(rows, cols)`` (unpacked on every call; the fast paths use the cached blocks)."""
        return unpack_codes(self.weight_packed, self.weight_bits, self._cols)

    def int8_blocks(self) -> list[torch.Tensor]:
        """Transposed int8 codes as contiguous ``(cols, <= CHUNK)`` blocks for :func:`int8_linear`, unpacked once
        and cached (1 byte per weight, 4x less than float32)."""

        def build():
            codes_t = self.int8_codes().t()
            return [codes_t[:, i : i + CHUNK].contiguous() for i in range(0, codes_t.shape[1], CHUNK)]

        return self._cached("blocks", build)

    def float_codes_t(self) -> torch.Tensor:
        """Transposed codes ``(cols, rows)`` as float32 for :func:`float_codes_linear`, unpacked once and cached
        (4 bytes per weight: 32x the packed 1-bit size, the size of the fp32 weight), for devices where fp32
        products are faster than ``torch._int_mm``."""
        return self._cached("float-codes", lambda: self.int8_codes().t().float().contiguous())

    def cached_bytes(self) -> int:
        """Bytes held by unpacked copies of the weights (int8 / float blocks, dequantised weights)."""
        cache = self._codes_cache if isinstance(self._codes_cache, dict) else {}
        total = 0
        for _, value in cache.values():
            if isinstance(value, dict):  # oneDNN's opaque packed weight: 1 byte per weight
                total += value["bytes"]
                continue
            tensors = value if isinstance(value, list) else [value]
            total += sum(t.numel() * t.element_size() for t in tensors)
        return total

    def clear_cache(self):
        """Drop the unpacked copies (they are rebuilt on the next forward)."""
        self._codes_cache = None

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """``codes * scale`` in ``dtype`` (cached), for packed layers that keep float activations."""
        return self._cached(
            f"float-{dtype}", lambda: self.int8_codes().to(dtype) * self.weight_scale.reshape(-1, 1).to(dtype)
        )

    def _pack_from(self, weight: torch.Tensor, per_row: bool):
        codes, scale = quantize_weight(weight.detach(), self.weight_bits, per_row)
        rows, cols = weight.shape
        device = weight.device
        del self.weight
        del self.weight_packed  # a plain ``None`` attribute until now; register_buffer refuses existing names
        self._register_packed(rows, cols, rows if per_row else 1)
        self.weight_packed = pack_codes(codes, self.weight_bits).to(device)
        self.weight_scale = scale.reshape(-1).float().to(device)
        self.weight_crc = torch.tensor([self._packed_checksum()], dtype=torch.int64, device=device)

    def verify(self, name: str = ""):
        """Raise ``ValueError`` if the packed weights do not match their checksum or a scale is not finite."""
        if not self.is_packed:
            return
        if int(self.weight_crc[0]) != self._packed_checksum():
            raise ValueError(
                f"Packed weight {name or self!r} does not match its checksum: the checkpoint is corrupted or "
                "truncated. Re-save it from the training checkpoint or download it again."
            )
        if not bool(torch.isfinite(self.weight_scale).all()) or bool((self.weight_scale < 0).any()):
            raise ValueError(f"Packed weight {name or self!r} has invalid scales: the checkpoint is corrupted.")
        self.int8_codes()  # also validates 2-bit fields


class XTCLinear(_PackedWeightMixin, nn.Module):
    """A Linear layer with XTC weight (1/2/4/8/32-bit) and activation (8/32-bit) quantisation.

    Weight layout is ``nn.Linear``'s ``(out_features, in_features)``; GPT-2's ``Conv1D`` weights are transposed on
    conversion. Unpacked, the weight is a float ``Parameter`` fake-quantised with STE; packed, it is stored as
    ``weight_packed`` (uint8) + ``weight_scale`` buffers and runs as an int8 x int8 product.

    Example:
        >>> layer = XTCLinear(16, 8, weight_bits=1, activation_bits=8)
        >>> y_fake = layer(torch.randn(2, 16))
        >>> layer.pack_()  # doctest: +ELLIPSIS
        XTCLinear(...)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        weight_bits: int = 32,
        activation_bits: int = 32,
        per_row: bool = False,
        packed: bool = False,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._cols = in_features
        self.weight_bits, self.activation_bits, self.per_row = weight_bits, activation_bits, per_row
        if packed and weight_bits < 32:
            self._register_packed(out_features, in_features, out_features if per_row else 1)
        else:
            self.weight = nn.Parameter(torch.empty(out_features, in_features))
            self.weight_packed = None
            self._codes_cache = None
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor, overwrite_input: bool = False) -> torch.Tensor:
        """``overwrite_input=True`` lets a packed 8-bit-activation layer quantise ``x`` in place (the caller owns it)."""
        if self.is_packed:
            if self.activation_bits == 8:
                return self.codes_linear(x, self.bias, overwrite_input=overwrite_input)
            bias = self.bias.to(x.dtype) if self.bias is not None else None
            return F.linear(x, self.dequantized_weight(x.dtype), bias)
        weight = fake_quantize_weight(self.weight, self.weight_bits, self.per_row)
        if self.activation_bits == 8:
            x = fake_quantize_tokens(x)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, weight.to(x.dtype), bias)

    def pack_(self) -> XTCLinear:
        """Replace the float weight by packed codes and scales (no-op for 32-bit weights or if already packed)."""
        if self.weight_bits < 32 and not self.is_packed:
            self._pack_from(self.weight, self.per_row)
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"weight_bits={self.weight_bits}, activation_bits={self.activation_bits}, packed={self.is_packed}"
        )


class XTCEmbedding(_PackedWeightMixin, nn.Module):
    """Word embeddings with optional row-wise quantisation; :meth:`project` is the tied LM head.

    The LM head reuses the (quantised) embedding matrix, so tying is structural: there is no separate ``lm_head``
    tensor to keep in sync, and a packed checkpoint stores the matrix once. Position embeddings use the same class
    (``ids_name="position_ids"``, never projected).

    ``int8_rows`` rows (the buffer ``int8_row_ids``, set with :meth:`set_int8_rows`: the recipe takes the tokens most
    frequent in its training data) keep 8-bit codes under lower ``weight_bits``. The rows a model predicts most are
    those of its most frequent tokens, and 4 bits cost them most of their precision (a 4-bit row is ~13% off its float
    values, an 8-bit one 0.7%). Packed, the other rows sit in ``weight_packed`` (in token order) and these in
    ``weight_packed_int8`` (in ``int8_row_ids`` order); every row keeps its own scale in ``weight_scale``.

    Example:
        >>> wte = XTCEmbedding(10, 4, weight_bits=4, int8_rows=2).set_int8_rows(torch.tensor([7, 3]))
        >>> wte.pack_().weight_packed.shape, wte.weight_packed_int8.shape
        (torch.Size([8, 2]), torch.Size([2, 4]))
    """

    ids_name = "input_ids"

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        weight_bits: int = 32,
        activation_bits: int = 32,
        packed=False,
        int8_rows: int = 0,
    ):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self._cols = embedding_dim
        self.weight_bits, self.activation_bits = weight_bits, activation_bits
        self.int8_rows = int(int8_rows or 0)
        if self.int8_rows:
            if not weight_bits < 8 or not 0 < self.int8_rows <= num_embeddings:
                raise ValueError(
                    f"`int8_rows={int8_rows}` keeps rows at 8 bits among {num_embeddings} rows of {weight_bits}-bit "
                    f"embeddings; it needs weight bits below 8 and a count in [1, {num_embeddings}]."
                )
            # placeholder rows until set_int8_rows (or a checkpoint) gives the real ones
            self.register_buffer("int8_row_ids", torch.arange(self.int8_rows, dtype=torch.int32))
        if packed and weight_bits < 32:
            self._register_packed(num_embeddings - self.int8_rows, embedding_dim, num_embeddings)
            if self.int8_rows:
                self.register_buffer(
                    "weight_packed_int8", torch.zeros(self.int8_rows, embedding_dim, dtype=torch.uint8)
                )
        else:
            self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
            self.weight_packed = None
            self._codes_cache = None

    @torch.no_grad()
    def set_int8_rows(self, row_ids) -> XTCEmbedding:
        """Choose the rows kept at 8 bits (``int8_rows`` distinct token ids); before packing. Returns ``self``."""
        ids = torch.as_tensor(row_ids).reshape(-1)
        if not self.int8_rows:
            raise ValueError("This embedding has no 8-bit rows (`int8_rows=0`); build it with `int8_rows=N`.")
        if self.is_packed:
            raise ValueError("The embedding is packed: choose its 8-bit rows before `pack_()`.")
        if ids.numel() != self.int8_rows or ids.is_floating_point():
            raise ValueError(
                f"`row_ids` must hold {self.int8_rows} integer token ids, got {tuple(ids.shape)} {ids.dtype}."
            )
        if int(ids.min()) < 0 or int(ids.max()) >= self.num_embeddings or ids.unique().numel() != ids.numel():
            raise ValueError(f"`row_ids` must be distinct ids in [0, {self.num_embeddings - 1}].")
        self.int8_row_ids.copy_(ids.to(self.int8_row_ids))
        return self

    def _other_rows(self) -> torch.Tensor:
        """The rows not kept at 8 bits, in token order."""
        keep = torch.ones(self.num_embeddings, dtype=torch.bool, device=self.int8_row_ids.device)
        keep[self.int8_row_ids.long()] = False
        return keep.nonzero().reshape(-1)

    def _extra_cache_key(self) -> tuple:
        if not self.int8_rows:
            return ()
        return self.int8_row_ids._version, self.weight_packed_int8.data_ptr(), self.weight_packed_int8._version

    def _packed_checksum(self) -> int:
        value = checksum(self.weight_packed)
        if self.int8_rows:
            value = checksum(self.int8_row_ids, checksum(self.weight_packed_int8, value))
        return value

    @property
    def max_weight_code(self) -> int:
        return MAX_CODE[8] if self.int8_rows else MAX_CODE[self.weight_bits]

    def packed_bytes(self) -> int:
        return self.weight_packed.numel() + (self.weight_packed_int8.numel() if self.int8_rows else 0)

    def int8_codes(self) -> torch.Tensor:
        codes = unpack_codes(self.weight_packed, self.weight_bits, self._cols)
        if not self.int8_rows:
            return codes
        full = torch.empty(self.num_embeddings, self._cols, dtype=torch.int8, device=codes.device)
        full[self._other_rows()] = codes
        full[self.int8_row_ids.long()] = unpack_codes(self.weight_packed_int8, 8, self._cols)
        return full

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantised (training) matrix: per-row codes times scales, straight-through gradients."""
        weight = fake_quantize_weight(self.weight, self.weight_bits, per_row=True)
        if self.int8_rows:  # only under weight_bits < 8 (checked on construction)
            ids = self.int8_row_ids.long()
            weight = weight.index_copy(0, ids, fake_quantize_weight(self.weight[ids], 8, per_row=True))
        return weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        _check_input_ids(input_ids, self.num_embeddings, self.ids_name)
        if self.is_packed:
            flat = input_ids.reshape(-1)
            if self.int8_rows:  # rows live in two buffers: look them up in the whole code matrix (cached)
                codes = self._cached("codes", self.int8_codes)[flat]
            else:  # unpack only the looked-up rows; the cached blocks are laid out for the LM head product
                codes = unpack_codes(self.weight_packed[flat], self.weight_bits, self._cols)
            rows = codes.to(self.weight_scale.dtype) * self.weight_scale[flat].unsqueeze(-1)
            return rows.view(*input_ids.shape, self._cols)
        return F.embedding(input_ids, self.quantized_weight())

    def project(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Logits ``hidden_states @ E^T`` (tied LM head), int8 x int8 when packed with 8-bit activations."""
        if self.is_packed:
            if self.activation_bits == 8:
                return self.codes_linear(hidden_states)
            return F.linear(hidden_states, self.dequantized_weight(hidden_states.dtype))
        weight = self.quantized_weight()
        if self.weight_bits < 32 and self.activation_bits == 8:
            hidden_states = fake_quantize_tokens(hidden_states)
        return F.linear(hidden_states, weight.to(hidden_states.dtype))

    def pack_(self) -> XTCEmbedding:
        """Replace the float matrix by packed row-wise codes and scales (no-op for 32 bits or if already packed)."""
        if self.weight_bits < 32 and not self.is_packed:
            if not self.int8_rows:
                self._pack_from(self.weight, per_row=True)
                return self
            weight = self.weight.detach()
            ids, others = self.int8_row_ids.long(), self._other_rows()
            codes, scale = quantize_weight(weight[others], self.weight_bits, per_row=True)
            codes8, scale8 = quantize_weight(weight[ids], 8, per_row=True)
            scales = torch.empty(self.num_embeddings, dtype=torch.float32, device=weight.device)
            scales[others], scales[ids] = scale.reshape(-1), scale8.reshape(-1)
            del self.weight
            del self.weight_packed
            self._register_packed(self.num_embeddings - self.int8_rows, self._cols, self.num_embeddings)
            self.weight_packed = pack_codes(codes, self.weight_bits)
            self.register_buffer("weight_packed_int8", pack_codes(codes8, 8))
            self.weight_scale = scales
            self.weight_crc = torch.tensor([self._packed_checksum()], dtype=torch.int64, device=weight.device)
        return self

    def extra_repr(self) -> str:
        int8 = f", int8_rows={self.int8_rows}" if self.int8_rows else ""
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, weight_bits={self.weight_bits}{int8}, "
            f"packed={self.is_packed}"
        )


def _linear(config: XTCGPT2Config, in_features: int, out_features: int) -> XTCLinear:
    return XTCLinear(
        in_features,
        out_features,
        weight_bits=config.weight_bits,
        activation_bits=config.activation_bits,
        per_row=config.weight_granularity == "row",
        packed=config.packed,
    )


class XTCGPT2Attention(GPT2Attention):
    """GPT-2 attention whose ``c_attn``/``c_proj`` are :class:`XTCLinear` (the attention math is GPT-2's own)."""

    def __init__(self, config: XTCGPT2Config, layer_idx=None):
        super().__init__(config, is_cross_attention=False, layer_idx=layer_idx)
        self.c_attn = _linear(config, self.embed_dim, 3 * self.embed_dim)
        self.c_proj = _linear(config, self.embed_dim, self.embed_dim)


class TanhGELU(nn.Module):
    """GPT-2's ``gelu_new`` (``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``) as PyTorch's single fused kernel.

    Transformers evaluates it as seven elementwise ops; on CPU in bf16 that costs more than a quantised Linear.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


def _hooked(*modules: nn.Module) -> bool:
    """True if a forward (pre-)hook, global or on one of ``modules``, could keep a reference to an activation."""
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


class XTCGPT2MLP(GPT2MLP):
    """GPT-2 MLP whose ``c_fc``/``c_proj`` are :class:`XTCLinear` (and whose ``gelu_new`` is fused)."""

    def __init__(self, intermediate_size: int, config: XTCGPT2Config):
        super().__init__(intermediate_size, config)
        self.c_fc = _linear(config, config.hidden_size, intermediate_size)
        self.c_proj = _linear(config, intermediate_size, config.hidden_size)
        if config.activation_function in ("gelu_new", "gelu_pytorch_tanh"):
            self.act = TanhGELU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.c_fc(hidden_states)
        # Without autograd and hooks nobody else holds c_fc's output, so the fused GELU and the next layer's
        # quantisation run in place: each fresh (tokens x 4 hidden) float buffer costs more than the op that fills it.
        owned = (
            isinstance(self.act, TanhGELU)
            and not (torch.is_grad_enabled() and hidden_states.requires_grad)
            and not _hooked(self.c_fc, self.act, self.c_proj)
        )
        if not owned:
            return self.dropout(self.c_proj(self.act(hidden_states)))
        hidden_states = torch.ops.aten.gelu_(hidden_states, approximate="tanh")
        if isinstance(self.c_proj, XTCLinear):  # not, for example, a PEFT wrapper
            return self.dropout(self.c_proj(hidden_states, overwrite_input=True))
        return self.dropout(self.c_proj(hidden_states))


class XTCGPT2Block(GPT2Block):
    """A GPT-2 block built from :class:`XTCGPT2Attention` and :class:`XTCGPT2MLP`."""

    def __init__(self, config: XTCGPT2Config, layer_idx=None):
        super().__init__(config, layer_idx=layer_idx)
        inner_dim = config.n_inner if config.n_inner is not None else 4 * config.hidden_size
        self.attn = XTCGPT2Attention(config, layer_idx=layer_idx)
        self.mlp = XTCGPT2MLP(inner_dim, config)


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------


class XTCGPT2PreTrainedModel(GPT2PreTrainedModel):
    config_class = XTCGPT2Config
    config: XTCGPT2Config
    _no_split_modules = ["XTCGPT2Block"]
    _can_record_outputs = {
        "hidden_states": XTCGPT2Block,
        "attentions": OutputRecorder(XTCGPT2Attention, layer_name=".attn", index=1),
    }

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (XTCLinear, XTCEmbedding)):
            if module.weight is not None:
                init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if isinstance(module, (GPT2Attention, GPT2MLP)) and module.c_proj.weight is not None:
            # GPT-2's scaled init of the residual projections (1/sqrt(2 * n_layer))
            init.normal_(module.c_proj.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layer))


class XTCGPT2Model(XTCGPT2PreTrainedModel):
    """The GPT-2 decoder stack with XTC layers; ``forward`` is GPT-2's own (cache, masks, sdpa, hidden states)."""

    def __init__(self, config: XTCGPT2Config):
        super().__init__(config)
        self.embed_dim = config.hidden_size
        self.wte = XTCEmbedding(
            config.vocab_size,
            self.embed_dim,
            config.word_embedding_bits,
            config.activation_bits,
            packed=config.packed,
            int8_rows=config.embedding_int8_rows or 0,
        )
        if config.position_bits < 32:
            self.wpe = XTCEmbedding(
                config.max_position_embeddings, self.embed_dim, config.position_bits, packed=config.packed
            )
            self.wpe.ids_name = "position_ids"
        else:
            self.wpe = nn.Embedding(config.max_position_embeddings, self.embed_dim)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([XTCGPT2Block(config, layer_idx=i) for i in range(config.num_hidden_layers)])
        self.ln_f = nn.LayerNorm(self.embed_dim, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self._attn_implementation = config._attn_implementation
        _set_kernel(self, getattr(config, "xtc_kernel", "auto"))
        self.post_init()

    get_input_embeddings = GPT2Model.get_input_embeddings
    set_input_embeddings = GPT2Model.set_input_embeddings
    forward = GPT2Model.forward


class XTCGPT2LMHeadModel(XTCGPT2PreTrainedModel, GenerationMixin):
    """GPT-2 causal LM compressed with XTC (layer reduction and/or low-bit weights and int8 activations).

    Build one from a GPT-2 teacher with :meth:`from_gpt2`, train it (QAT with STE) with
    :class:`xtc_hf.DistillationCallback`, then :meth:`pack_` it and ``save_pretrained``.

    Example:
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> teacher = GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=32, n_head=2, vocab_size=99))
        >>> student = XTCGPT2LMHeadModel.from_gpt2(teacher, teacher_layers=[1, 3], weight_bits=1)
        >>> student.pack_().config.packed
        True
    """

    # The LM head is ``transformer.wte.project``: tied by construction, nothing to tie.
    _tied_weights_keys = {}

    def __init__(self, config: XTCGPT2Config):
        super().__init__(config)
        self.transformer = XTCGPT2Model(config)
        self.post_init()

    def get_output_embeddings(self):
        return None

    def forward(
        self,
        input_ids=None,
        past_key_values=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithCrossAttentions:
        outputs = self.transformer(
            input_ids,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden_states = hidden_states[:, -logits_to_keep:, :] if logits_to_keep else hidden_states
        else:
            hidden_states = hidden_states[:, logits_to_keep, :]
        logits = self.transformer.wte.project(hidden_states)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    # -- packing ---------------------------------------------------------------------------------------------------------
    def pack_(self) -> XTCGPT2LMHeadModel:
        """Pack every quantised weight in place (1-bit 8 per byte, ...) and mark ``config.packed``; returns ``self``.

        A packed model is for inference and saving: it has no float copies of the quantised weights.
        """
        for module in self.modules():
            if isinstance(module, (XTCLinear, XTCEmbedding)):
                module.pack_()
        self.config.packed = True
        if self.config.is_quantized:
            self.config.quantization_config = self.config.xtc_quantization_config()
        return self

    def set_xtc_kernel(self, kernel: str) -> XTCGPT2LMHeadModel:
        """Choose how packed layers with 8-bit activations multiply: ``"int8"`` (``torch._int_mm``), ``"onednn"``
        (oneDNN's u8 x s8 product, the fast int8 path of CPUs without VNNI), ``"float"`` (fp32 product of the same
        integer codes) or ``"auto"`` (the fastest on the device, see :func:`kernel_order`). All give identical
        logits. Recorded in ``config.xtc_kernel``; returns ``self``.

        Example:
            >>> from transformers import GPT2Config, GPT2LMHeadModel
            >>> teacher = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99))
            >>> student = XTCGPT2LMHeadModel.from_gpt2(teacher, weight_bits=1).pack_()
            >>> student.set_xtc_kernel("float").config.xtc_kernel
            'float'
        """
        if kernel not in KERNELS:
            raise ValueError(f"`xtc_kernel` must be one of {KERNELS}, got {kernel!r}.")
        self.config.xtc_kernel = kernel
        _set_kernel(self, kernel)
        return self

    def xtc_kernel_info(self) -> dict:
        """The kernel setting, what it resolves to on the model's device, and the bytes of packed weights and of
        their unpacked copies (built on the first forward: 1 byte per weight for int8 and onednn, 4 for float).

        Example:
            >>> from transformers import GPT2Config, GPT2LMHeadModel
            >>> teacher = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99))
            >>> info = XTCGPT2LMHeadModel.from_gpt2(teacher, weight_bits=1).pack_().xtc_kernel_info()
            >>> info["setting"], info["resolved"] in ("int8", "onednn", "float"), info["unpacked_cache_bytes"]
            ('auto', True, 0)
        """
        layers = [m for m in self.modules() if isinstance(m, _PackedWeightMixin) and m.is_packed]
        device = next(iter(self.buffers()), torch.empty(0)).device
        return {
            "setting": self.config.xtc_kernel,
            "resolved": resolve_kernel(self.config.xtc_kernel, device),
            "packed_bytes": sum(m.packed_bytes() for m in layers),
            "unpacked_cache_bytes": sum(m.cached_bytes() for m in layers),
        }

    def verify_packed(self):
        """Raise ``ValueError`` if any packed weight fails its checksum (corrupted checkpoint)."""
        for name, module in self.named_modules():
            if isinstance(module, (XTCLinear, XTCEmbedding)):
                module.verify(name)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """``PreTrainedModel.from_pretrained`` that refuses incomplete or corrupted packed checkpoints.

        Stock loading initialises missing tensors randomly with a warning; for a packed checkpoint a missing tensor or
        a checksum mismatch means the file is damaged, so this raises a ``ValueError`` instead.
        """
        want_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        except Exception as error:  # safetensors reports truncation with its own exception type
            if "safetensor" in type(error).__name__.lower() or "incomplete" in str(error).lower():
                raise ValueError(f"Could not read the checkpoint {args[0] if args else ''!r}: {error}") from error
            raise
        if model.config.packed:
            missing = list(info.get("missing_keys", []))
            mismatched = list(info.get("mismatched_keys", []))
            if missing or mismatched:
                raise ValueError(
                    f"The packed checkpoint {args[0] if args else ''!r} is incomplete (missing: {missing[:5]}, "
                    f"mismatched: {mismatched[:5]}); it is truncated or was written by a different configuration."
                )
            model.verify_packed()
            folder = _checkpoint_folder(args[0], kwargs) if args else None
            if folder is not None:
                verify_checksums(folder)
        return (model, info) if want_info else model

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained`` plus ``xtc_checksums.json`` (CRC32 of every tensor) when packed."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if self.config.packed and kwargs.get("is_main_process", True) and os.path.isdir(save_directory):
            write_checksums(str(save_directory))
        return result

    # -- conversion ------------------------------------------------------------------------------------------------------
    @classmethod
    def from_gpt2(cls, teacher, teacher_layers: list[int] | None = None, **xtc_settings) -> XTCGPT2LMHeadModel:
        """A student initialised from ``teacher``'s embeddings, final LayerNorm and blocks ``teacher_layers``.

        Args:
            teacher: a ``GPT2LMHeadModel`` (``Conv1D`` weights are transposed into ``nn.Linear`` layout) or an
                unpacked ``XTCGPT2LMHeadModel`` (e.g. a layer-reduced student entering quantisation).
            teacher_layers: teacher block indices, in order (default: all).
            xtc_settings: ``XTCGPT2Config`` fields, e.g. ``weight_bits=1, activation_bits=8``.
        """
        check_gpt2_shaped(teacher)
        n_teacher = teacher.config.n_layer
        layers = list(range(n_teacher)) if teacher_layers is None else list(teacher_layers)
        if not layers:
            raise ValueError("`teacher_layers` is empty; keep at least one teacher layer.")
        for index in layers:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_teacher:
                raise ValueError(
                    f"`teacher_layers` holds {index!r}, which is not a layer of this {n_teacher}-layer teacher; use "
                    f"integers in [0, {n_teacher - 1}]."
                )
        if len(set(layers)) != len(layers):
            raise ValueError(f"`teacher_layers` must not repeat a layer, got {layers}.")
        settings = teacher.config.to_dict()
        for key in ("model_type", "architectures", "auto_map", "transformers_version", "_name_or_path", "dtype"):
            settings.pop(key, None)
        source_map = getattr(teacher.config, "teacher_layers", None)
        settings.update(
            n_layer=len(layers),
            teacher_layers=[source_map[i] for i in layers] if source_map else layers,
            packed=False,
        )
        settings.update(xtc_settings)
        config = XTCGPT2Config(**{k: v for k, v in settings.items() if k in XTCGPT2Config.__dataclass_fields__})
        config._attn_implementation = teacher.config._attn_implementation
        student = cls(config)
        student.to(next(teacher.parameters()).dtype)
        _copy_weights(teacher, student, layers)
        return student


def _set_kernel(model: nn.Module, kernel: str):
    for module in model.modules():
        if isinstance(module, _PackedWeightMixin):
            if module.xtc_kernel != kernel:
                module.clear_cache()  # the other kernel's unpacked copy would otherwise stay in memory
            module.xtc_kernel = kernel


def check_gpt2_shaped(model):
    """Raise ``ValueError`` unless ``model`` is a GPT-2 causal LM this package can compress."""
    transformer = getattr(model, "transformer", None)
    config = getattr(model, "config", None)
    blocks = getattr(transformer, "h", None)
    shaped = (
        config is not None
        and getattr(config, "model_type", None) in ("gpt2", "xtc_gpt2")
        and blocks is not None
        and len(blocks) > 0
        and all(hasattr(block, "attn") and hasattr(block.attn, "c_attn") and hasattr(block, "mlp") for block in blocks)
        and hasattr(transformer, "wte")
        and hasattr(transformer, "wpe")
    )
    if not shaped:
        raise ValueError(
            f"XTC needs a GPT-2 causal LM (GPT2LMHeadModel or XTCGPT2LMHeadModel with `transformer.h[i].attn.c_attn`), "
            f"got {type(model).__name__} (model_type={getattr(config, 'model_type', None)!r}). Load the teacher with "
            "GPT2LMHeadModel.from_pretrained."
        )
    if getattr(config, "add_cross_attention", False):
        raise ValueError("XTC does not support GPT-2 models with `add_cross_attention=True`.")
    if getattr(config, "packed", False):
        raise ValueError("The teacher is a packed XTC model; start from its unpacked (training) checkpoint instead.")
    if getattr(config, "scale_attn_by_inverse_layer_idx", False):
        raise ValueError(
            "`scale_attn_by_inverse_layer_idx=True` ties attention scaling to layer positions, which layer reduction "
            "changes; it is not supported."
        )


@torch.no_grad()
def _copy_weights(teacher, student, layers: list[int]):
    def linear_weight(module):
        # GPT-2's Conv1D stores (in, out); nn.Linear layout is (out, in)
        return module.weight.t() if type(module).__name__ == "Conv1D" else module.weight

    src, dst = teacher.transformer, student.transformer
    dst.wte.weight.copy_(src.wte.weight)
    if getattr(dst.wte, "int8_rows", 0) and getattr(src.wte, "int8_rows", 0) == dst.wte.int8_rows:
        dst.wte.int8_row_ids.copy_(src.wte.int8_row_ids)  # the same frequent tokens (a student re-quantised)
    dst.wpe.weight.copy_(src.wpe.weight)
    dst.ln_f.load_state_dict(src.ln_f.state_dict())
    for target, index in zip(dst.h, layers):
        block = src.h[index]
        target.ln_1.load_state_dict(block.ln_1.state_dict())
        target.ln_2.load_state_dict(block.ln_2.state_dict())
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            source_module, target_module = block.get_submodule(name), target.get_submodule(name)
            target_module.weight.copy_(linear_weight(source_module))
            target_module.bias.copy_(source_module.bias)


# `quant_method: "xtc"` is registered by configuration_xtc.py (imported above), so Transformers understands it as soon
# as a config is loaded, before any model code runs

__all__ = [
    "TanhGELU",
    "XTCEmbedding",
    "XTCGPT2LMHeadModel",
    "XTCGPT2Model",
    "XTCGPT2PreTrainedModel",
    "XTCLinear",
    "check_gpt2_shaped",
    "fake_quantize_tokens",
    "exact_float_depth",
    "fake_quantize_weight",
    "float_codes_linear",
    "float_codes_matmul",
    "int8_is_fast",
    "int8_linear",
    "int8_matmul",
    "pack_codes",
    "quantize_tokens",
    "quantize_weight",
    "resolve_kernel",
    "unpack_codes",
    "verify_checksums",
    "write_checksums",
]
