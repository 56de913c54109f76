"""``python -m benchmarks``: bad options are refused, naming the option, before any training or measurement."""

import os

import pytest

import benchmarks.alpine_finetune
import benchmarks.alpine_speed
import benchmarks.flab_ablation
import benchmarks.flab_bench
import benchmarks.flab_recovery
import benchmarks.xtc_bench
import benchmarks.xtc_embedding_rows
from benchmarks.cli import main


def _never(*args, **kwargs):
    raise AssertionError("bad options must be refused before any training or measurement")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["alpine-speed", "--threads", "0"], "--threads"),
        (["alpine-speed", "--batch-size", "0"], "--batch-size"),
        (["alpine-speed", "--json", "{file}/results.json"], "`--json`="),
        (["alpine-speed", "--plot", "{file}/plot.png"], "`--plot`="),
        (["alpine-finetune", "--json", "{file}/results.json"], "`--json`="),
        (["alpine-finetune", "--max-length", "zero"], "--max-length"),
        (["alpine-finetune", "--packages", "no_such_package"], "`packages`"),
        (["flab-recovery", "--json", "{file}/r.json"], "`--json`="),
        (["flab-recovery", "--levels", "vocab+9X"], "`levels`"),
        (["flab-ablation", "--levels", "vocab,4L+4L"], "`levels` has '4L+4L'"),
        (["flab-ablation", "--json", "{file}/r.json"], "`--json`="),
        (["flab-recovery", "--train-tokens", "0"], "`train_tokens`"),
        (["flab", "--json", "{file}/r.json"], "`--json`="),
        (["flab", "--json", "{dir}/r.json", "--model", "tinyllama"], "`--model`="),
        (["flab", "--json", "{dir}/r.json", "--humaneval", "0"], "--humaneval"),
        (["flab-humaneval", "--model", "{dir}/missing"], "`--model`="),
        (["xtc", "--json", "{dir}/r.json", "--threads", "0"], "--threads"),
        (["xtc", "--json", "{file}/r.json"], "`--json`="),
        (["xtc", "--json", "{dir}/r.json", "--steps", "-2"], "--steps"),
        (["xtc-teacher", "--steps", "0"], "--steps"),
        (["xtc-teacher", "--tokens", "0"], "--tokens"),
        (["xtc-teacher", "--tokens", "4096", "--steps", "3"], "Give `steps` (3) or `tokens` (4096), not both"),
        (["xtc-teacher", "--curve-samples", "-1"], "`curve_samples` must be an int >= 0"),
        (["xtc-teacher", "--preset", "py151"], "--preset"),
        (["xtc", "--json", "{dir}/r.json", "--teacher-tokens", "0"], "--teacher-tokens"),
        (["xtc", "--json", "{dir}/r.json", "--teacher-tokens", "9", "--teacher-steps", "3"], "not both"),
        (["xtc", "--json", "{dir}/r.json", "--embedding-bits", "3"], "`embedding_bits` must be None or one of"),
        (["xtc", "--json", "{dir}/r.json", "--teacher-dir", "{dir}"], "`teacher_dir`="),
        (["xtc", "--json", "{dir}/r.json", "--weight-granularity", "column"], "--weight-granularity"),
        (["xtc-eval", "--model", "smollm2", "--json", "{file}/r.json"], "`--json`="),
        (["xtc", "--json", "{dir}/r.json", "--embedding-int8-rows", "64"], "set `embedding_bits` to 1, 2 or 4"),
        (["xtc", "--json", "{dir}/r.json", "--embedding-bits", "4", "--embedding-int8-rows", "0"], "--embedding-int8"),
        (["xtc-embedding-rows", "--teacher-dir", "{dir}", "--json", "{dir}/r.json"], "`teacher_dir`="),
        (["xtc-embedding-rows", "--teacher-dir", "{dir}", "--json", "{file}/r.json"], "`--json`="),
        (["xtc-embedding-rows", "--teacher-dir", "{dir}", "--int8-rows", "0"], "--int8-rows"),
    ],
)
def test_bad_options_are_refused_before_work(tmp_path, capsys, monkeypatch, argv, named):
    for module, name in (
        (benchmarks.alpine_speed, "run_benchmark"),
        (benchmarks.alpine_finetune, "run_finetune"),
        (benchmarks.flab_bench, "run_benchmark"),
        (benchmarks.flab_bench, "humaneval_pass"),
        (benchmarks.xtc_bench, "run_bench"),
        (benchmarks.xtc_embedding_rows, "embedding_rows_bench"),
        (benchmarks.flab_recovery, "run_recovery_bench"),
        (benchmarks.flab_ablation, "run_ablation_bench"),
    ):
        monkeypatch.setattr(module, name, _never)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = [value.format(file=blocker, dir=tmp_path) for value in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", *argv])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["a-file"]


def test_xtc_settings_refuse_an_unknown_weight_granularity():
    from benchmarks.xtc_bench import BenchSettings

    assert BenchSettings(weight_granularity="row").weight_granularity == "row"
    with pytest.raises(ValueError, match="`weight_granularity` must be one of"):
        BenchSettings(weight_granularity="column")
