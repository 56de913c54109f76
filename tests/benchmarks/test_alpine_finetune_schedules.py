"""Fine-tuning with explicit plans (see test_alpine_plans.py for their syntax) and schedule (b): fine-tune unpruned
first, then continue with pruning on, distilling from the unpruned run."""

import json
import os

import pytest
import torch

import benchmarks.alpine_finetune as finetune
from benchmarks.alpine_finetune import (
    FinetuneConfig,
    finetune_markdown,
    plot_frontier,
    run_finetune,
    teacher_checkpoint,
)
from benchmarks.cli import main


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"schedules": ("c",)}, r"`schedules` must list some of \('a', 'b'\), each once, got \('c',\)"),
        ({"schedules": ("a", "a")}, r"`schedules` must list some of"),
        ({"schedules": ()}, r"`schedules` must list some of"),
        ({"schedules": ("b",), "modes": ("none",)}, r"`modes` \('none',\) prune nothing; add a pruning mode"),
        ({"distill_kl_weight": 1.5}, r"`distill_kl_weight` must be in \[0, 1\]"),
        ({"distill_epochs": 0}, r"`distill_epochs` must be > 0"),
        ({"distill_learning_rate": 0}, r"`distill_learning_rate` must be > 0, or None"),
        ({"modes": ("all", "layers=1", "all")}, r"`modes` lists \['all'\] more than once"),
    ],
)
def test_bad_schedule_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(bf16=False, **settings)


def test_runs_put_the_unpruned_run_before_schedule_b():
    config = FinetuneConfig(modes=("all", "none", "layers=1"), schedules=("a", "b"), bf16=False)
    assert config.runs() == [("a", "all"), ("a", "none"), ("a", "layers=1"), ("b", "all"), ("b", "layers=1")]


def test_a_plan_that_does_not_fit_the_model_stops_before_training(tiny_bert, tmp_path):
    config = FinetuneConfig(model=tiny_bert, modes=("none", "layers=0-3"), output_dir=str(tmp_path), bf16=False)
    with pytest.raises(ValueError, match=r"does not fit the 2-layer model"):
        run_finetune(config)
    with pytest.raises(ValueError, match=r"`save_mode='all'` with `save_schedule='b'` is not among the runs"):
        run_finetune(FinetuneConfig(model=tiny_bert, modes=("none", "all"), bf16=False), save_mode="all",
                     save_to=str(tmp_path / "saved"), save_schedule="b")  # fmt: skip
    assert os.listdir(tmp_path) == []


def test_schedule_b_needs_the_unpruned_run_of_its_seed(tmp_path):
    config = FinetuneConfig(modes=("all",), schedules=("b",), output_dir=str(tmp_path), bf16=False)
    with pytest.raises(ValueError, match=r"unpruned run of seed 43, but '.*none/seed-43' holds no Trainer checkpoint"):
        teacher_checkpoint(config, 43)


def test_cli_names_a_bad_plan(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["alpine-finetune", "--modes", "none", "layers=2-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "`mode='layers=2-1'` has the empty range" in err and "Traceback" not in err


# -- schedule (b) end to end on a tiny BERT ------------------------------------------------------------------------


class RecordingDistillation(finetune.AlpineDistillationCallback):
    """Counts the training forwards whose loss the distillation hook replaced."""

    forwards = 0

    def _distill(self, module, args, kwargs, outputs):
        if module.training:
            RecordingDistillation.forwards += 1
        return super()._distill(module, args, kwargs, outputs)


def test_schedule_b_runs_after_the_unpruned_run_and_reports_both_schedules(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(finetune, "AlpineDistillationCallback", RecordingDistillation)
    RecordingDistillation.forwards = 0
    plan = "layers=1;alpha=2,0.5"  # prune the last layer only, with its own window
    config = FinetuneConfig(
        model=tiny_bert, modes=("none", plan), schedules=("a", "b"), train_pairs=16, eval_pairs=8,
        max_length=64, batch_size=8, seeds=2, distill_epochs=1.0, output_dir=str(tmp_path / "runs"), bf16=False,
    )  # fmt: skip
    results = run_finetune(config)
    assert list(results["modes"]) == ["none", plan] and list(results["schedules"]) == ["b"]
    schedule_b = results["schedules"]["b"]
    assert list(schedule_b) == [plan]  # the unpruned run is the start of (b), not one of its modes
    assert RecordingDistillation.forwards == 2 * 2  # 2 seeds x 2 steps of 8 pairs
    runs = tmp_path / "runs"
    planned = schedule_b[plan]
    assert planned["schedule"] == "b" and planned["seeds"] == [42, 43] and results["modes"][plan]["schedule"] == "a"
    folder = runs / "schedule-b" / "layers-1_alpha-2,0.5"
    assert folder.is_dir() and (folder / "seed-43").is_dir() and (runs / "layers-1_alpha-2,0.5" / "seed-43").is_dir()
    for run, base in zip(planned["runs"], results["modes"]["none"]["runs"]):
        assert run["retention_f1"] == pytest.approx(run["f1"] / max(base["f1"], 1e-12)) and run["resumed_from"] is None
        seed_folder = runs / "none" if run["seed"] == 42 else runs / "none" / "seed-43"
        assert os.path.dirname(run["started_from"]) == str(seed_folder)  # the unpruned run of the same seed
        # the scores of the start it had (a start retrained on another CPU scores a little differently)
        assert run["start_scores"] == {key: base[key] for key in ("accuracy", "f1", "cpu", "cpu_capability")}
        assert run["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and run["cpu"]
        assert run["data_fingerprint"] == base["data_fingerprint"] and len(run["data_fingerprint"]) == 12
    assert planned["layers"] == [1] and planned["alpha"] == [2.0, 0.5] and planned["merge"] is True
    assert planned["eval_kept_lengths"][0] == pytest.approx(planned["eval_input_length"])  # layer 0 does not prune
    assert results["modes"]["none"]["alpha"] == 1.0  # FinetuneConfig.alpha, for modes that do not set one
    assert results["settings"]["schedules"] == ("a", "b")
    json.dumps(results)  # the comparison is one JSON document

    table = finetune_markdown(results)
    assert "Schedule (b): the unpruned `none` run above, then 1.0 epoch(s)" in table
    runs_here = f"PyTorch CPU capability {torch.backends.cpu.get_cpu_capability()} (6 runs)._"  # none, (a) and (b), 2 seeds each
    assert table.endswith(runs_here) and "_Measured on: " in table
    assert table.count("| mode | accuracy |") == 2 and f"| {plan} |" in table
    plot_frontier(results, tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").read_bytes().startswith(b"\x89PNG")

    # interrupted and started again: every run (both schedules) resumes from its checkpoint, nothing retrains
    again = run_finetune(config)
    for run in again["schedules"]["b"][plan]["runs"] + again["modes"]["none"]["runs"]:
        assert run["resumed_from"] is not None
    assert again["schedules"]["b"][plan]["f1"] == planned["f1"]
    assert RecordingDistillation.forwards == 4


def test_frontier_targets_take_the_best_run_at_2x_fewer_flops_in_any_schedule():
    def run(layers, alpha, retention, flops):
        return {"layers": layers, "alpha": alpha, "retention_f1": retention, "eval_flops_ratio_analytic": flops}

    results = {
        "modes": {"none": run("none", 1.0, 1.0, 1.0), "all": run("all", 1.0, 0.90, 2.2),
                  "odd": run("odd", 1.0, 0.99, 1.3)},
        "schedules": {"b": {"all": run("all", 1.0, 0.95, 2.1), "layers=1-5;alpha=0.75": run([1, 2, 3, 4, 5], 0.75, 0.97, 2.0)}},
    }  # fmt: skip
    plan, everywhere = finetune.frontier_targets(results)
    # odd keeps 99% but saves too little; the plan of schedule b is the best at >= 2x and meets 97% exactly
    assert plan == "- met: some plan at >= 2.0x FLOPs keeps >= 97% of the unpruned F1 (best: layers=1-5;alpha=0.75 (b) 97.00% at 2.00x)"  # fmt: skip
    assert everywhere == "- met: `all` at alpha 1 keeps >= 95% of the unpruned F1 (all (a) 90.00%, all (b) 95.00%)"
    results["schedules"]["b"]["layers=1-5;alpha=0.75"]["eval_flops_ratio_analytic"] = 1.99
    results["schedules"]["b"]["all"]["retention_f1"] = 0.9499
    plan, everywhere = finetune.frontier_targets(results)
    assert plan.startswith("- NOT met: some plan") and plan.endswith("(best: all (b) 94.99% at 2.10x)")
    assert everywhere.startswith("- NOT met: `all` at alpha 1")
