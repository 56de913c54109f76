"""Bad input to XTC's front doors: a clear error naming the argument, and nothing written or deleted."""

import os

import pytest

from xtc_hf import XTCQuantizer


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


def test_cli_compress_refuses_non_empty_save(tiny_gpt2, tmp_path):
    from xtc_hf.cli import main

    tiny_gpt2.save_pretrained(tmp_path / "teacher")
    out = _user_folder(tmp_path / "out")
    args = ["--quiet", "compress", "--teacher", str(tmp_path / "teacher"), "--output-dir", str(tmp_path / "work"),
            "--steps", "1", "--save", str(out)]  # fmt: skip
    with pytest.raises(FileExistsError, match="`save_dir`="):
        main(args)
    assert os.listdir(out) == ["notes.txt"]
    assert not (tmp_path / "work").exists()
