"""FLOPs of ALPINE encoders: analytic (paper Eq. 10 + 13 with the real per-layer lengths) and measured."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop

from .modeling_alpine import layer_flops


def analytic_flops(config, input_lengths: torch.Tensor, kept_lengths: torch.Tensor | None) -> float:
    """Total analytic FLOPs of a batch: each sequence at its own length, each layer at the lengths it really saw.

    Args:
        config: the encoder config (``hidden_size``, ``num_attention_heads``, ``intermediate_size``).
        input_lengths: ``(batch,)`` real (non-pad) tokens per input sequence.
        kept_lengths: ``(num_layers, batch)`` rows after each layer (``AlpineModelOutput.kept_lengths``), or ``None``
            for the stock model (every layer sees the input length).
    """
    lengths = input_lengths.double().cpu()
    kept = lengths.expand(config.num_hidden_layers, -1) if kept_lengths is None else kept_lengths.double().cpu()
    entering = torch.cat([lengths[None], kept[:-1]])
    return float(
        layer_flops(entering, kept, config.hidden_size, config.num_attention_heads, config.intermediate_size).sum()
    )


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop(query_shape, key_shape, value_shape)


# PyTorch counts the GPU attention kernels but not the CPU one that sdpa dispatches to; without this the stock
# model's attention would count as free while ALPINE's explicit scoring matmuls count.
_CUSTOM_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


def measured_flops(model: torch.nn.Module, **inputs) -> int:
    """FLOPs PyTorch counts (``FlopCounterMode``) for one forward pass of ``model(**inputs)``, without grad.

    Matrix products only (softmax, GELU and LayerNorm are not counted), with the CPU attention kernel included.
    """
    counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
    with torch.no_grad(), counter:
        model(**inputs)
    return int(counter.get_total_flops())


__all__ = ["analytic_flops", "layer_flops", "measured_flops"]
