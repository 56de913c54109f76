"""``quantization_config`` (``quant_method: "xtc"``) in packed checkpoints and Transformers' quantizer registry."""

import json
import shutil
import textwrap

import pytest
import torch
from fresh_process import run_fresh_python
from transformers import AutoModelForCausalLM, GPT2LMHeadModel, Trainer, TrainingArguments

from xtc_hf import XTCGPT2LMHeadModel, XTCHfQuantizer, XTCQuantizationConfig


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture
def packed_folder(tiny_gpt2, tmp_path):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[0, 3], weight_bits=1, weight_granularity="row")
    model.eval().pack_().save_pretrained(tmp_path / "packed")
    return tmp_path / "packed"


def _edit_config(folder, **quantization_config):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["quantization_config"].update(quantization_config)
    path.write_text(json.dumps(config))


def test_packed_checkpoint_describes_its_quantization(tiny_gpt2, packed_folder, tmp_path):
    described = json.loads((packed_folder / "config.json").read_text())["quantization_config"]
    assert described == {
        "quant_method": "xtc",
        "weight_bits": 1,
        "activation_bits": 8,
        "weight_granularity": "row",
        "quantize_embeddings": True,
        "modules": [
            "transformer.h.*.attn.c_attn",
            "transformer.h.*.attn.c_proj",
            "transformer.h.*.mlp.c_fc",
            "transformer.h.*.mlp.c_proj",
            "transformer.wte",
        ],
        "modules_to_not_convert": ["transformer.wpe"],
        "weight_format": "packed",
    }
    assert (packed_folder / "quantizer_xtc.py").exists()  # travels with the checkpoint, like the modeling code
    unpacked = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1)
    unpacked.save_pretrained(tmp_path / "unpacked")  # the training representation is not a quantized checkpoint
    assert "quantization_config" not in json.loads((tmp_path / "unpacked" / "config.json").read_text())
    float_only = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32).pack_()
    assert getattr(float_only.config, "quantization_config", None) is None


def test_plain_auto_load_goes_through_the_registered_quantizer(packed_folder, input_ids, tmp_path):
    expected = _logits(XTCGPT2LMHeadModel.from_pretrained(packed_folder).eval(), input_ids)
    model = AutoModelForCausalLM.from_pretrained(packed_folder)  # no trust_remote_code: xtc_hf is imported
    assert isinstance(model, XTCGPT2LMHeadModel) and isinstance(model.hf_quantizer, XTCHfQuantizer)
    assert isinstance(model.config.quantization_config, XTCQuantizationConfig) and model.is_quantized
    torch.testing.assert_close(_logits(model, input_ids), expected, rtol=0, atol=0)
    # Transformers' guards for quantized models apply: packed weights are integer buffers, not trainable
    with pytest.raises(ValueError, match="cannot perform fine-tuning on purely quantized models"):
        Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "t"), report_to=[], use_cpu=True))
    model.save_pretrained(tmp_path / "resaved")  # the typed config serialises back to the same dict
    resaved = json.loads((tmp_path / "resaved" / "config.json").read_text())["quantization_config"]
    assert resaved == json.loads((packed_folder / "config.json").read_text())["quantization_config"]


REMOTE = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM
    ids = torch.tensor(json.loads(sys.argv[3]))
    report = {}
    for name, folder in (("unregistered", sys.argv[1]), ("registered", sys.argv[2])):  # this order: registering is global
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        quantizer = getattr(model, "hf_quantizer", None)
        report[name] = {"module": type(model).__module__, "logits": logits.tolist(),
                        "quantizer": None if quantizer is None else type(quantizer).__module__ + "." + type(quantizer).__name__}
    print(json.dumps(report))
    """
)


def test_remote_code_loads_with_and_without_the_quantizer(packed_folder, input_ids, tmp_path):
    """`trust_remote_code` in a process without xtc_hf: the checkpoint's own quantizer file registers `xtc`; code
    that does not register it (checkpoints written before it existed) still loads, Transformers only warns."""
    expected = _logits(AutoModelForCausalLM.from_pretrained(packed_folder).eval(), input_ids)  # plain, registered
    old = tmp_path / "without_quantizer"
    shutil.copytree(packed_folder, old)
    (old / "quantizer_xtc.py").unlink()
    configuration = (old / "configuration_xtc.py").read_text()
    registration = "from .quantizer_xtc import register_xtc_quantizer  # noqa: E402\n\nregister_xtc_quantizer()\n"
    assert registration in configuration
    (old / "configuration_xtc.py").write_text(configuration.replace(registration, ""))
    report, stderr = run_fresh_python(
        REMOTE, old, packed_folder, json.dumps(input_ids.tolist()), cwd=tmp_path, modules_dir=tmp_path / "modules"
    )
    assert "Unknown quantization type, got xtc" in stderr  # the unregistered load warned, and went on
    assert report["unregistered"]["quantizer"] is None
    quantizer = report["registered"]["quantizer"]
    assert quantizer.startswith("transformers_modules") and quantizer.endswith("quantizer_xtc.XTCHfQuantizer")
    for name in ("unregistered", "registered"):
        assert report[name]["module"].startswith("transformers_modules")
        torch.testing.assert_close(torch.tensor(report[name]["logits"]), expected, rtol=0, atol=1e-6)


# -- bad input ---------------------------------------------------------------------------------------------------


def test_description_that_contradicts_the_model_is_refused(packed_folder):
    _edit_config(packed_folder, weight_bits=2)
    with pytest.raises(
        ValueError, match=r"`quantization_config.weight_bits` is 2 but the model config's `weight_bits` is 1"
    ):
        AutoModelForCausalLM.from_pretrained(packed_folder)


def test_invalid_description_is_refused(packed_folder):
    _edit_config(packed_folder, weight_granularity="column")
    with pytest.raises(ValueError, match="weight_granularity` must be one of"):
        AutoModelForCausalLM.from_pretrained(packed_folder)


def test_xtc_description_on_a_stock_gpt2_is_refused(tiny_gpt2, tmp_path):
    """Refused loudly: a stock GPT-2 would otherwise load the packed tensors as missing weights (random init)."""
    tiny_gpt2.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    config["quantization_config"] = {"quant_method": "xtc", "weight_bits": 1}
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type 'xtc_gpt2'.*'gpt2'"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_quantizing_a_float_model_at_load_time_is_refused(tiny_gpt2, tmp_path):
    tiny_gpt2.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pre-quantized"):  # XTC needs distillation: use xtc_compress / XTCQuantizer
        GPT2LMHeadModel.from_pretrained(tmp_path, quantization_config=XTCQuantizationConfig())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight_bits": 3}, "weight_bits"),
        ({"activation_bits": 16}, "activation_bits"),
        ({"weight_granularity": "column"}, "weight_granularity"),
        ({"weight_format": "fake"}, "weight_format"),
    ],
)
def test_quantization_config_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XTCQuantizationConfig(**kwargs)
