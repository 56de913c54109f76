"""The clone-detection fine-tuning benchmark with several training seeds: mean, standard deviation and every run."""

import pytest

from benchmarks.alpine_finetune import FinetuneConfig, finetune_markdown, run_finetune


def test_seeds_report_mean_std_and_every_run(tiny_bert, tmp_path):
    config = FinetuneConfig(
        model=tiny_bert, modes=("none", "all"), train_pairs=16, eval_pairs=8, max_length=64, batch_size=8,
        seeds=2, output_dir=str(tmp_path / "runs"), bf16=False,
    )  # fmt: skip
    results = run_finetune(config)
    for mode in ("none", "all"):
        entry = results["modes"][mode]
        assert entry["seeds"] == [42, 43] and [run["seed"] for run in entry["runs"]] == [42, 43]
        f1s = [run["f1"] for run in entry["runs"]]
        assert entry["f1"] == pytest.approx(sum(f1s) / 2) and entry["f1_std"] == pytest.approx(
            abs(f1s[0] - f1s[1]) / 2
        )
        # retention is per seed, against the unpruned run of the same seed
        for run, base in zip(entry["runs"], results["modes"]["none"]["runs"]):
            assert run["retention_f1"] == pytest.approx(run["f1"] / max(base["f1"], 1e-12))
    assert (tmp_path / "runs" / "all" / "seed-43").is_dir()
    assert results["capability"][
        "cpu_capability"
    ]  # the machine it ran on, for the README table  # the second seed trains in its own folder
    table = finetune_markdown(results)
    assert "±" in table and "over 2 training seeds (42, 43)" in table


def test_seeds_must_be_positive():
    with pytest.raises(ValueError, match=r"`seeds` must be > 0, got 0"):
        FinetuneConfig(seeds=0)


def test_results_dir_keeps_finished_runs_across_machines(tiny_bert, tmp_path, monkeypatch):
    import shutil

    import benchmarks.alpine_finetune as module

    settings = dict(model=tiny_bert, modes=("none", "all"), schedules=("a", "b"), train_pairs=16, eval_pairs=8,
                    max_length=64, batch_size=8, bf16=False, results_dir=str(tmp_path / "results"))  # fmt: skip
    first = run_finetune(FinetuneConfig(**settings, output_dir=str(tmp_path / "runs")))
    stored = sorted(path.name.split("-")[0] for path in (tmp_path / "results").iterdir())
    assert stored == ["a", "a", "b"]  # none and all in schedule a, all in schedule b
    # another machine: the results folder came along, the checkpoints did not; nothing is trained again
    monkeypatch.setattr(module, "finetune_mode", lambda *args, **kwargs: pytest.fail("a stored run was trained"))
    again = run_finetune(FinetuneConfig(**settings, output_dir=str(tmp_path / "elsewhere")))
    assert again["modes"]["all"]["f1"] == first["modes"]["all"]["f1"]
    assert again["schedules"]["b"]["all"]["retention_f1"] == first["schedules"]["b"]["all"]["retention_f1"]
    # stored_only reports the grid measured so far: a mode not stored yet is left out, nothing is trained
    grid = FinetuneConfig(**{**settings, "modes": ("none", "all", "even")}, output_dir=str(tmp_path / "elsewhere"))
    so_far = run_finetune(grid, stored_only=True)
    assert set(so_far["modes"]) == {"none", "all"} and set(so_far["schedules"]["b"]) == {"all"}
    assert so_far["schedules"]["b"]["all"]["retention_f1"] == first["schedules"]["b"]["all"]["retention_f1"]
    with pytest.raises(ValueError, match=r"the unpruned run \(mode 'none', schedule a\) of these settings is not in"):
        run_finetune(FinetuneConfig(**{**settings, "epochs": 3.0}), stored_only=True)
    with pytest.raises(ValueError, match=r"`stored_only` .* needs `results_dir` \(got None\)"):
        run_finetune(FinetuneConfig(**{**settings, "results_dir": None}), stored_only=True)
    # a schedule-b run that is not stored needs the unpruned weights: they are trained again first
    monkeypatch.undo()
    for path in (tmp_path / "results").glob("b-*"):
        path.unlink()
    shutil.rmtree(tmp_path / "runs")
    third = run_finetune(FinetuneConfig(**settings, output_dir=str(tmp_path / "runs")))
    assert third["schedules"]["b"]["all"]["f1"] == first["schedules"]["b"]["all"]["f1"]
    # a changed setting is another run
    assert module.run_result_path(FinetuneConfig(**settings), "all", 42) != module.run_result_path(
        FinetuneConfig(**{**settings, "epochs": 2.0}), "all", 42
    )
    assert module.run_result_path(FinetuneConfig(**settings), "all", 42) == module.run_result_path(
        FinetuneConfig(**{**settings, "distill_epochs": 2.0}), "all", 42
    )  # schedule b's settings do not change a schedule-a run
