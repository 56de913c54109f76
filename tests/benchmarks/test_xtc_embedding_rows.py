"""``python -m benchmarks xtc-embedding-rows``: the alternative 4-bit quantisers it compares, its byte counts and its
table, on small tensors (the measurement itself needs a trained teacher: ``make bench-xtc-embedding-rows``)."""

import torch

from benchmarks.xtc_embedding_rows import _bytes, clipped_row_quantize, grouped_quantize, to_markdown
from xtc_hf.modeling_xtc import fake_quantize_weight


def _gaussian_rows_with_outliers():
    torch.manual_seed(0)
    weight = torch.randn(64, 128)
    weight[torch.arange(64), torch.randint(0, 128, (64,))] *= 8  # one large entry per row
    return weight


def test_the_least_squares_clip_is_never_worse_than_absmax():
    weight = _gaussian_rows_with_outliers()
    absmax = fake_quantize_weight(weight, 4, per_row=True)
    clipped = clipped_row_quantize(weight, 4)
    row_error = lambda q: (q - weight).pow(2).sum(-1)  # noqa: E731
    assert bool((row_error(clipped) <= row_error(absmax) + 1e-5).all())  # 100% of the range is a candidate
    assert float(row_error(clipped).sum()) < 0.9 * float(row_error(absmax).sum())  # 0.82 measured
    assert int(torch.round(clipped / clipped.abs().amax(-1, keepdim=True) * 7).abs().max()) <= 7  # still 15 levels


def test_group_scales_follow_each_group():
    weight = _gaussian_rows_with_outliers()
    grouped = grouped_quantize(weight, 4, 32)
    per_row = fake_quantize_weight(weight, 4, per_row=True)
    assert float((grouped - weight).pow(2).sum()) < float((per_row - weight).pow(2).sum())
    torch.testing.assert_close(grouped_quantize(weight, 4, 128), per_row)  # one group per row: the per-row quantiser


def test_bytes_count_codes_scales_and_row_ids():
    assert _bytes(8192, 256, 8) == 8192 * 256 + 8192 * 4
    assert _bytes(8192, 256, 4) == 8192 * 128 + 8192 * 4
    assert _bytes(8192, 256, 4, int8_rows=2048) == 6144 * 128 + 2048 * (256 + 4) + 8192 * 4
    assert _bytes(8192, 256, 4, groups=4) == 8192 * 128 + 8192 * 16


def test_table_sorts_by_kl_and_gives_the_token_shares():
    result = {
        "teacher": {"vocabulary": 99, "width": 32},
        "held_out_tokens": 512,
        "token_share": {"16": 0.5},
        "variants": {
            "4-bit rows": {"kl": 0.02, "top1_agreement": 0.9, "relative_error": 0.128, "embedding_bytes": 2000},
            "8-bit rows": {"kl": 0.001, "top1_agreement": 0.99, "embedding_bytes": 3600},
        },
    }
    table = to_markdown(result)
    assert table.index("8-bit rows") < table.index("4-bit rows")
    assert "| 4-bit rows | 0.0200 | 90.0% | 12.8% | 2 |" in table and "16: 50.0%" in table
    assert "| 8-bit rows | 0.0010 | 99.0% | n/a | 4 |" in table  # results stored before the column
