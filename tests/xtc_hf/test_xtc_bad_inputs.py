"""Bad input to XTC's front doors: a clear error naming the argument, and nothing written or deleted."""

import json
import os

import pytest
import torch
from cli_errors import cli_error
from safetensors.torch import load_file, save_file
from transformers import GPT2LMHeadModel

from xtc_hf import XTCGPT2LMHeadModel, XTCQuantizer
from xtc_hf.cli import main
from xtc_hf.recipe import XTCRecipeConfig


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


def test_quantize_refuses_non_empty_save_dir_before_training(tiny_gpt2, tmp_path):
    out = _user_folder(tmp_path / "out")
    with pytest.raises(FileExistsError, match=r"`save_dir`=.*not empty.*overwrite=True"):
        XTCQuantizer.from_pretrained(tiny_gpt2).quantize(out, layer_reduction_steps=1, quantization_steps=1)
    assert os.listdir(out) == ["notes.txt"]
    assert not (tmp_path / "out.xtc-stages").exists()  # refused before any training


def test_quantize_never_replaces_the_current_directory(tiny_gpt2, tmp_path, monkeypatch):
    work = _user_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    with pytest.raises(ValueError, match="current directory"):
        XTCQuantizer.from_pretrained(tiny_gpt2).quantize(".", overwrite=True)
    assert os.listdir(work) == ["notes.txt"]


def test_cli_compress_refuses_non_empty_save(tiny_gpt2, tmp_path, capsys):
    tiny_gpt2.save_pretrained(tmp_path / "teacher")
    out = _user_folder(tmp_path / "out")
    args = ["--quiet", "compress", "--teacher", str(tmp_path / "teacher"), "--output-dir", str(tmp_path / "work"),
            "--steps", "1", "--save", str(out)]  # fmt: skip
    assert "`--save`=" in cli_error(capsys, main, args)
    assert os.listdir(out) == ["notes.txt"]
    assert not (tmp_path / "work").exists()


# -- command line ------------------------------------------------------------------------------------------------------

COMPRESS_CASES = {
    "layers not integers": (["--layers", "0,y"], "--layers"),
    "weight bits 3": (["--weight-bits", "3"], "`weight_bits`"),
    "activation bits 4": (["--activation-bits", "4"], "`activation_bits`"),
    "granularity": (["--granularity", "column"], "`weight_granularity`"),
    "steps zero": (["--steps", "0"], "--steps"),
    "quantization steps zero": (["--quantization-steps", "0"], "`quantization_steps`"),
    "temperature zero": (["--temperature", "0"], "`temperature`"),
    "learning rate text": (["--learning-rate", "fast"], "--learning-rate"),
    "teacher missing": ([], "`--teacher`="),
}


@pytest.mark.parametrize("case", list(COMPRESS_CASES))
def test_cli_compress_bad_option_names_it_and_writes_nothing(tmp_path, capsys, case):
    extra, named = COMPRESS_CASES[case]
    args = ["--quiet", "compress", "--teacher", str(tmp_path / "no-teacher"), "--output-dir", str(tmp_path / "work"),
            "--save", str(tmp_path / "out"), *extra]  # fmt: skip
    assert named in cli_error(capsys, main, args)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["layer_reduction_steps", "quantization_steps"])
def test_recipe_refuses_zero_steps(name):
    with pytest.raises(ValueError, match=rf"`{name}` must be an integer >= 1, got 0; to skip the stage"):
        XTCRecipeConfig(**{name: 0})


# -- packed checkpoints: nothing corrupt loads, bad ids raise -----------------------------------------------------------


@pytest.fixture
def packed(tiny_gpt2, tmp_path):
    folder = tmp_path / "packed"
    XTCGPT2LMHeadModel.from_gpt2(
        tiny_gpt2, teacher_layers=[1, 3], weight_bits=1, activation_bits=8
    ).pack_().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("bad", [-1, 99])
def test_packed_model_refuses_ids_outside_the_vocabulary_like_stock_gpt2(packed, tiny_gpt2, input_ids, bad):
    model = XTCGPT2LMHeadModel.from_pretrained(packed).eval()
    ids = input_ids.clone()
    ids[0, 3] = bad
    with pytest.raises(IndexError, match="index out of range"):
        tiny_gpt2(ids)  # what stock GPT-2 does
    with pytest.raises(IndexError, match=r"index out of range in self: `input_ids` must lie in \[0, 98\]"):
        model(ids)


def _corrupt(folder, name, change):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    tensors[name] = change(tensors[name].clone())
    save_file(tensors, path, metadata={"format": "pt"})


CORRUPTIONS = {
    "scale x10": ("transformer.h.0.attn.c_attn.weight_scale", lambda t: t * 10),
    "wpe bit": ("transformer.wpe.weight", lambda t: _flip_bit(t)),
    "embedding scale": ("transformer.wte.weight_scale", lambda t: _flip_bit(t)),
    "final norm": ("transformer.ln_f.weight", lambda t: t + 1e-3),
    "bias": ("transformer.h.1.mlp.c_fc.bias", lambda t: _flip_bit(t)),
}


def _flip_bit(tensor):
    flat = tensor.reshape(-1).view(torch.int32)
    flat[0] ^= 1
    return tensor


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_change_in_any_tensor_is_refused_naming_tensor_and_file(packed, case):
    name, change = CORRUPTIONS[case]
    _corrupt(packed, name, change)
    before = sorted(os.listdir(packed))
    with pytest.raises(ValueError, match=rf"Tensor `{name}` in .*model.safetensors does not match its checksum"):
        XTCGPT2LMHeadModel.from_pretrained(packed)
    assert sorted(os.listdir(packed)) == before


def test_an_unreadable_checksum_file_is_refused(packed):
    (packed / "xtc_checksums.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"xtc_checksums.json is not a valid checksum file"):
        XTCGPT2LMHeadModel.from_pretrained(packed)


def test_the_checksum_file_covers_every_tensor(packed):
    stored = json.loads((packed / "xtc_checksums.json").read_text())["files"]["model.safetensors"]
    assert set(stored) == set(load_file(packed / "model.safetensors"))


def test_stock_gpt2_class_on_a_packed_folder_says_how_to_load_it(packed):
    before = sorted(os.listdir(packed))
    with pytest.raises(ValueError, match=r"packed XTC GPT-2 checkpoint.*trust_remote_code=True.*import xtc_hf"):
        GPT2LMHeadModel.from_pretrained(packed)
    assert sorted(os.listdir(packed)) == before
