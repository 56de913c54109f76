"""``python -m benchmarks xtc --speed-only`` on tiny models: JSON with the capability, both kernels, targets, Markdown."""

import json

import pytest

from benchmarks.cli import main
from benchmarks.xtc_bench import SpeedSettings, run_speed_bench, write_speed_results
from compress_utils import capability
from xtc_hf import modeling_xtc

TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 99, "batch_size": 2, "seq_len": 16, "rounds": 1}


@pytest.fixture
def avx2_machine(monkeypatch):
    """The AVX2 machine of issue 15 (fp32 50 ms, bf16 3.9 s, int8 2.3 s) for both probes."""
    monkeypatch.setattr(capability, "_CACHE", {})
    monkeypatch.setattr(capability, "_time_products", lambda device: {"fp32": 0.05, "bf16": 3.9, "int8": 2.3})
    monkeypatch.setitem(modeling_xtc._KERNEL_ORDER, "cpu", ("float", "int8"))


def test_speed_bench_records_machine_kernels_and_training_step(avx2_machine, tmp_path):
    result = run_speed_bench(SpeedSettings(**TINY, train_step=True))
    assert result["capability"]["fast"] == {"fp32": True, "bf16": False, "int8": False, "int8_u8s8": False}
    assert result["identical_logits"] is True
    assert result["auto_kernel"] == "float"
    assert list(result["speed"]) == ["fp32"]  # bf16 is slow here: measured in fp32 only
    rows = result["speed"]["fp32"]
    assert rows["base"]["speedup"] == 1.0
    assert rows["1W8A6L-auto"]["kernel"] == "float"
    assert rows["1W8A6L-auto"]["seconds"] == rows["1W8A6L-float"]["seconds"]
    assert result["train_step"]["auto"] == "fp32" and result["train_step"]["auto_vs_fp32"] == 1.0
    memory = result["kernel_memory"]["1W8A6L-float"]
    assert memory["unpacked_cache_bytes"] == 32 * memory["packed_bytes"]  # 1 bit -> 4 bytes per weight
    table = write_speed_results(result, str(tmp_path / "speed.json"))
    assert json.loads((tmp_path / "speed.json").read_text())["auto_kernel"] == "float"
    text = (tmp_path / "speed.md").read_text()
    assert (
        "PyTorch CPU capability" in text and "picks the **float** kernel" in text and "| 1W8A6L-float | fp32 |" in text
    )
    assert table in text


def test_forced_kernels_slower_than_the_teacher_get_a_sentence_not_a_ratio(avx2_machine):
    from benchmarks.xtc_bench import speed_markdown

    result = run_speed_bench(SpeedSettings(**TINY))
    rows = result["speed"]["fp32"]
    rows["1W8A6L-int8"].update(seconds=19.2, speedup=0.09)  # `_int_mm` on a real AVX2 CPU
    rows["1W8A6L-float"]["speedup"] = max(rows["1W8A6L-float"]["speedup"], 1.0)
    text = speed_markdown(result)
    assert "| 1W8A6L-int8" not in text and "0.09x" not in text
    assert "Not in the table" in text and "1W8A6L-int8 (fp32) 19.200 s" in text
    assert "| 1W8A6L-auto | fp32 |" in text


def test_speed_bench_refuses_bad_settings():
    with pytest.raises(ValueError, match="`n_embd` \\(30\\) must be divisible by `n_head` \\(4\\)"):
        SpeedSettings(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="`rounds` must be >= 1, got 0"):
        SpeedSettings(rounds=0)
    with pytest.raises(ValueError, match="`weight_granularity` must be one of"):
        SpeedSettings(weight_granularity="column")
    with pytest.raises(ValueError, match="`embedding_bits` must be None or one of"):
        SpeedSettings(embedding_bits=3)
    with pytest.raises(ValueError, match="set `embedding_bits` to 1, 2 or 4"):
        SpeedSettings(embedding_bits=8, embedding_int8_rows=16)
    with pytest.raises(ValueError, match="`embedding_int8_rows=100` exceeds `vocab_size=99`"):
        SpeedSettings(**TINY, embedding_bits=4, embedding_int8_rows=100)


def test_speed_bench_times_the_student_it_is_given(avx2_machine):
    student = {
        "embedding_bits": 4,
        "embedding_int8_rows": 16,
        "position_embedding_bits": 8,
        "weight_granularity": "row",
    }
    result = run_speed_bench(SpeedSettings(**TINY, **student))
    assert result["student"] == student
    assert result["identical_logits"] is True  # the mixed 4/8-bit LM head on every kernel
    # 4-bit codes of 83 rows and 8-bit codes of 16 rows are packed beside the 1-bit blocks
    plain = run_speed_bench(SpeedSettings(**TINY))
    assert plain["student"]["embedding_bits"] is None
    packed = result["kernel_memory"]["1W8A6L-int8"]["packed_bytes"]
    assert packed > plain["kernel_memory"]["1W8A6L-int8"]["packed_bytes"]
    from benchmarks.xtc_bench import speed_markdown

    text = speed_markdown(result)
    assert "4-bit word embeddings and tied LM head with 16 rows at 8 bits, 8-bit position embeddings" in text
    assert "one scale per output row" in text


def test_cli_speed_only_writes_json_and_markdown(avx2_machine, tmp_path, monkeypatch):
    import benchmarks.xtc_bench as bench

    real = bench.SpeedSettings
    monkeypatch.setattr(bench, "SpeedSettings", lambda **kw: real(**{**TINY, **kw}))
    assert main(["--quiet", "xtc", "--speed-only", "--json", str(tmp_path / "s.json")]) == 0
    assert "1W8A6L-int8" in json.loads((tmp_path / "s.json").read_text())["speed"]["fp32"]
    assert (tmp_path / "s.md").is_file()


def test_bf16_is_measured_where_it_is_fast_with_the_auto_kernel_only(monkeypatch):
    # an AMX-like machine: bf16 and int8 7-15x faster than fp32
    monkeypatch.setattr(capability, "_CACHE", {})
    monkeypatch.setattr(capability, "_time_products", lambda device: {"fp32": 0.048, "bf16": 0.0068, "int8": 0.0032})
    monkeypatch.setitem(modeling_xtc._KERNEL_ORDER, "cpu", ("int8", "float"))
    result = run_speed_bench(SpeedSettings(**TINY))
    assert result["auto_kernel"] == "int8"
    assert sorted(result["speed"]["bf16"]) == ["1W8A6L-auto", "6L", "base"]
    assert result["speed"]["bf16"]["1W8A6L-auto"]["kernel"] == "int8"
    assert "train_step" not in result
    target = result["targets"]["1W8A6L (auto kernel) >= 1.9x base in bf16"]
    assert target == (result["speed"]["bf16"]["1W8A6L-auto"]["speedup"] >= 1.9)


def test_make_bench_xtc_times_the_student_the_full_zoo_ships():
    import os
    import subprocess
    from pathlib import Path

    from model_cards import xtc_entry

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")}
    makefile = 'include Makefile\nshow-student:\n\t@echo "$(XTC_ZOO_FULL_STUDENT)"\n'
    shown = subprocess.run(["make", "-s", "-f", "-", "show-student"], input=makefile, cwd=root, env=env,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    flags = dict(zip(shown[::2], shown[1::2]))
    recipe = xtc_entry.FULL.variant_recipe("1W8A6L")
    assert flags == {
        "--weight-granularity": recipe.weight_granularity,
        "--embedding-bits": str(recipe.embedding_bits),
        "--embedding-int8-rows": str(recipe.embedding_int8_rows),
        "--position-embedding-bits": str(recipe.position_embedding_bits),
    }


@pytest.mark.parametrize("kernel", ["int8", "onednn", "float"])
def test_model_memory_counts_every_kernels_cached_codes(kernel):
    """4-bit embeddings (codes up to 7) run on the oneDNN kernel too, whose cache holds a prepacked object, not a
    tensor; the float kernel's fp32 codes take 4 bytes per weight where the int8 ones take 1."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from benchmarks.xtc_bench import model_memory_bytes
    from xtc_hf import XTCGPT2LMHeadModel
    from xtc_hf.modeling_xtc import onednn_available

    if kernel == "onednn" and not onednn_available():
        pytest.skip("oneDNN's quantised linear is not in this PyTorch build")
    torch.manual_seed(0)
    teacher = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99, n_positions=64))
    model = XTCGPT2LMHeadModel.from_gpt2(teacher, weight_bits=1, embedding_bits=4).eval().pack_()
    before = model_memory_bytes(model)
    model.set_xtc_kernel(kernel)
    model(torch.randint(0, 99, (2, 20)))
    assert model_memory_bytes(model) > before  # the codes cached by the forward are counted
