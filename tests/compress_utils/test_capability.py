import json

import pytest
import torch

from compress_utils import capability


@pytest.fixture
def fake_timings(monkeypatch):
    """Replace the micro-benchmark by given seconds per product; returns a setter."""
    state = {}

    def set_timings(**timings):
        state["timings"] = {"int8": None, **timings}
        capability._CACHE.clear()

    monkeypatch.setattr(capability, "_time_products", lambda device: dict(state["timings"]))
    monkeypatch.setattr(capability, "_CACHE", {})
    return set_timings


def test_probe_returns_json_serialisable_sane_keys():
    info = capability.probe("cpu")
    assert json.loads(json.dumps(info)) == info
    assert info["device"] == "cpu"
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["fast"]["fp32"] is True
    assert set(info["fast"]) == {"fp32", "bf16", "int8", "int8_u8s8"}
    assert info["timings_ms"]["fp32"] > 0
    assert info["fastest_dtype"] in ("fp32", "bf16")
    assert set(info["isa_flags"]) <= set(capability.ISA_FLAGS)
    assert capability.probe("cpu") == info  # cached: the same measurement, not a second one


def test_slow_bf16_and_int8_resolve_to_fp32(fake_timings):
    # the AVX2 machine of issue 15: fp32 50 ms, bf16 3.9 s, int8 2.3 s
    fake_timings(fp32=0.050, bf16=3.9, int8=2.3)
    assert capability.resolve_bf16(None) is False
    assert capability.resolve_bf16("auto") is False
    assert capability.fast_int8() is False
    assert capability.fastest_dtype() == torch.float32
    assert capability.probe()["timings_ms"] == {"fp32": 50.0, "bf16": 3900.0, "int8": 2300.0}


def test_fast_bf16_and_int8_are_picked(fake_timings):
    fake_timings(fp32=0.048, bf16=0.0068, int8=0.0032)
    assert capability.resolve_bf16(None) is True
    assert capability.fast_int8() is True
    assert capability.fastest_dtype() == torch.bfloat16
    assert capability.probe()["fastest_dtype"] == "bf16"


def test_explicit_setting_wins_over_the_probe(fake_timings):
    fake_timings(fp32=0.05, bf16=3.9)
    assert capability.resolve_bf16(True) is True
    fake_timings(fp32=0.05, bf16=0.01)
    assert capability.resolve_bf16(False) is False


def test_missing_kernel_is_not_fast(fake_timings):
    fake_timings(fp32=0.05, bf16=None, int8=None)
    assert capability.probe()["fast"] == {"fp32": True, "bf16": False, "int8": False, "int8_u8s8": False}


def test_classify_needs_fp32():
    with pytest.raises(ValueError, match="`timings` must hold an fp32 time"):
        capability.classify({"bf16": 0.1})


@pytest.mark.parametrize("setting", ["yes", 1, "bf16"])
def test_bad_bf16_setting_is_refused(setting):
    with pytest.raises(ValueError, match=r"`bf16` must be True, False, None or 'auto'"):
        capability.resolve_bf16(setting)


def test_kernel_error_means_no_kernel():
    def broken():
        raise RuntimeError("no kernel")

    timings = capability._interleaved_best({"ok": lambda: None, "broken": broken}, warmups=1, repeats=2)
    assert timings["broken"] is None
    assert timings["ok"] >= 0
