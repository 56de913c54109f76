"""Low-bit word embeddings whose most frequent tokens' rows keep 8 bits (``embedding_int8_rows``): the quantiser,
the packed layout, the remote-code load, the checksums, the recipe's choice of rows and the settings' errors."""

import json

import pytest
import torch
from fresh_process import run_fresh_python
from safetensors.torch import load_file

from benchmarks.xtc_bench import BenchSettings
from xtc_hf import XTCGPT2Config, XTCGPT2LMHeadModel, XTCRecipeConfig
from xtc_hf.modeling_xtc import XTCEmbedding, fake_quantize_weight
from xtc_hf.quantizer_xtc import XTCQuantizationConfig
from xtc_hf.recipe import frequent_tokens

ROWS = torch.tensor([3, 97, 10, 42, 7, 55, 21, 88, 64, 30, 12, 5, 77, 1, 50, 60, 70, 80, 90, 33])

FRESH = """
import json, sys
import torch
from transformers import AutoModelForCausalLM
folder, ids = sys.argv[1], torch.tensor(json.loads(sys.argv[2]))
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(input_ids=ids).logits
wte = model.transformer.wte
print(json.dumps({"module": type(model).__module__, "rows": wte.int8_row_ids.tolist(), "logits": logits.tolist()}))
"""


def _student(tiny_gpt2, **settings):
    model = XTCGPT2LMHeadModel.from_gpt2(
        tiny_gpt2, weight_bits=1, embedding_bits=4, embedding_int8_rows=len(ROWS), **settings
    )
    model.transformer.wte.set_int8_rows(ROWS)
    return model.eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_chosen_rows_are_8bit_and_the_others_4bit():
    torch.manual_seed(0)
    wte = XTCEmbedding(99, 32, weight_bits=4, int8_rows=len(ROWS)).set_int8_rows(ROWS)
    torch.nn.init.normal_(wte.weight)
    quantized = wte.quantized_weight().detach()
    others = torch.tensor([i for i in range(99) if i not in set(ROWS.tolist())])
    torch.testing.assert_close(quantized[ROWS], fake_quantize_weight(wte.weight[ROWS], 8, per_row=True).detach())
    torch.testing.assert_close(quantized[others], fake_quantize_weight(wte.weight[others], 4, per_row=True).detach())
    # both kinds of row learn: straight-through gradients reach every row
    upstream = torch.randn(99, 32)
    (wte.quantized_weight() * upstream).sum().backward()
    torch.testing.assert_close(wte.weight.grad, upstream)


def test_packed_layout_and_logits_match_the_training_model(tiny_gpt2, input_ids):
    model = _student(tiny_gpt2)
    expected = _logits(model, input_ids)
    wte = model.pack_().transformer.wte
    # 79 rows of 4-bit codes (16 bytes each), 20 rows of int8 codes, one scale per row
    assert wte.weight_packed.shape == (79, 16) and wte.weight_packed_int8.shape == (20, 32)
    assert wte.weight_scale.shape == (99,) and wte.max_weight_code == 127
    blocks = sum(layer.packed_bytes() for block in model.transformer.h for layer in (block.attn.c_attn, block.mlp.c_fc,
                                                                                     block.attn.c_proj, block.mlp.c_proj))  # fmt: skip
    assert model.xtc_kernel_info()["packed_bytes"] == blocks + 79 * 16 + 20 * 32
    difference = (_logits(model, input_ids) - expected).abs()  # test_xtc_embedding_bits' tolerance
    assert float(difference.median()) <= 1e-6
    assert float(difference.max()) <= 2e-3 * float(expected.max() - expected.min())


def test_8bit_rows_bring_the_logits_closer_to_the_teacher(tiny_gpt2, input_ids):
    reference = _logits(tiny_gpt2, input_ids)

    def error(**settings):
        model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=32, activation_bits=32, **settings)
        if settings.get("embedding_int8_rows"):
            model.transformer.wte.set_int8_rows(torch.arange(settings["embedding_int8_rows"]))
        return float((_logits(model.eval().pack_(), input_ids) - reference).abs().mean())

    four, eight = error(embedding_bits=4), error(embedding_bits=8)
    half = error(embedding_bits=4, embedding_int8_rows=50)
    assert eight < half < 0.8 * four, (eight, half, four)


def test_checkpoint_loads_through_remote_code_with_its_rows(tiny_gpt2, input_ids, tmp_path):
    model = _student(tiny_gpt2, position_embedding_bits=8).pack_()
    expected = _logits(model, input_ids)
    model.save_pretrained(tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "model.safetensors")
    assert tensors["transformer.wte.weight_packed_int8"].dtype == torch.uint8
    assert tensors["transformer.wte.int8_row_ids"].tolist() == ROWS.tolist()
    described = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert described["embedding_int8_rows"] == 20 and described["quantization_config"]["embedding_int8_rows"] == 20
    loaded, _ = run_fresh_python(
        FRESH, tmp_path / "ckpt", json.dumps(input_ids.tolist()), cwd=tmp_path, modules_dir=tmp_path / "modules"
    )
    assert loaded["module"].startswith("transformers_modules") and loaded["rows"] == ROWS.tolist()
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, rtol=0, atol=1e-6)
    # the in-repo class reads it the same way
    torch.testing.assert_close(_logits(XTCGPT2LMHeadModel.from_pretrained(tmp_path / "ckpt"), input_ids), expected)


def test_a_damaged_int8_row_or_row_id_fails_the_checksum(tiny_gpt2):
    wte = _student(tiny_gpt2).pack_().transformer.wte
    wte.verify("wte")
    wte.weight_packed_int8[0, 0] ^= 1
    with pytest.raises(ValueError, match="does not match its checksum"):
        wte.verify("wte")
    wte.weight_packed_int8[0, 0] ^= 1
    wte.int8_row_ids[0] = 4
    with pytest.raises(ValueError, match="does not match its checksum"):
        wte.verify("wte")


def test_recipe_keeps_the_most_frequent_tokens_at_8_bits(tiny_gpt2, tmp_path):
    from datasets import Dataset

    from xtc_hf import xtc_compress

    torch.manual_seed(2)
    blocks = torch.randint(1, 99, (8, 16))
    blocks[:, ::2] = torch.tensor([5, 9, 11, 5, 9, 5, 40, 40])  # 5 most frequent, then 9 and 40, then 11
    data = Dataset.from_dict({"input_ids": blocks.tolist()})
    recipe = XTCRecipeConfig(student_layers="all", embedding_bits=4, embedding_int8_rows=3, quantization_steps=2,
                             batch_size=4, bf16=False, save_steps=2, logging_steps=1)  # fmt: skip
    model = xtc_compress(tiny_gpt2, recipe, data, output_dir=str(tmp_path))
    wte = model.transformer.wte
    assert model.config.packed and model.config.embedding_int8_rows == 3 and wte.is_packed
    assert sorted(wte.int8_row_ids.tolist()) == sorted(frequent_tokens(data, 3, 99)[0].tolist())
    assert set(wte.int8_row_ids.tolist()) >= {5, 9}  # 32 and 16 of the 128 tokens: above any random token


def test_recipe_refuses_more_rows_than_the_vocabulary_before_any_stage(tiny_gpt2, tmp_path):
    from xtc_hf import xtc_compress

    recipe = XTCRecipeConfig(embedding_bits=4, embedding_int8_rows=100, bf16=False)
    with pytest.raises(ValueError, match=r"`embedding_int8_rows=100` exceeds the teacher's vocabulary \(99 tokens\)"):
        xtc_compress(tiny_gpt2, recipe, None, output_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before the layer-reduction stage wrote anything


def test_frequent_tokens_counts_and_breaks_ties_by_id():
    rows, share = frequent_tokens({"input_ids": [[4, 4, 2, 3], [3, 8, 8, 1]]}, 3, vocab_size=10)
    assert rows.tolist() == [3, 4, 8] and share == 0.75
    with pytest.raises(ValueError, match=r"`count` must be an integer in \[1, 10\]"):
        frequent_tokens({"input_ids": [[1]]}, 11, vocab_size=10)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: XTCGPT2Config(n_layer=2, embedding_bits=8, embedding_int8_rows=4), "they are 8-bit; set"),
        (lambda: XTCGPT2Config(n_layer=2, weight_bits=1, embedding_int8_rows=0), r"integer in \[1, 50257\]"),
        (lambda: XTCGPT2Config(n_layer=2, vocab_size=10, embedding_bits=4, embedding_int8_rows=11), r"\[1, 10\]"),
        (lambda: XTCRecipeConfig(embedding_bits=8, embedding_int8_rows=4), "they are 8-bit; set `embedding_bits`"),
        (lambda: XTCRecipeConfig(embedding_bits=4, embedding_int8_rows=True), "must be None or an integer >= 1"),
        (lambda: XTCQuantizationConfig(embedding_int8_rows=0), "`quantization_config.embedding_int8_rows` must"),
        (lambda: BenchSettings(embedding_int8_rows=16), "set `embedding_bits` to 1, 2 or 4 \\(got None\\)"),
        (lambda: XTCEmbedding(10, 4, weight_bits=8, int8_rows=2), "needs weight bits below 8"),
        (lambda: XTCEmbedding(10, 4, weight_bits=4, int8_rows=2).set_int8_rows([1, 1]), "distinct ids in"),
        (lambda: XTCEmbedding(10, 4, weight_bits=4, int8_rows=2).set_int8_rows([1]), "must hold 2 integer token"),
        (lambda: XTCEmbedding(10, 4, weight_bits=4).set_int8_rows([1]), "has no 8-bit rows"),
    ],
)
def test_bad_settings_name_the_setting_and_the_fix(build, match):
    with pytest.raises(ValueError, match=match):
        build()
