"""The inference kernels of packed XTC layers (int8 ``_int_mm``, oneDNN's u8 x s8 product and the fp32 product of
the same codes) agree bit for bit, and ``xtc_kernel="auto"`` follows the measured kernel order."""

import json
import textwrap

import pytest
import torch
from fresh_process import run_fresh_python
from transformers import GPT2Config, GPT2LMHeadModel

from xtc_hf import modeling_xtc
from xtc_hf.configuration_xtc import XTCGPT2Config
from xtc_hf.modeling_xtc import (
    ONEDNN_MAX_WEIGHT_CODE,
    XTCGPT2LMHeadModel,
    exact_float_depth,
    float_codes_matmul,
    int8_matmul,
    layer_kernel,
    onednn_available,
    onednn_codes_matmul,
    onednn_prepack,
)

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN quantised linear")


@torch.no_grad()
def _logits(model, input_ids):
    return model(input_ids=input_ids).logits


def _packed(teacher, **settings):
    return XTCGPT2LMHeadModel.from_gpt2(teacher, teacher_layers=[1, 3], **settings).eval().pack_()


@pytest.mark.parametrize(
    ("bits", "granularity", "quantize_embeddings"),
    [(1, "matrix", True), (1, "row", False), (2, "matrix", True), (8, "row", True)],
)
def test_float_kernel_gives_identical_logits(tiny_gpt2, input_ids, bits, granularity, quantize_embeddings):
    model = _packed(
        tiny_gpt2, weight_bits=bits, weight_granularity=granularity, quantize_embeddings=quantize_embeddings
    )
    int8 = _logits(model.set_xtc_kernel("int8"), input_ids)
    as_float = _logits(model.set_xtc_kernel("float"), input_ids)
    torch.testing.assert_close(as_float, int8, rtol=0, atol=0)
    # oneDNN where it applies (1- and 2-bit layers; 8-bit ones fall back): the same bits
    torch.testing.assert_close(_logits(model.set_xtc_kernel("onednn"), input_ids), int8, rtol=0, atol=0)
    # and all are the fake-quantised model's numbers up to float rounding of the rescaling
    fake = XTCGPT2LMHeadModel.from_gpt2(
        tiny_gpt2, teacher_layers=[1, 3], weight_bits=bits, weight_granularity=granularity,
        quantize_embeddings=quantize_embeddings,
    ).eval()  # fmt: skip
    torch.testing.assert_close(as_float, _logits(fake, input_ids), rtol=1e-4, atol=1e-4)


def test_deep_8bit_layers_are_split_and_stay_identical(input_ids):
    # 4 * 288 = 1152 MLP inputs > exact_float_depth(127) = 1040: the float product is split along K
    torch.manual_seed(0)
    teacher = GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=288, n_head=2, vocab_size=99, n_positions=64)).eval()
    assert 4 * 288 > exact_float_depth(127)
    model = _packed(teacher, weight_bits=8)
    int8 = _logits(model.set_xtc_kernel("int8"), input_ids)
    torch.testing.assert_close(_logits(model.set_xtc_kernel("float"), input_ids), int8, rtol=0, atol=0)


def test_float_codes_matmul_is_exact_beyond_float32_integers():
    torch.manual_seed(0)
    a = torch.randint(-127, 128, (16, 3000), dtype=torch.int8)
    b = torch.full((3000, 8), 127, dtype=torch.int8)
    a[:, :] = 127  # sums of 3000 * 127 * 127 = 48.4M > 2**24: a plain fp32 product would round
    exact = a.long() @ b.long()
    assert bool((exact > 2**24).all())
    assert torch.equal(float_codes_matmul(a.float(), b.float(), 127).long(), exact)
    assert torch.equal(int8_matmul(a, b).long(), exact)


def test_int8_fallback_without_int_mm_is_exact(monkeypatch):
    monkeypatch.setitem(modeling_xtc._INT_MM_OK, "cpu", False)
    a = torch.full((17, 2048), 127, dtype=torch.int8)
    b = torch.full((2048, 8), -127, dtype=torch.int8)
    assert torch.equal(int8_matmul(a, b).long(), a.long() @ b.long())


@pytest.mark.parametrize(
    ("order", "expected", "bytes_per_weight"),
    [(("int8", "float"), "int8", 1), (("float", "int8"), "float", 4), (("onednn", "float", "int8"), "onednn", 1)],
)
def test_auto_follows_the_kernel_order(tiny_gpt2, input_ids, monkeypatch, order, expected, bytes_per_weight):
    if expected == "onednn" and not onednn_available():
        pytest.skip("this PyTorch build has no oneDNN quantised linear")
    monkeypatch.setitem(modeling_xtc._KERNEL_ORDER, "cpu", order)
    model = _packed(tiny_gpt2, weight_bits=1)
    assert model.config.xtc_kernel == "auto"
    _logits(model, input_ids)
    info = model.xtc_kernel_info()
    assert info["resolved"] == expected
    cache_kinds = {kind for layer in model.modules() for kind in (getattr(layer, "_codes_cache", None) or {})}
    assert cache_kinds == {{"int8": "blocks", "float": "float-codes"}.get(expected, expected)}
    # unpacked copies per weight: 1 byte for int8 and oneDNN, 4 for float (the packed 1-bit weights are 8 per byte)
    assert info["unpacked_cache_bytes"] == info["packed_bytes"] * 8 * bytes_per_weight


@pytest.mark.parametrize(
    ("setting", "max_code", "rows", "expected"),
    [
        ("onednn", 1, 512, "onednn"),
        ("onednn", ONEDNN_MAX_WEIGHT_CODE + 1, 512, "float"),  # 8-bit codes could saturate int16 pairs
        ("onednn", 1, 4, "float"),  # a decoding step: the call overhead outweighs the product
        ("auto", 127, 512, "int8"),  # auto falls back to the next fastest kernel
        ("auto", 1, 512, "onednn"),
        ("int8", 1, 4, "int8"),
    ],
)
def test_layer_kernel_falls_back_where_onednn_does_not_apply(monkeypatch, setting, max_code, rows, expected):
    if not onednn_available():
        pytest.skip("this PyTorch build has no oneDNN quantised linear")
    monkeypatch.setitem(modeling_xtc._KERNEL_ORDER, "cpu", ("onednn", "int8", "float"))
    assert layer_kernel(setting, "cpu", max_code, rows) == expected


@needs_onednn
def test_onednn_product_is_exact_at_the_saturation_bound():
    # the worst case of vpmaddubsw: uint8 255 (code 127) times the largest weight code, summed in pairs
    torch.manual_seed(0)
    codes = torch.randint(-127, 128, (64, 512))
    codes[:32] = 127
    weight = torch.randint(-ONEDNN_MAX_WEIGHT_CODE, ONEDNN_MAX_WEIGHT_CODE + 1, (48, 512))
    weight[:24] = ONEDNN_MAX_WEIGHT_CODE
    product = onednn_codes_matmul((codes + 128).to(torch.uint8), onednn_prepack(weight))
    assert torch.equal(product.long(), codes @ weight.t())


def test_switching_kernel_drops_the_other_copy(tiny_gpt2, input_ids):
    model = _packed(tiny_gpt2, weight_bits=1).set_xtc_kernel("float")
    _logits(model, input_ids)
    float_bytes = model.xtc_kernel_info()["unpacked_cache_bytes"]
    model.set_xtc_kernel("int8")
    assert model.xtc_kernel_info()["unpacked_cache_bytes"] == 0
    _logits(model, input_ids)
    assert model.xtc_kernel_info()["unpacked_cache_bytes"] * 4 == float_bytes


def test_bad_kernel_is_refused(tiny_gpt2):
    model = _packed(tiny_gpt2, weight_bits=1)
    with pytest.raises(
        ValueError, match=r"`xtc_kernel` must be one of \('auto', 'int8', 'onednn', 'float'\), got 'fast'"
    ):
        model.set_xtc_kernel("fast")
    with pytest.raises(ValueError, match="`xtc_kernel` must be one of"):
        XTCGPT2Config(n_layer=2, xtc_kernel="int4")


def test_config_without_kernel_field_loads_as_auto(tiny_gpt2, input_ids, tmp_path):
    model = _packed(tiny_gpt2, weight_bits=1)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["xtc_kernel"]  # a checkpoint saved before the field existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = XTCGPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert loaded.config.xtc_kernel == "auto"
    torch.testing.assert_close(_logits(loaded, input_ids), _logits(model, input_ids), rtol=0, atol=0)


REMOTE = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    ids = torch.tensor(json.loads(sys.argv[2]))
    with torch.no_grad():
        saved = model(input_ids=ids).logits
        info = model.xtc_kernel_info()
        other = model.set_xtc_kernel("int8")(input_ids=ids).logits
    print(json.dumps({"info": info, "module": type(model).__module__, "logits": saved.tolist(),
                      "identical": bool(torch.equal(saved, other))}))
    """
)


@pytest.mark.slow  # a fresh interpreter importing transformers: ~15 s on a loaded 2-core machine
def test_remote_code_load_keeps_the_float_kernel(tiny_gpt2, input_ids, tmp_path):
    model = _packed(tiny_gpt2, weight_bits=1).set_xtc_kernel("float")
    expected = _logits(model, input_ids)
    model.save_pretrained(tmp_path / "ckpt")
    report, _ = run_fresh_python(
        REMOTE, tmp_path / "ckpt", json.dumps(input_ids.tolist()), cwd=tmp_path, modules_dir=tmp_path / "modules"
    )
    assert report["module"].startswith("transformers_modules")
    assert report["info"]["setting"] == "float" and report["info"]["resolved"] == "float"
    assert report["identical"]
    torch.testing.assert_close(torch.tensor(report["logits"]), expected, rtol=0, atol=0)


def test_row_scaled_rescaling_in_blocks_is_identical_to_int8():
    # more output elements than one TILE: the float kernel rescales block by block, as int8_linear does per tile
    torch.manual_seed(0)
    x = torch.randn(300, 64)
    codes = torch.randint(-1, 2, (1100, 64), dtype=torch.int8)
    scale, bias = torch.rand(1100) + 0.5, torch.randn(1100)
    assert x.shape[0] * codes.shape[0] > modeling_xtc.TILE
    blocks = [codes.t()[:, i : i + modeling_xtc.CHUNK].contiguous() for i in range(0, 1100, modeling_xtc.CHUNK)]
    expected = modeling_xtc.int8_linear(x, blocks, scale, bias)
    got = modeling_xtc.float_codes_linear(x, codes.t().float().contiguous(), scale, bias, max_weight_code=1)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_in_place_mlp_matches_and_leaves_hooked_outputs_alone(tiny_gpt2, input_ids):
    # without autograd the MLP runs GELU and the next quantisation in place; with a hook holding c_fc's output it
    # must not, and with autograd on it must not either: all three give the same logits
    model = _packed(tiny_gpt2, weight_bits=1).set_xtc_kernel("float")
    in_place = _logits(model, input_ids)
    seen = []
    mlp = model.transformer.h[0].mlp
    handle = mlp.c_fc.register_forward_hook(lambda module, args, output: seen.append((output, output.clone())))
    try:
        hooked = _logits(model, input_ids)
    finally:
        handle.remove()
    torch.testing.assert_close(hooked, in_place, rtol=0, atol=0)
    held, copy = seen[0]
    torch.testing.assert_close(held, copy, rtol=0, atol=0)  # the hook's tensor was not overwritten
    with torch.enable_grad():
        with_grad = model(input_ids=input_ids).logits.detach()
    torch.testing.assert_close(with_grad, in_place, rtol=0, atol=0)


def test_overwrite_input_quantises_in_place_only_when_asked():
    torch.manual_seed(0)
    x = torch.randn(4, 16)
    original = x.clone()
    codes_t = torch.randint(-1, 2, (16, 8)).float()
    scale = torch.tensor([0.5])
    kept = modeling_xtc.float_codes_linear(x, codes_t, scale, max_weight_code=1)
    torch.testing.assert_close(x, original, rtol=0, atol=0)
    overwritten = modeling_xtc.float_codes_linear(x, codes_t, scale, max_weight_code=1, overwrite_input=True)
    torch.testing.assert_close(overwritten, kept, rtol=0, atol=0)
    assert not torch.equal(x, original) and torch.equal(x, x.round())  # x now holds the integer codes


@pytest.mark.parametrize("granularity", ["matrix", "row"])
def test_float_kernel_runs_under_autograd(tiny_gpt2, input_ids, granularity):
    # inputs that require grad (e.g. adapters upstream) and trainable biases: the rescaling runs out of place
    model = _packed(tiny_gpt2, weight_bits=1, weight_granularity=granularity).set_xtc_kernel("float")
    expected = _logits(model, input_ids)
    embeds = model.transformer.wte(input_ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeds).logits
    torch.testing.assert_close(logits.detach(), expected, rtol=0, atol=0)
    logits.float().pow(2).mean().backward()
    assert model.transformer.h[0].mlp.c_fc.bias.grad is not None
