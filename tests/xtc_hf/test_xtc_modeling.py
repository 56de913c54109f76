import json
import os
import textwrap

import pytest
import torch
from fresh_process import run_fresh_python
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from xtc_hf import XTCGPT2Config, XTCGPT2LMHeadModel


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_full_precision_conversion_is_exact(tiny_gpt2, input_ids):
    student = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32).eval()
    torch.testing.assert_close(_logits(student, input_ids), _logits(tiny_gpt2, input_ids), rtol=1e-5, atol=1e-5)
    assert student.config.teacher_layers == [0, 1, 2, 3]


def test_layer_reduction_copies_the_chosen_layers(tiny_gpt2):
    student = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[1, 3], weight_bits=32, activation_bits=32)
    assert student.config.n_layer == 2 and student.config.teacher_layers == [1, 3]
    # Conv1D (in, out) becomes nn.Linear (out, in)
    torch.testing.assert_close(
        student.transformer.h[1].attn.c_attn.weight, tiny_gpt2.transformer.h[3].attn.c_attn.weight.t()
    )
    assert [block.attn.layer_idx for block in student.transformer.h] == [0, 1]  # renumbered for the KV cache


@pytest.mark.parametrize("bits", [1, 2, 8])
@pytest.mark.parametrize("granularity", ["matrix", "row"])
@pytest.mark.parametrize("quantize_embeddings", [True, False])
def test_packed_model_matches_fake_quant_model(tiny_gpt2, input_ids, bits, granularity, quantize_embeddings):
    model = XTCGPT2LMHeadModel.from_gpt2(
        tiny_gpt2,
        teacher_layers=[0, 2],
        weight_bits=bits,
        activation_bits=8,
        weight_granularity=granularity,
        quantize_embeddings=quantize_embeddings,
    ).eval()
    fake = _logits(model, input_ids)
    packed = _logits(model.pack_(), input_ids)
    # Stated tolerance: the int8 path and the straight-through forward use the same integer codes, so almost every
    # logit agrees to float32 rounding; the summation order differs and can flip one activation code at a rounding
    # boundary, which moved ~9% of the logits of one configuration by up to 6.4e-4 (0.08% of the logit spread).
    # A 1% error anywhere breaks the median bound; a 0.2%-of-spread error on any logit breaks the max bound.
    difference = (packed - fake).abs()
    spread = float(fake.max() - fake.min())
    assert float(difference.median()) <= 1e-6, float(difference.median())
    assert float(difference.max()) <= 2e-3 * spread, (float(difference.max()), spread)


def test_packed_save_is_small_and_reloads_exactly(tiny_gpt2, input_ids, tmp_path):
    dense = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32)
    dense.save_pretrained(tmp_path / "dense")
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1, activation_bits=8).eval().pack_()
    expected = _logits(model, input_ids)
    model.save_pretrained(tmp_path / "packed")
    tensors = load_file(tmp_path / "packed" / "model.safetensors")
    assert tensors["transformer.h.0.attn.c_attn.weight_packed"].shape == (96, 4)  # 32 inputs -> 4 bytes per row
    assert not any(name.endswith(".weight") and "ln" not in name and "wpe" not in name for name in tensors)
    dense_size = os.path.getsize(tmp_path / "dense" / "model.safetensors")
    packed_size = os.path.getsize(tmp_path / "packed" / "model.safetensors")
    assert packed_size < dense_size / 3  # tiny model: position embeddings, biases and LayerNorms dominate
    loaded = XTCGPT2LMHeadModel.from_pretrained(tmp_path / "packed").eval()
    assert loaded.config.packed and loaded.transformer.h[0].attn.c_attn.is_packed
    torch.testing.assert_close(_logits(loaded, input_ids), expected, rtol=0, atol=0)
    auto = AutoModelForCausalLM.from_pretrained(tmp_path / "packed")
    assert isinstance(auto, XTCGPT2LMHeadModel)


def test_generate_with_cache_matches_full_recompute(tiny_gpt2, input_ids):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[1, 3], weight_bits=1).eval().pack_()
    prompt = input_ids[:1, :6]
    out = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    ids = prompt
    for _ in range(6):
        ids = torch.cat([ids, _logits(model, ids)[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, ids)


def test_bf16_packed_model_runs_close_to_fp32(tiny_gpt2, input_ids):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1).eval().pack_()
    fp32 = _logits(model, input_ids)
    bf16 = _logits(model.to(torch.bfloat16), input_ids)
    assert bf16.dtype == torch.bfloat16
    assert model.transformer.h[0].attn.c_attn.weight_packed.dtype == torch.uint8  # integer buffers keep their dtype
    torch.testing.assert_close(bf16.float(), fp32, rtol=0.05, atol=0.05)


def test_training_mode_backpropagates_through_quantisers(tiny_gpt2, input_ids):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1, activation_bits=8).train()
    model(input_ids=input_ids, labels=input_ids).loss.backward()
    grad = model.transformer.h[0].attn.c_attn.weight.grad
    assert grad is not None and grad.abs().sum() > 0


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import torch
    try:  # the runner blocks the repository's packages, as on a user's machine
        import xtc_hf  # noqa: F401
        importable = True
    except ImportError:
        importable = False
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    ids = torch.tensor(json.loads(sys.argv[2]))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    print(json.dumps({"importable": importable, "module": type(model).__module__,
                      "logits": logits.tolist()}))
    """
)


def test_fresh_process_loads_with_trust_remote_code_only(tiny_gpt2, input_ids, tmp_path):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[0, 3], weight_bits=2).eval().pack_()
    expected = _logits(model, input_ids)
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "modeling_xtc.py").exists() and (tmp_path / "ckpt" / "configuration_xtc.py").exists()
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_xtc.XTCGPT2LMHeadModel"
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    report, _ = run_fresh_python(
        FRESH_PROCESS, tmp_path / "ckpt", json.dumps(input_ids.tolist()), cwd=workdir, modules_dir=tmp_path / "modules"
    )
    assert not report["importable"]
    assert "xtc_hf" not in report["module"] and report["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(report["logits"]), expected, rtol=0, atol=1e-6)


# -- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight_bits": 3}, "weight_bits"),
        ({"activation_bits": 16}, "activation_bits"),
        ({"weight_granularity": "column"}, "weight_granularity"),
        ({"teacher_layers": [0]}, "teacher_layers"),
        ({"teacher_layers": [0, 0]}, "teacher_layers"),
        ({"teacher_layers": [-1, 2]}, "teacher_layers"),
    ],
)
def test_config_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XTCGPT2Config(n_layer=2, **kwargs)


@pytest.mark.parametrize(("layers", "match"), [([], "empty"), ([0, 4], "not a layer"), ([1, 1], "repeat")])
def test_from_gpt2_rejects_bad_layers(tiny_gpt2, layers, match):
    with pytest.raises(ValueError, match=match):
        XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=layers)


def test_from_gpt2_rejects_bad_bits(tiny_gpt2):
    with pytest.raises(ValueError, match="weight_bits"):
        XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=3)


def test_from_gpt2_rejects_non_gpt2_teacher():
    llama = LlamaForCausalLM(
        LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=99)
    )
    with pytest.raises(ValueError, match="GPT-2"):
        XTCGPT2LMHeadModel.from_gpt2(llama)
    with pytest.raises(ValueError, match="GPT-2"):
        XTCGPT2LMHeadModel.from_gpt2(torch.nn.Linear(2, 2))


@pytest.fixture
def packed_checkpoint(tiny_gpt2, tmp_path):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, teacher_layers=[1, 2], weight_bits=1).pack_()
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_corrupted_packed_weights_are_detected(packed_checkpoint):
    path = packed_checkpoint / "model.safetensors"
    tensors = load_file(path)
    tensors["transformer.h.0.mlp.c_fc.weight_packed"][0, 0] ^= 0xFF
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="checksum"):
        XTCGPT2LMHeadModel.from_pretrained(packed_checkpoint)


def test_truncated_checkpoint_is_detected(packed_checkpoint):
    path = packed_checkpoint / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 500])
    with pytest.raises(ValueError, match=r"Could not read the checkpoint|incomplete|checksum"):
        XTCGPT2LMHeadModel.from_pretrained(packed_checkpoint)


def test_checkpoint_with_missing_tensor_is_detected(packed_checkpoint):
    path = packed_checkpoint / "model.safetensors"
    tensors = load_file(path)
    del tensors["transformer.h.1.attn.c_proj.weight_packed"]
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="incomplete"):
        XTCGPT2LMHeadModel.from_pretrained(packed_checkpoint)


def test_stock_gpt2_checkpoint_is_refused_by_from_pretrained(tiny_gpt2, tmp_path):
    tiny_gpt2.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="from_gpt2"):
        XTCGPT2LMHeadModel.from_pretrained(tmp_path)
