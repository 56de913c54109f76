"""``XTCQuantizer``: the XTC recipe behind Optimum's ``OptimumQuantizer`` interface."""

import json

import pytest
import torch
from datasets import Dataset
from optimum.quantization_base import OptimumQuantizer
from transformers import LlamaConfig, LlamaForCausalLM

from xtc_hf import XTCGPT2LMHeadModel, XTCQuantizer, XTCRecipeConfig
from xtc_hf.optimum_quantizer import WORK_SUFFIX
from xtc_hf.recipe import stage_reports

TINY_RECIPE = dict(
    layer_reduction_steps=3, quantization_steps=3, batch_size=4, logging_steps=1, save_steps=3, bf16=False,
    learning_rate=1e-3,
)  # fmt: skip


@pytest.fixture
def token_dataset():
    torch.manual_seed(2)
    return Dataset.from_dict({"input_ids": torch.randint(1, 99, (16, 16)).tolist()})


def quantize_with_optimum(quantizer: OptimumQuantizer, save_dir, **kwargs):
    """What code written against Optimum's interface does: only the base class's methods."""
    return quantizer.quantize(save_dir, **kwargs)


def test_quantizer_compresses_and_saves_through_the_optimum_interface(tiny_gpt2, token_dataset, input_ids, tmp_path):
    tiny_gpt2.save_pretrained(tmp_path / "teacher")
    quantizer = XTCQuantizer.from_pretrained(str(tmp_path / "teacher"))
    assert isinstance(quantizer, OptimumQuantizer)
    student = quantize_with_optimum(
        quantizer, tmp_path / "student", student_layers=[1, 3], weight_bits=1, train_dataset=token_dataset,
        **TINY_RECIPE,
    )  # fmt: skip
    assert isinstance(student, XTCGPT2LMHeadModel) and student.config.packed
    assert student.config.teacher_layers == [1, 3] and student.xtc_checkpoint == str(tmp_path / "student")
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["model_type"] == "xtc_gpt2" and config["quantization_config"]["weight_bits"] == 1
    # both XTC stages ran (layer reduction, then quantisation) in the sibling work folder, not in the saved model
    reports = stage_reports(str(tmp_path / "student") + WORK_SUFFIX)
    assert sorted(report["stage"] for report in reports.values()) == ["layer_reduction", "quantization"]
    assert all(report["steps"] == 3 for report in reports.values())
    loaded = XTCGPT2LMHeadModel.from_pretrained(tmp_path / "student").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids).logits, student(input_ids).logits, rtol=0, atol=0)


def test_quantizer_accepts_a_model_object_and_a_recipe(tiny_gpt2, token_dataset, tmp_path):
    recipe = XTCRecipeConfig(student_layers="all", weight_bits=2, **TINY_RECIPE)
    student = XTCQuantizer.from_pretrained(tiny_gpt2).quantize(
        tmp_path / "out", recipe=recipe, train_dataset=token_dataset, work_dir=tmp_path / "work"
    )
    assert student.config.n_layer == 4 and student.config.weight_bits == 2
    assert [report["stage"] for report in stage_reports(str(tmp_path / "work")).values()] == ["quantization"]
    assert (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda q, path: XTCQuantizer.from_pretrained(q.model, file_name="model.onnx"), "file_name"),
        (lambda q, path: q.quantize(path, file_prefix="int8"), "file_prefix"),
        (lambda q, path: q.quantize(path, recipe=XTCRecipeConfig(), weight_bits=2), "either `recipe`"),
        (lambda q, path: q.quantize(path, weight_bits=3), "weight_bits"),
    ],
)
def test_quantizer_rejects_bad_arguments(tiny_gpt2, tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(XTCQuantizer(tiny_gpt2), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_quantizer_rejects_a_non_gpt2_model():
    llama = LlamaForCausalLM(
        LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99)
    )
    with pytest.raises(ValueError, match="GPT-2"):
        XTCQuantizer.from_pretrained(llama)


def test_xtc_cli_compress_runs_the_quantizer(tiny_gpt2, token_dataset, tmp_path, monkeypatch, capsys):
    import xtc_hf.data
    from xtc_hf.cli import main

    monkeypatch.setattr(xtc_hf.data, "stdlib_dataset", lambda split: token_dataset)  # the CLI trains on the stdlib
    tiny_gpt2.save_pretrained(tmp_path / "teacher")
    args = ["--quiet", "compress", "--teacher", str(tmp_path / "teacher"), "--output-dir", str(tmp_path / "work"),
            "--layers", "0,2", "--weight-bits", "8", "--steps", "2", "--save", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "out")  # Trainer prints too
    saved = XTCGPT2LMHeadModel.from_pretrained(tmp_path / "out")
    assert saved.config.teacher_layers == [0, 2] and saved.config.weight_bits == 8 and saved.config.packed
    assert sorted(report["stage"] for report in stage_reports(str(tmp_path / "work")).values()) == [
        "layer_reduction",
        "quantization",
    ]
