"""``benchmarks.xtc_bench.write_results``: the JSON and Markdown files ``python -m benchmarks xtc`` writes."""

import json

from benchmarks.xtc_bench import to_markdown, write_results


def _row(name, speedup):
    return {
        "layers": 6, "weight_bits": 1, "activation_bits": 8, "disk_mb": 1.5, "disk_ratio": 31.2, "parameters": 6_970_000,
        "em": 0.0, "es": 15.8, "es_retention": 0.865, "fp32": {"speedup": speedup, "tokens_per_s": 7179.0},
        "bf16": {"speedup": 1.86}, "peak_rss_increase_mb": 246.0, "train_seconds": {"layer_reduction": 60, "quantization": 30},
    }  # fmt: skip


RESULT = {
    "models": {"1W8A6L": _row("1W8A6L", 4.03)},
    "targets": {"1W8A6L disk ratio >= 15": True, "1W8A6L >= 1.9x base in bf16": False},
    "environment": {"torch_threads": 1},
    "throughput_input": {"batch_size": 8, "seq_len": 256},
    "line_completion": {"samples": 200},
}


def test_write_results_writes_json_and_markdown(tmp_path):
    json_path = tmp_path / "nested" / "xtc.json"
    table = write_results(RESULT, str(json_path))
    assert json.loads(json_path.read_text()) == RESULT
    markdown = (tmp_path / "nested" / "xtc.md").read_text()
    assert markdown == "# XTC for GPT-2: measured here\n\n" + table and table == to_markdown(RESULT)
    assert "| 1W8A6L | 6 | 1/8 | 1.50 | 31.2x |" in table and "NOT met: 1W8A6L >= 1.9x base in bf16" in table
    assert not list(tmp_path.rglob("*.tmp"))
    write_results(RESULT, str(json_path), str(tmp_path / "table.md"))
    assert (tmp_path / "table.md").read_text() == markdown
