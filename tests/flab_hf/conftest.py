"""Fixtures shared by the Flab-Pruner tests."""

import pytest
from flab_testing import CODE, tiny_model, tiny_tokenizer


@pytest.fixture
def folders(tmp_path):
    """``(model_dir, corpus_dir, output)``: a tiny saved 4-layer Qwen2 with its tokenizer, a folder of Python files,
    and a not-yet-existing output path, for the command-line tests."""
    model_dir, corpus_dir = tmp_path / "dense", tmp_path / "corpus"
    tiny_model("qwen2", layers=4).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    corpus_dir.mkdir()
    for index, text in enumerate(CODE * 3):
        (corpus_dir / f"m{index}.py").write_text(text)
    return model_dir, corpus_dir, tmp_path / "pruned"
