"""XTC stages distilled to convergence: held-out KL measured during training, a stop on a plateau, the KL curve in the
stage report, and an interrupted run that resumes to the weights (and curve) of an uninterrupted one."""

import os

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback

from xtc_hf import XTCGPT2LMHeadModel, XTCRecipeConfig, xtc_compress
from xtc_hf.convergence import HeldOutKLCallback, PlateauAnnealSchedule, heldout_kl, plateaued, split_heldout
from xtc_hf.recipe import stage_reports


@pytest.fixture
def blocks():
    torch.manual_seed(2)
    return Dataset.from_dict({"input_ids": torch.randint(1, 99, (64, 16)).tolist()})


def recipe(**overrides) -> XTCRecipeConfig:
    """2 of the tiny teacher's 4 layers in fp32; a KL point every 5 steps, a stop after 2 points without a 5% fall."""
    settings = dict(num_student_layers=2, weight_bits=32, activation_bits=32, until_converged=True,
                    layer_reduction_steps=300, quantization_steps=300, kl_eval_steps=5, patience=2, min_delta=0.05,
                    kl_eval_blocks=8, batch_size=8, learning_rate=1e-3, bf16=False, save_steps=10, logging_steps=5)  # fmt: skip
    return XTCRecipeConfig(**{**settings, **overrides})


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 13:
            raise KeyboardInterrupt("simulated crash after the step-10 checkpoint")


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "expected"),
    [
        ([3.0, 2.0, 1.98, 1.99, 1.995], 3, 0.01, True),  # 1.98 is not 1% below 2.0
        ([3.0, 2.0, 1.97, 1.99, 1.995], 3, 0.01, False),  # 1.97 is
        ([3.0, 2.0], 3, 0.0, False),  # too few measurements to tell
        ([1.0, 1.0, 1.0], 2, 0.0, True),  # flat
        ([1.0, 0.9, 0.8, 0.7], 1, 0.0, False),
    ],
)
def test_plateaued(values, patience, min_delta, expected):
    assert plateaued(values, patience, min_delta) is expected


def test_split_heldout_spreads_over_the_data(blocks):
    train, held = split_heldout(blocks, 8)
    assert len(train) == 56 and len(held) == 8
    assert held["input_ids"] == [blocks[i]["input_ids"] for i in range(7, 64, 8)]
    with pytest.raises(ValueError, match="has 64 blocks, too few to hold out 64"):
        split_heldout(blocks, 64)


def test_heldout_kl_is_zero_for_the_teacher_itself(tiny_gpt2, blocks):
    ids = torch.tensor(blocks[:4]["input_ids"])
    copy = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32).train()
    assert abs(heldout_kl(copy, tiny_gpt2, ids, batch_size=3)) < 1e-6
    assert copy.training  # the measurement leaves the student's mode alone
    reduced = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, [1, 3], weight_bits=32, activation_bits=32)
    assert heldout_kl(reduced, tiny_gpt2, ids) > 1e-5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kl_eval_steps": 0}, r"`kl_eval_steps` must be an integer >= 1, got 0"),
        ({"patience": 0}, r"`patience` must be an integer >= 1, got 0"),
        ({"kl_eval_blocks": 1.5}, r"`kl_eval_blocks` must be an integer >= 1, got 1.5"),
        ({"min_delta": 1.0}, r"`min_delta` must be in \[0, 1\)"),
    ],
)
def test_recipe_checks_the_convergence_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XTCRecipeConfig(**kwargs)


def test_callback_rejects_bad_settings(tiny_gpt2):
    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"`patience` must be None \(never stop\) or an int >= 1, got 0"):
        HeldOutKLCallback(tiny_gpt2, ids, every_steps=5, patience=0)
    with pytest.raises(ValueError, match=r"`every_steps` must be an int >= 1, got 0"):
        HeldOutKLCallback(tiny_gpt2, ids, every_steps=0)


def test_stages_distil_until_heldout_kl_stops_falling(tiny_gpt2, blocks, tmp_path):
    """anneal_ratio 0: each stage stops at the plateau."""
    model = xtc_compress(tiny_gpt2, recipe(weight_bits=1, activation_bits=8, anneal_ratio=0.0), blocks,
                         output_dir=str(tmp_path))  # fmt: skip
    assert model.config.packed and model.config.n_layer == 2
    reports = {report["stage"]: report for report in stage_reports(str(tmp_path)).values()}
    assert sorted(reports) == ["layer_reduction", "quantization"]
    for report in reports.values():
        curve = report["kl_curve"]
        assert report["converged"] and report["steps"] < report["max_steps"] == 300  # stopped on the plateau
        assert [p["step"] for p in curve] == list(range(0, report["steps"] + 1, 5))
        assert curve[-1]["tokens"] == report["tokens"] == report["steps"] * 8 * 16
        assert report["best_kl"] == min(p["kl"] for p in curve) < curve[0]["kl"]  # distillation lowered the KL
        assert plateaued([p["kl"] for p in curve], 2, 0.05) and not plateaued([p["kl"] for p in curve[:-1]], 2, 0.05)


@pytest.fixture
def sharp_gpt2():
    """A tiny GPT-2 with larger initial weights than ``tiny_gpt2``: its next-token distributions are far from
    uniform, so a halved student starts measurably off (the default init gives KL ~1e-4, nothing to anneal)."""
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=32, n_head=2, vocab_size=99, n_positions=64, initializer_range=0.3)
    return GPT2LMHeadModel(config).eval()


def test_stages_anneal_from_the_plateau_and_it_lowers_the_kl(sharp_gpt2, blocks, tmp_path):
    """The default: the plateau starts a decay of the learning rate over a quarter as many steps again, then the stage
    stops; the KL at the end of the decay is below the KL at the plateau."""
    xtc_compress(sharp_gpt2, recipe(weight_bits=1, activation_bits=8, warmup_ratio=0.05, logging_steps=1), blocks,
                 output_dir=str(tmp_path))  # fmt: skip
    reports = {report["stage"]: report for report in stage_reports(str(tmp_path)).values()}
    for report in reports.values():
        curve, start = report["kl_curve"], report["anneal_start"]
        values = [p["kl"] for p in curve if p["step"] <= start]
        assert report["converged"] and plateaued(values, 2, 0.05) and not plateaued(values[:-1], 2, 0.05)
        assert report["steps"] == report["anneal_end"] == start + round(start * 0.25) < 300
        assert curve[-1]["step"] == report["steps"]
        assert curve[-1]["kl"] < 0.99 * values[-1]  # the decay lowers the KL below the plateau
        rates = {entry["step"]: entry["learning_rate"] for entry in report["log"]}
        decay = [rate for step, rate in sorted(rates.items()) if step > start]
        assert decay == sorted(decay, reverse=True) and decay[-1] < 0.25e-3  # falling to 0


def test_plateau_anneal_schedule_and_its_checks():
    schedule = PlateauAnnealSchedule(max_steps=100, warmup_steps=10, anneal_ratio=0.2)
    assert [schedule(step) for step in (0, 5, 10, 80, 90, 100)] == [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]
    schedule.plateau_step = 40
    assert schedule.start_step() == 40 and schedule.end_step() == 50 and schedule(50) == 0.0
    schedule.plateau_step = 95  # after the latest start: the decay already runs to the cap
    assert schedule.start_step() == 80 and schedule.end_step() == 100
    with pytest.raises(ValueError, match=r"`anneal_ratio` must be in \(0, 1\)"):
        PlateauAnnealSchedule(100, 10, 0.0)
    with pytest.raises(ValueError, match=r"`anneal_ratio` must be in \[0, 1\)"):
        XTCRecipeConfig(anneal_ratio=1.0)


def test_fixed_steps_with_an_eval_dataset_record_the_curve_in_the_same_stage(tiny_gpt2, blocks, tmp_path):
    fixed = recipe(until_converged=False, layer_reduction_steps=10)
    xtc_compress(tiny_gpt2, fixed, blocks, output_dir=str(tmp_path))
    (name,) = os.listdir(tmp_path)
    assert "kl_curve" not in stage_reports(str(tmp_path))[name]
    xtc_compress(tiny_gpt2, fixed, blocks, output_dir=str(tmp_path / "eval"), eval_dataset=blocks.select(range(4)))
    (report,) = stage_reports(str(tmp_path / "eval")).values()
    assert os.listdir(tmp_path / "eval") == [name]  # measuring changes no weight, hence not the stage key
    assert report["steps"] == 10 and [p["step"] for p in report["kl_curve"]] == [0, 5, 10]
    assert "converged" not in report


def test_interrupted_distillation_resumes_to_the_uninterrupted_weights(tiny_gpt2, blocks, tmp_path):
    whole = xtc_compress(tiny_gpt2, recipe(), blocks, output_dir=str(tmp_path / "whole"))
    with pytest.raises(KeyboardInterrupt):
        xtc_compress(tiny_gpt2, recipe(), blocks, output_dir=str(tmp_path / "cut"), callbacks=[_Crash()])
    (stage,) = os.listdir(tmp_path / "cut")
    assert os.listdir(tmp_path / "cut" / stage / "checkpoints") == ["checkpoint-10"]
    resumed = xtc_compress(tiny_gpt2, recipe(), blocks, output_dir=str(tmp_path / "cut"))
    expected = load_file(os.path.join(whole.xtc_checkpoint, "model.safetensors"))
    got = load_file(os.path.join(resumed.xtc_checkpoint, "model.safetensors"))
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6, msg=name)
    (before,), (after,) = (
        stage_reports(str(tmp_path / "whole")).values(),
        stage_reports(str(tmp_path / "cut")).values(),
    )
    assert after["steps"] == before["steps"] > 13 and after["converged"]  # the crash came before the plateau
    assert [p["step"] for p in after["kl_curve"]] == [p["step"] for p in before["kl_curve"]]
    for a, b in zip(after["kl_curve"], before["kl_curve"]):
        assert a["kl"] == pytest.approx(b["kl"], rel=1e-4, abs=1e-9)


class _CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated crash at step {self.step}")


def test_a_run_stopped_during_the_anneal_resumes_to_the_uninterrupted_weights(sharp_gpt2, blocks, tmp_path):
    settings = recipe(warmup_ratio=0.05)  # one stage (fp32 weights): plateau at step 35, decay to step 44
    whole = xtc_compress(sharp_gpt2, settings, blocks, output_dir=str(tmp_path / "whole"))
    (before,) = stage_reports(str(tmp_path / "whole")).values()
    assert before["anneal_start"] < 40 < 42 < before["steps"] == before["anneal_end"]  # the crash falls in the decay
    with pytest.raises(KeyboardInterrupt):
        xtc_compress(sharp_gpt2, settings, blocks, output_dir=str(tmp_path / "cut"), callbacks=[_CrashAt(42)])
    resumed = xtc_compress(sharp_gpt2, settings, blocks, output_dir=str(tmp_path / "cut"))  # from checkpoint-40
    (after,) = stage_reports(str(tmp_path / "cut")).values()
    assert {k: after[k] for k in ("steps", "anneal_start", "anneal_end")} == {
        k: before[k] for k in ("steps", "anneal_start", "anneal_end")
    }
    expected = load_file(os.path.join(whole.xtc_checkpoint, "model.safetensors"))
    got = load_file(os.path.join(resumed.xtc_checkpoint, "model.safetensors"))
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6, msg=name)
