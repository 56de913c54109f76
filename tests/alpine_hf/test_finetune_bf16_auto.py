"""ALPINE fine-tuning's ``bf16=None`` follows the capability probe (timings), not ISA flags."""

import pytest

from benchmarks.alpine_finetune import FinetuneConfig
from compress_utils import capability


@pytest.mark.parametrize(("bf16_seconds", "expected"), [(3.9, False), (0.007, True)])
def test_finetune_bf16_auto_follows_the_probe(monkeypatch, bf16_seconds, expected):
    monkeypatch.setattr(capability, "_CACHE", {})
    monkeypatch.setattr(
        capability, "_time_products", lambda device: {"fp32": 0.05, "bf16": bf16_seconds, "int8": None}
    )
    assert FinetuneConfig().bf16 is expected
    assert FinetuneConfig(bf16=not expected).bf16 is (not expected)
