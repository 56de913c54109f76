"""The benchmark and its CLI on the real embedded all-MiniLM-L6-v2, at a small size."""

import json

import pytest

from benchmarks.alpine_speed import load_benchmark_model, run_benchmark
from benchmarks.cli import main


def test_bench_cli_writes_json_table_and_plot(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = main(
        ["--quiet", "alpine-speed", "--model", "minilm", "--batch-size", "2", "--seq-len", "128", "--num-batches", "1",
         "--repeats", "1", "--json", str(path)]
    )  # fmt: skip
    assert code == 0
    results = json.loads(path.read_text())
    assert set(results["modes"]) == {"all", "even", "odd"}
    for mode, entry in results["modes"].items():
        for key in (
            "flops_ratio",
            "flops_ratio_analytic",
            "throughput_ratio",
            "peak_memory_ratio",
            "train_peak_memory_ratio",
            "kept_lengths",
        ):
            assert key in entry, (mode, key)
        assert entry["flops_ratio"] > 1.0
        assert len(entry["kept_lengths"]) == 6
    kept = results["modes"]["all"]["kept_lengths"]
    assert all(b <= a for a, b in zip(kept, kept[1:])) and kept[-1] < 128
    # measured and analytic agree on the stock model (the counter sees the CPU attention kernel)
    assert 0.9 < results["stock"]["flops"] / results["stock"]["flops_analytic"] < 1.1
    assert (tmp_path / "bench.md").read_text().count("|") > 20
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert "| all |" in capsys.readouterr().out


def test_unknown_benchmark_model_is_refused():
    with pytest.raises(ValueError, match="`model='bert-huge'`.*minilm"):
        load_benchmark_model("bert-huge")


def test_plans_are_measured_like_named_modes(tmp_path):
    # layer 0 does not prune and the later layers keep more (a wider alpha), so the plan saves fewer FLOPs than `all`
    plan = "layers=1-5;alpha=3,3,3,3,3,3"
    path = tmp_path / "plans.json"
    code = main(
        ["--quiet", "alpine-speed", "--model", "minilm", "--batch-size", "2", "--seq-len", "128", "--num-batches", "1",
         "--repeats", "1", "--modes", "all", plan, "--json", str(path)]
    )  # fmt: skip
    assert code == 0
    results = json.loads(path.read_text())
    assert list(results["modes"]) == results["settings"]["modes"] == ["all", plan]
    planned, everywhere = results["modes"][plan], results["modes"]["all"]
    assert planned["kept_lengths"][0] == pytest.approx(results["settings"]["mean_input_length"])
    assert 1.0 < planned["flops_ratio"] < everywhere["flops_ratio"]
    assert 1.0 < planned["flops_ratio_analytic"] < everywhere["flops_ratio_analytic"]
    assert f"| {plan} |" in (tmp_path / "plans.md").read_text()


@pytest.mark.parametrize(
    ("modes", "message"),
    [
        (["none"], r"`modes` \['none'\] prune nothing; the stock model is the baseline"),
        (["all", "all"], r"`modes` lists \['all'\] more than once"),
        (["layers=2-1"], r"has the empty range '2-1'"),
        (["layers=0-6"], r"`mode='layers=0-6'` does not fit the 6-layer model"),
    ],
)
def test_bad_modes_are_named(tmp_path, modes, message):
    with pytest.raises(ValueError, match=message):
        run_benchmark("minilm", batch_size=1, seq_len=32, num_batches=1, repeats=1, modes=tuple(modes))
