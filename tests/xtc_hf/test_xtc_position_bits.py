"""Low-bit position embeddings (``position_embedding_bits``): per-position codes with float scales, described in
``quantization_config``, smaller on disk, loaded through remote code with the logits of the in-memory model."""

import json

import pytest
import torch
from fresh_process import run_fresh_python
from safetensors.torch import load_file

from xtc_hf import XTCGPT2Config, XTCGPT2LMHeadModel, XTCRecipeConfig
from xtc_hf.quantizer_xtc import XTCQuantizationConfig

FRESH = """
import json, sys
sys.modules["xtc_hf"] = None  # installed in this venv: make it unimportable, as on a user's machine
sys.modules["compress_utils"] = None
import torch
from transformers import AutoModelForCausalLM
folder, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(input_ids=ids).logits
wpe = model.transformer.wpe
print(json.dumps({"module": type(model).__module__, "wpe_packed": bool(getattr(wpe, "is_packed", False)),
                  "logits": logits.tolist()}))
"""


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_config_defaults_to_float_positions_and_validates():
    assert XTCGPT2Config(n_layer=2).position_bits == 32
    config = XTCGPT2Config(n_layer=2, weight_bits=32, activation_bits=32, quantize_embeddings=False)
    assert not config.is_quantized
    assert XTCGPT2Config(n_layer=2, weight_bits=32, activation_bits=32, position_embedding_bits=8).is_quantized
    with pytest.raises(ValueError, match=r"`position_embedding_bits` must be None \(float position embeddings\)"):
        XTCGPT2Config(n_layer=2, position_embedding_bits=3)
    with pytest.raises(ValueError, match="`quantization_config.position_embedding_bits` must be absent"):
        XTCQuantizationConfig(position_embedding_bits=5)
    with pytest.raises(ValueError, match=r"`position_embedding_bits` must be None \(float\)"):
        XTCRecipeConfig(position_embedding_bits=True)


def test_packed_positions_are_smaller_and_match_the_training_model(tiny_gpt2, input_ids, tmp_path):
    def saved_bytes(model, name):
        model.save_pretrained(tmp_path / name)
        return (tmp_path / name / "model.safetensors").stat().st_size

    float_positions = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1, embedding_bits=8).eval()
    fake = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1, embedding_bits=8, position_embedding_bits=8).eval()
    expected = _logits(fake, input_ids)
    fake.pack_()
    wpe = fake.transformer.wpe
    assert wpe.is_packed and wpe.weight_packed.shape == (64, 32) and wpe.weight_scale.shape == (64,)
    difference = (_logits(fake, input_ids) - expected).abs()
    assert float(difference.max()) <= 2e-3 * float(expected.max() - expected.min())
    # 64 positions x 32 float32 values become 64 x 32 bytes plus 64 scales
    saved = saved_bytes(float_positions.pack_(), "float") - saved_bytes(fake, "int8")
    assert saved >= 64 * 32 * 3 - 64 * 4 - 1024, saved  # minus the header's few extra entries


def test_8bit_positions_stay_close_to_float_ones(tiny_gpt2, input_ids):
    reference = _logits(tiny_gpt2, input_ids)

    def error(bits):
        model = XTCGPT2LMHeadModel.from_gpt2(
            tiny_gpt2, weight_bits=32, activation_bits=32, quantize_embeddings=False, position_embedding_bits=bits
        )
        return float((_logits(model.eval().pack_(), input_ids) - reference).abs().mean())

    assert error(8) < error(4) < error(1)
    assert error(8) < 1e-2 * float(reference.abs().mean())


def test_positions_beyond_the_table_name_the_limit(tiny_gpt2):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1, position_embedding_bits=8).eval().pack_()
    with pytest.raises(IndexError, match=r"`position_ids` must lie in \[0, 63\].*at most 64 positions"):
        model(input_ids=torch.ones(1, 4, dtype=torch.long), position_ids=torch.tensor([[0, 1, 2, 64]]))


def test_position_bits_checkpoint_loads_through_remote_code(tiny_gpt2, input_ids, tmp_path):
    model = XTCGPT2LMHeadModel.from_gpt2(
        tiny_gpt2, teacher_layers=[1, 3], weight_bits=1, embedding_bits=4, position_embedding_bits=8
    )
    model = model.eval().pack_()
    expected = _logits(model, input_ids)
    model.save_pretrained(tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "model.safetensors")
    assert tensors["transformer.wpe.weight_packed"].dtype == torch.uint8 and "transformer.wpe.weight" not in tensors
    described = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    quantization = described["quantization_config"]
    assert described["position_embedding_bits"] == 8 and quantization["position_embedding_bits"] == 8
    assert (
        "transformer.wpe" in quantization["modules"]
        and "transformer.wpe" not in quantization["modules_to_not_convert"]
    )
    loaded, _ = run_fresh_python(
        FRESH, tmp_path / "ckpt", json.dumps(input_ids.tolist()), cwd=tmp_path, modules_dir=tmp_path / "modules"
    )
    assert loaded["module"].startswith("transformers_modules") and loaded["wpe_packed"]
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, rtol=0, atol=1e-6)


def test_recipe_trains_and_packs_8bit_positions(tiny_gpt2, tmp_path):
    from datasets import Dataset

    from xtc_hf import xtc_compress

    torch.manual_seed(2)
    data = Dataset.from_dict({"input_ids": torch.randint(1, 99, (8, 16)).tolist()})
    recipe = XTCRecipeConfig(student_layers="all", embedding_bits=8, position_embedding_bits=8, quantization_steps=2,
                             batch_size=4, bf16=False, save_steps=2, logging_steps=1)  # fmt: skip
    model = xtc_compress(tiny_gpt2, recipe, data, output_dir=str(tmp_path))
    assert model.config.packed and model.config.position_embedding_bits == 8
    assert model.transformer.wpe.is_packed and model.transformer.wpe.weight_bits == 8
    # positions alone are a quantisation stage too
    assert XTCRecipeConfig(weight_bits=32, activation_bits=32, quantize_embeddings=False,
                           position_embedding_bits=8).quantizes  # fmt: skip
