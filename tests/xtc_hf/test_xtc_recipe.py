import json
import os

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from xtc_hf import DistillationCallback, XTCGPT2LMHeadModel, XTCRecipeConfig, resolve_student_layers, xtc_compress
from xtc_hf.callbacks import soft_cross_entropy
from xtc_hf.recipe import prepare_train_dataset, stage_reports


@pytest.fixture
def token_dataset():
    torch.manual_seed(2)
    return Dataset.from_dict({"input_ids": torch.randint(1, 99, (32, 16)).tolist()})


def _tiny_recipe(**overrides):
    settings = dict(
        layer_reduction_steps=4,
        quantization_steps=4,
        batch_size=4,
        logging_steps=2,
        save_steps=2,
        bf16=False,
        learning_rate=1e-3,
    )
    settings.update(overrides)
    return XTCRecipeConfig(**settings)


@pytest.mark.parametrize(
    ("mode", "count", "expected"),
    [
        ("odd", None, [1, 3, 5, 7, 9, 11]),
        ("even", None, [0, 2, 4, 6, 8, 10]),
        ("first", 4, [0, 1, 2, 3]),
        ("last", 3, [9, 10, 11]),
        ("all", None, list(range(12))),
        (None, None, list(range(12))),
        ([7, 2], None, [2, 7]),
    ],
)
def test_resolve_student_layers(mode, count, expected):
    assert resolve_student_layers(mode, 12, count) == expected


@pytest.mark.parametrize(
    ("mode", "match"),
    [([], "empty"), ([12], "not a layer"), ([-1], "not a layer"), ([1, 1], "repeat"), ("middle", "one of")],
)
def test_resolve_student_layers_rejects(mode, match):
    with pytest.raises(ValueError, match=match):
        resolve_student_layers(mode, 12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight_bits": 3}, "weight_bits"),
        ({"activation_bits": 4}, "activation_bits"),
        ({"student_layers": []}, "empty"),
        ({"student_layers": "middle"}, "student_layers"),
        ({"temperature": 0}, "temperature"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
        ({"weight_granularity": "col"}, "weight_granularity"),
        ({"quantization_learning_rate": 0}, "quantization_learning_rate"),
    ],
)
def test_recipe_config_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XTCRecipeConfig(**kwargs)


def test_dataset_without_text_is_rejected(tiny_gpt2):
    with pytest.raises(ValueError, match="no `text` column"):
        prepare_train_dataset(Dataset.from_dict({"content": ["x = 1"]}))
    with pytest.raises(ValueError, match="tokenizer"):
        prepare_train_dataset(Dataset.from_dict({"text": ["x = 1"]}))
    with pytest.raises(ValueError, match="empty"):
        prepare_train_dataset(Dataset.from_dict({"text": []}))
    with pytest.raises(ValueError, match="no `text` column"):
        xtc_compress(tiny_gpt2, _tiny_recipe(), Dataset.from_dict({"code": ["x = 1"]}))


def test_non_gpt2_teacher_is_rejected(token_dataset):
    with pytest.raises(ValueError, match="GPT-2"):
        xtc_compress(torch.nn.Linear(2, 2), _tiny_recipe(), token_dataset)


def test_soft_cross_entropy_matches_definition():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    expected = -(t.div(2).softmax(-1) * s.div(2).log_softmax(-1)).sum(-1).mean() * 4
    torch.testing.assert_close(soft_cross_entropy(s, t, temperature=2.0), expected)


def test_distillation_callback_with_stock_trainer_logs_kd_terms(tiny_gpt2, token_dataset, tmp_path):
    student = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[1, 3], weight_bits=32, activation_bits=32)
    callback = DistillationCallback(tiny_gpt2, layer_map={0: 0, 1: 2, 2: 4}, gt_weight=0.5)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=2,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    trainer = Trainer(model=student, args=args, train_dataset=token_dataset, callbacks=[callback])
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all({"kd_logit", "kd_hidden", "kd_gt"} <= set(entry) for entry in logged)
    first, last = logged[0], logged[-1]
    assert last["kd_logit"] + last["kd_hidden"] < first["kd_logit"] + first["kd_hidden"]
    # hooks are removed after training: eval-mode forward is the plain model again
    assert not student._forward_hooks and not student._forward_pre_hooks


def test_distillation_callback_rejects_bad_settings(tiny_gpt2):
    with pytest.raises(ValueError, match="temperature"):
        DistillationCallback(tiny_gpt2, temperature=0)
    with pytest.raises(ValueError, match="loss terms"):
        DistillationCallback(tiny_gpt2, logit_weight=0, gt_weight=0)


def test_xtc_compress_two_stages_and_reuse(tiny_gpt2, token_dataset, tmp_path, input_ids):
    model = xtc_compress(tiny_gpt2, _tiny_recipe(num_student_layers=2), token_dataset, output_dir=str(tmp_path))
    assert isinstance(model, XTCGPT2LMHeadModel) and model.config.packed
    assert model.config.n_layer == 2 and model.config.teacher_layers == [1, 3]
    reports = stage_reports(str(tmp_path))
    stages = sorted(report["stage"] for report in reports.values())
    assert stages == ["layer_reduction", "quantization"]
    assert all(report["steps"] == 4 and report["train_seconds"] > 0 for report in reports.values())
    assert os.path.isfile(os.path.join(model.xtc_checkpoint, "model.safetensors"))
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
    # a second run with the same settings reuses both stages
    again = xtc_compress(tiny_gpt2, _tiny_recipe(num_student_layers=2), token_dataset, output_dir=str(tmp_path))
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=input_ids).logits, expected, rtol=0, atol=0)
    # the full-precision 6L variant shares stage 1
    reduced = xtc_compress(
        tiny_gpt2,
        _tiny_recipe(num_student_layers=2, weight_bits=32, activation_bits=32),
        token_dataset,
        output_dir=str(tmp_path),
    )
    assert not reduced.config.is_quantized and len(stage_reports(str(tmp_path))) == 2
    # stage 2's own peak learning rate: a new stage 2 from the same stage 1, its rate in the report
    xtc_compress(tiny_gpt2, _tiny_recipe(num_student_layers=2, quantization_learning_rate=1e-4), token_dataset,
                 output_dir=str(tmp_path))  # fmt: skip
    rates = sorted((r["stage"], r.get("learning_rate")) for r in stage_reports(str(tmp_path)).values())
    assert rates == [("layer_reduction", 1e-3), ("quantization", 1e-4), ("quantization", 1e-3)]


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated crash after the step-2 checkpoint")


def test_xtc_compress_resumes_from_trainer_checkpoint(tiny_gpt2, token_dataset, tmp_path):
    recipe = _tiny_recipe(student_layers="all")  # quantisation stage only
    with pytest.raises(KeyboardInterrupt):
        xtc_compress(tiny_gpt2, recipe, token_dataset, output_dir=str(tmp_path), callbacks=[_Crash()])
    (stage_dir,) = os.listdir(tmp_path)
    assert "checkpoint-2" in os.listdir(tmp_path / stage_dir / "checkpoints")
    assert not (tmp_path / stage_dir / "final").exists()  # nothing half-written in place
    recorder = _Recorder()
    model = xtc_compress(tiny_gpt2, recipe, token_dataset, output_dir=str(tmp_path), callbacks=[recorder])
    report = json.loads((tmp_path / stage_dir / "final" / "xtc_stage.json").read_text())
    assert report["steps"] == 4 and model.config.packed
    assert recorder.steps == [3, 4]  # resumed after the step-2 checkpoint, not from scratch


class _Recorder(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
