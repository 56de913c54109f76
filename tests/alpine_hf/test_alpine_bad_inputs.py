"""Bad input to ALPINE's front doors: a clear error naming the argument, and nothing written or deleted."""

import os

import pytest
import torch
from transformers import AutoTokenizer, RobertaConfig, RobertaModel

from alpine_hf.cli import main


@pytest.fixture
def stock(tmp_path, roberta_tokenizer_dir):
    torch.manual_seed(0)
    config = RobertaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=99,
        max_position_embeddings=66,
    )  # fmt: skip
    folder = tmp_path / "stock"
    RobertaModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(roberta_tokenizer_dir).save_pretrained(folder)
    return folder


@pytest.fixture
def roberta_tokenizer_dir(tmp_path):
    """A tiny byte-level BPE tokenizer (vocab.json + merges.txt) written in code."""
    import json

    folder = tmp_path / "tok"
    folder.mkdir()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, **{c: 5 + i for i, c in enumerate("abcdefgh")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer"}))
    return folder


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


def test_convert_refuses_non_empty_output_and_keeps_it(stock, tmp_path):
    out = _user_folder(tmp_path / "out")
    with pytest.raises(FileExistsError, match=r"`output`=.*not empty.*--overwrite"):
        main(["--quiet", "convert", str(stock), str(out)])
    assert os.listdir(out) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out", "stock", "tok"]


def test_convert_overwrite_replaces(stock, tmp_path):
    out = _user_folder(tmp_path / "out")
    assert main(["--quiet", "convert", str(stock), str(out), "--overwrite"]) == 0
    assert "notes.txt" not in os.listdir(out) and "config.json" in os.listdir(out)


def test_convert_never_replaces_the_current_directory(stock, tmp_path, monkeypatch):
    work = _user_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    with pytest.raises(ValueError, match="current directory"):
        main(["--quiet", "convert", str(stock), ".", "--overwrite"])
    with pytest.raises(ValueError, match="contains the current directory"):
        main(["--quiet", "convert", str(stock), "..", "--overwrite"])
    assert os.listdir(work) == ["notes.txt"]


def test_convert_refuses_a_folder_without_tokenizer_files(stock, tmp_path):
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        if (stock / name).exists():
            (stock / name).unlink()
    with pytest.raises(FileNotFoundError, match=r"`model`=.*no tokenizer files.*--no-tokenizer"):
        main(["--quiet", "convert", str(stock), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    assert main(["--quiet", "convert", str(stock), str(tmp_path / "out"), "--no-tokenizer"]) == 0
    assert not (tmp_path / "out" / "tokenizer_config.json").exists()
