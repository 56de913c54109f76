"""Low-bit word embeddings and LM head (``embedding_bits``) and position embeddings (``position_embedding_bits``):
per-row codes with float scales, saved packed, loaded through remote code with the logits of the in-memory model."""

import ast
import json

import pytest
import torch
from fresh_process import run_fresh_python
from safetensors.torch import load_file

from xtc_hf import XTCGPT2Config, XTCGPT2LMHeadModel, XTCRecipeConfig
from xtc_hf.quantizer_xtc import XTCQuantizationConfig

FRESH = """
import json, sys
import torch
from transformers import AutoModelForCausalLM
folder, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(input_ids=ids).logits
wpe = model.transformer.wpe
print(json.dumps({"module": type(model).__module__, "embedding_bits": model.transformer.wte.weight_bits,
                  "wpe_packed": bool(getattr(wpe, "is_packed", False)), "logits": logits.tolist()}))
"""


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"weight_bits": 1}, 1),  # before embedding_bits existed: the blocks' bits
        ({"weight_bits": 1, "quantize_embeddings": False}, 32),
        ({"weight_bits": 1, "embedding_bits": 8}, 8),
        ({"weight_bits": 32, "activation_bits": 32, "embedding_bits": 8}, 8),
        ({"weight_bits": 2, "embedding_bits": 32}, 32),
    ],
)
def test_word_embedding_bits(settings, expected):
    config = XTCGPT2Config(n_layer=2, **settings)
    assert config.word_embedding_bits == expected
    assert config.is_quantized == (settings["weight_bits"] < 32 or expected < 32)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (
            {"embedding_bits": 3},
            r"`embedding_bits` must be None \(follow `weight_bits`\) or one of \(1, 2, 4, 8, 32\)",
        ),
        ({"embedding_bits": 8, "quantize_embeddings": False}, "`quantize_embeddings` is False; drop one"),
    ],
)
def test_config_rejects_bad_embedding_bits(settings, match):
    with pytest.raises(ValueError, match=match):
        XTCGPT2Config(n_layer=2, **settings)


@pytest.mark.parametrize(("weight_bits", "activation_bits"), [(1, 8), (32, 32), (2, 32)])
def test_packed_8bit_embeddings_match_the_training_model(tiny_gpt2, input_ids, weight_bits, activation_bits):
    fake = XTCGPT2LMHeadModel.from_gpt2(
        tiny_gpt2, weight_bits=weight_bits, activation_bits=activation_bits, embedding_bits=8
    ).eval()
    expected = _logits(fake, input_ids)
    packed = fake.pack_()
    wte = packed.transformer.wte
    assert wte.is_packed and wte.weight_bits == 8
    assert wte.weight_packed.shape == (99, 32) and wte.weight_scale.shape == (99,)  # one byte per weight, row scales
    # the tolerance of test_xtc_modeling's packed-vs-training check: the same integer codes, but a different
    # summation order can flip an int8 activation code at a rounding boundary (a few logits move by < 0.2% of spread)
    difference = (_logits(packed, input_ids) - expected).abs()
    spread = float(expected.max() - expected.min())
    assert float(difference.median()) <= 1e-6, float(difference.median())
    assert float(difference.max()) <= 2e-3 * spread, (float(difference.max()), spread)


def test_8bit_embeddings_stay_closer_to_the_teacher_than_1bit(tiny_gpt2, input_ids):
    reference = _logits(tiny_gpt2, input_ids)

    def error(bits):
        model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32, embedding_bits=bits)
        return float((_logits(model.eval().pack_(), input_ids) - reference).abs().mean())

    assert error(8) < error(4) < error(2) and error(8) < error(1) / 10


def test_packed_4bit_embeddings_take_half_a_byte_and_match_the_training_model(tiny_gpt2, input_ids):
    fake = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1, activation_bits=8, embedding_bits=4).eval()
    expected = _logits(fake, input_ids)
    wte = fake.pack_().transformer.wte
    assert wte.weight_packed.shape == (99, 16) and wte.weight_scale.shape == (99,)
    difference = (_logits(fake, input_ids) - expected).abs()
    assert float(difference.max()) <= 2e-3 * float(expected.max() - expected.min())


def test_embedding_only_quantization_is_described_and_reloads(tiny_gpt2, input_ids, tmp_path):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32, embedding_bits=8)
    model.eval().pack_().save_pretrained(tmp_path / "ckpt")
    described = json.loads((tmp_path / "ckpt" / "config.json").read_text())["quantization_config"]
    assert described["embedding_bits"] == 8 and described["modules"] == ["transformer.wte"]
    assert described["modules_to_not_convert"] == ["transformer.wpe", "transformer.h"]
    loaded = XTCGPT2LMHeadModel.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config.quantization_config.embedding_bits == 8
    assert not loaded.transformer.h[0].attn.c_attn.is_packed  # the blocks stay float
    torch.testing.assert_close(_logits(loaded, input_ids), _logits(model, input_ids), rtol=0, atol=0)


@pytest.mark.parametrize("bits", [4, 8])
def test_low_bit_embedding_checkpoint_loads_through_remote_code(tiny_gpt2, input_ids, tmp_path, bits):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[1, 3], weight_bits=1, embedding_bits=bits)
    model = model.eval().pack_()
    expected = _logits(model, input_ids)
    model.save_pretrained(tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "model.safetensors")
    assert tensors["transformer.wte.weight_packed"].shape == (99, 32 * bits // 8)  # packed codes, not fp32 weights
    assert "transformer.wte.weight" not in tensors and "lm_head.weight" not in tensors  # the head is the tied wte
    described = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert described["embedding_bits"] == bits and described["quantization_config"]["embedding_bits"] == bits
    for code in (tmp_path / "ckpt").glob("*.py"):  # the remote code imports torch, transformers and its own folder
        assert not _imports(code) & {"xtc_hf", "compress_utils", "benchmarks"}, code.name
    loaded, _ = run_fresh_python(
        FRESH, tmp_path / "ckpt", json.dumps(input_ids.tolist()), cwd=tmp_path, modules_dir=tmp_path / "modules"
    )
    assert loaded["module"].startswith("transformers_modules") and loaded["embedding_bits"] == bits
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, rtol=0, atol=1e-6)


def test_recipe_trains_and_packs_8bit_embeddings(tiny_gpt2, tmp_path):
    from datasets import Dataset

    from xtc_hf import xtc_compress

    torch.manual_seed(2)
    data = Dataset.from_dict({"input_ids": torch.randint(1, 99, (8, 16)).tolist()})
    recipe = XTCRecipeConfig(student_layers="all", embedding_bits=8, quantization_steps=2, batch_size=4, bf16=False,
                             save_steps=2, logging_steps=1)  # fmt: skip
    assert recipe.word_embedding_bits == 8 and XTCRecipeConfig().word_embedding_bits == 1
    model = xtc_compress(tiny_gpt2, recipe, data, output_dir=str(tmp_path))
    assert model.config.packed and model.config.embedding_bits == 8
    assert model.transformer.wte.weight_bits == 8 and model.transformer.h[0].mlp.c_fc.weight_bits == 1
    # embeddings alone are a quantisation stage too (a float 6L student with an int8 vocabulary)
    float_blocks = XTCRecipeConfig(weight_bits=32, activation_bits=32, embedding_bits=8)
    assert float_blocks.quantizes and not XTCRecipeConfig(weight_bits=32, activation_bits=32).quantizes
    with pytest.raises(ValueError, match="`quantize_embeddings` is False; drop one"):
        XTCRecipeConfig(embedding_bits=8, quantize_embeddings=False)
    with pytest.raises(ValueError, match=r"`embedding_bits` must be None \(follow `weight_bits`\)"):
        XTCRecipeConfig(embedding_bits=3)


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
