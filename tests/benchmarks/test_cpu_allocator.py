"""The allocator benchmark: settings checked before any process starts, the README table from a result."""

import pytest

from benchmarks.cpu_allocator import markdown, run_allocator_bench


@pytest.mark.parametrize("bad", [{"steps": 0}, {"threads": True}, {"length": -1}])
def test_bad_sizes_are_refused_before_measuring(bad, monkeypatch):
    import compress_utils.allocator

    monkeypatch.setattr(compress_utils.allocator, "is_glibc", lambda: True)
    with pytest.raises(ValueError, match=next(iter(bad))):
        run_allocator_bench(**bad)


def test_the_table_has_both_settings():
    row = {"seconds_per_step": 2.0, "system_seconds_per_step": 1.0, "user_seconds_per_step": 3.0,
           "page_faults_per_step": 1234567, "peak_rss_mb": 100.0}  # fmt: skip
    results = {"model": "m", "settings": {"batch_size": 8, "length": 256, "threads": 2},
               "rows": {"default": row, "tuned": {**row, "seconds_per_step": 1.0}}, "speedup": 2.0,
               "peak_rss_ratio": 1.0}  # fmt: skip
    table = markdown(results)
    assert "| default | 2.0 | 1.0 | 3.0 | 1,234,567 | 100.0 |" in table and "| tuned | 1.0 |" in table
    assert "Speed-up 2.0x" in table
