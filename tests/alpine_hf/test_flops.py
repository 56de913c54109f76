"""Analytic FLOPs (paper Eq. 10 + 13) and the measured counter agree where they should."""

import torch
from alpine_testing import make_batch, tiny_config
from transformers import RobertaModel

from alpine_hf import AlpineRobertaModel
from alpine_hf.flops import analytic_flops, measured_flops
from alpine_hf.modeling_alpine import layer_flops


def test_layer_flops_is_paper_equation_for_4x_ffn():
    n, d, h = 300.0, 768, 12
    expected = (8 * n * d**2 + 4 * n**2 * d - 4 * n * d + h * n**2) + (16 * n * d**2 - n * d)
    assert float(layer_flops(torch.tensor(n), torch.tensor(n), d, h, 4 * d)) == expected


def test_analytic_flops_uses_per_layer_lengths():
    config = tiny_config("roberta")
    lengths = torch.tensor([20, 10])
    kept = torch.tensor([[15, 8], [12, 8], [12, 6], [9, 6]])
    total = analytic_flops(config, lengths, kept)
    sizes = (config.hidden_size, config.num_attention_heads, config.intermediate_size)
    by_hand = 0.0
    for seq in range(2):
        entering = [int(lengths[seq])] + kept[:-1, seq].tolist()
        for layer in range(4):
            by_hand += float(layer_flops(torch.tensor(entering[layer]), kept[layer, seq], *sizes))
    assert abs(total - by_hand) < 1e-6 * by_hand
    assert analytic_flops(config, lengths, None) > total


def test_measured_flops_count_cpu_attention_and_drop_with_pruning():
    config = tiny_config("roberta", alpine_layers="all", alpine_alpha=0.5)
    stock_config = tiny_config("roberta", alpine=False)
    stock_config._attn_implementation = "sdpa"
    stock = RobertaModel(stock_config).eval()
    input_ids, mask = make_batch("roberta", [60, 60])
    full = measured_flops(stock, input_ids=input_ids)
    # the counter must see the sdpa kernel: stock measured FLOPs cover the analytic matmul FLOPs' attention term
    analytic = analytic_flops(stock_config, torch.tensor([60, 60]), None)
    assert 0.9 < full / analytic < 1.1
    alpine = AlpineRobertaModel(config).eval()
    alpine.load_state_dict(stock.state_dict(), strict=False)
    assert measured_flops(alpine, input_ids=input_ids, attention_mask=mask) < full
