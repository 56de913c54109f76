import pytest
import torch

from xtc_hf import (
    XTCLinear,
    fake_quantize_tokens,
    fake_quantize_weight,
    int8_linear,
    int8_matmul,
    modeling_xtc,
    pack_codes,
    quantize_tokens,
    quantize_weight,
    unpack_codes,
)


def test_binary_is_sign_times_mean_abs():
    w = torch.tensor([[0.5, -1.5, 0.0], [2.0, -1.0, 1.0]])
    codes, scale = quantize_weight(w, bits=1)
    assert codes.tolist() == [[1, -1, 1], [1, -1, 1]]  # sign(0) -> +1: a binary weight is never 0
    assert float(scale) == pytest.approx(w.abs().mean().item())
    codes, scale = quantize_weight(w, bits=1, per_row=True)
    assert scale.flatten().tolist() == pytest.approx([2.0 / 3, 4.0 / 3])


def test_ternary_threshold_is_07_mean_abs():
    w = torch.tensor([[0.1, -0.2, 1.0, -2.0]])  # mean|W| = 0.825, threshold 0.5775
    codes, scale = quantize_weight(w, bits=2)
    assert codes.tolist() == [[0, 0, 1, -1]]
    assert float(scale) == pytest.approx(1.5)  # mean magnitude of the kept weights


def test_int8_weight_round_trip_error():
    w = torch.randn(8, 16)
    codes, scale = quantize_weight(w, bits=8, per_row=True)
    assert codes.abs().max() <= 127
    assert torch.allclose(codes * scale, w, atol=float(scale.max()) / 2 + 1e-7)


def test_int4_weight_codes_and_round_trip_error():
    w = torch.randn(8, 16)
    codes, scale = quantize_weight(w, bits=4, per_row=True)
    assert codes.abs().amax(1).tolist() == [7.0] * 8  # each row's largest weight is +-7 times its scale
    assert torch.allclose(codes * scale, w, atol=float(scale.max()) / 2 + 1e-7)


def test_quantize_weight_rejects_bits():
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(torch.randn(2, 2), bits=3)


def test_int4_codes_pack_as_twos_complement_nibbles():
    assert pack_codes(torch.tensor([[-7.0, 7.0, -1.0]]), 4).tolist() == [[0x79, 0x0F]]  # low nibble first


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("cols", [8, 13, 32])
def test_pack_unpack_round_trip(bits, cols):
    torch.manual_seed(0)
    codes, _ = quantize_weight(torch.randn(5, cols), bits)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.shape == (5, -(-cols * bits // 8))
    assert torch.equal(unpack_codes(packed, bits, cols).float(), codes)


def test_invalid_ternary_code_is_detected():
    with pytest.raises(ValueError, match="corrupted"):
        unpack_codes(torch.full((1, 1), 0xFF, dtype=torch.uint8), 2, 4)


def test_straight_through_gradients_are_identity():
    w = torch.randn(4, 6, requires_grad=True)
    (fake_quantize_weight(w, 1) * torch.arange(24.0).view(4, 6)).sum().backward()
    assert torch.equal(w.grad, torch.arange(24.0).view(4, 6))
    x = torch.randn(3, 6, requires_grad=True)
    fake_quantize_tokens(x).sum().backward()
    assert torch.equal(x.grad, torch.ones(3, 6))


def test_per_token_activation_quantisation():
    x = torch.tensor([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]])
    codes, scale = quantize_tokens(x)
    assert codes[0].tolist() == [127, -64, 32]
    assert codes[1].tolist() == [0, 0, 0]  # an all-zero token stays zero (no division by zero)
    assert torch.allclose(codes * scale, x, atol=1 / 254)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tokens_get_the_codes_of_their_float32_values(dtype):
    # the half-precision path upcasts first (faster on CPU): the same codes and scales, the caller's tensor untouched
    torch.manual_seed(0)
    x = torch.randn(5, 64).to(dtype)
    before = x.clone()
    codes, scale = quantize_tokens(x)
    expected_codes, expected_scale = quantize_tokens(x.float())
    assert codes.dtype == scale.dtype == torch.float32
    assert torch.equal(codes, expected_codes) and torch.equal(scale, expected_scale)
    assert torch.equal(x, before)
    quantize_tokens(x, overwrite=True)
    assert torch.equal(x, before)  # overwrite writes into a float32 tensor only


def test_int8_matmul_matches_float_and_fallback(monkeypatch):
    torch.manual_seed(0)
    a = torch.randint(-127, 128, (33, 40), dtype=torch.int8)
    b = torch.randint(-1, 2, (40, 24), dtype=torch.int8)
    expected = (a.float() @ b.float()).to(torch.int32)
    assert torch.equal(int8_matmul(a, b), expected)
    monkeypatch.setitem(modeling_xtc._INT_MM_OK, "cpu", False)  # the portable path used where _int_mm is missing
    assert torch.equal(int8_matmul(a, b), expected)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("per_row", [False, True])
def test_packed_linear_matches_fake_quant(bits, per_row, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(modeling_xtc, "CHUNK", 16)  # exercise the tiled path on small shapes
    monkeypatch.setattr(modeling_xtc, "ROWS", 8)
    layer = XTCLinear(24, 40, weight_bits=bits, activation_bits=8, per_row=per_row)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(3, 7, 24)
    with torch.no_grad():
        fake = layer(x)
        layer.pack_()
        assert layer.weight is None and layer.weight_packed.dtype == torch.uint8
        packed = layer(x)
    # same integer products, only the order of float32 rescaling differs
    torch.testing.assert_close(packed, fake, rtol=1e-5, atol=1e-5)


def test_int8_linear_output_dtype_follows_input():
    codes = torch.ones(8, 4, dtype=torch.int8)
    y = int8_linear(torch.randn(2, 8, dtype=torch.bfloat16), [codes], torch.ones(1))
    assert y.dtype == torch.bfloat16 and y.shape == (2, 4)


def test_fused_gelu_equals_gpt2_gelu_new():
    from transformers.activations import ACT2FN

    from xtc_hf.modeling_xtc import TanhGELU

    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(TanhGELU()(x), ACT2FN["gelu_new"](x), rtol=1e-6, atol=1e-6)
