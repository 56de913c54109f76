"""Bad input to ALPINE's front doors: a clear error naming the argument, and nothing written or deleted."""

import os

import pytest
import torch
from alpine_testing import make_batch, tiny_config
from cli_errors import cli_error
from transformers import AutoTokenizer, RobertaConfig, RobertaModel

from alpine_hf import AlpineRobertaModel
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


def test_convert_refuses_non_empty_output_and_keeps_it(stock, tmp_path, capsys):
    out = _user_folder(tmp_path / "out")
    assert "`output`=" in cli_error(capsys, main, ["--quiet", "convert", str(stock), str(out)])
    assert os.listdir(out) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out", "stock", "tok"]


def test_convert_overwrite_replaces(stock, tmp_path):
    out = _user_folder(tmp_path / "out")
    assert main(["--quiet", "convert", str(stock), str(out), "--overwrite"]) == 0
    assert "notes.txt" not in os.listdir(out) and "config.json" in os.listdir(out)


def test_convert_takes_explicit_layers_and_one_alpha_per_layer(stock, tmp_path):
    import json

    out = tmp_path / "out"
    assert main(["--quiet", "convert", str(stock), str(out), "--layers", "1", "--alpha", "1.5,0.5"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["alpine_layers"] == [1] and saved["alpine_alpha"] == [1.5, 0.5]


def test_convert_never_replaces_the_current_directory(stock, tmp_path, monkeypatch, capsys):
    work = _user_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    assert "current directory" in cli_error(capsys, main, ["--quiet", "convert", str(stock), ".", "--overwrite"])
    assert "contains the current directory" in cli_error(
        capsys, main, ["--quiet", "convert", str(stock), "..", "--overwrite"]
    )
    assert os.listdir(work) == ["notes.txt"]


def test_convert_refuses_a_folder_without_tokenizer_files(stock, tmp_path, capsys):
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        if (stock / name).exists():
            (stock / name).unlink()
    err = cli_error(capsys, main, ["--quiet", "convert", str(stock), str(tmp_path / "out")])
    assert "`model`=" in err and "no tokenizer files" in err and "--no-tokenizer" in err
    assert not (tmp_path / "out").exists()
    assert main(["--quiet", "convert", str(stock), str(tmp_path / "out"), "--no-tokenizer"]) == 0
    assert not (tmp_path / "out" / "tokenizer_config.json").exists()


# -- command line: every bad value names its option, and nothing is written -------------------------------------------

CONVERT_CASES = {
    "layers not integers": (["--layers", "0,x"], "--layers"),
    "alpha not a number": (["--alpha", "abc"], "--alpha"),
    "alpha negative": (["--alpha", "-1"], "`alpha`"),
    "num labels zero": (["--num-labels", "0"], "--num-labels"),
    "unknown layer mode": (["--layers", "middle"], "`layers`"),
    "unknown scoring": (["--scoring", "magic"], "`scoring="),
    "special ids not integers": (["--special-token-ids", "1,b"], "--special-token-ids"),
    "layer index out of range": (["--layers", "0,7"], "`alpine_layers`"),
    "negative layer index": (["--layers", "0,-1"], "`layers` must hold layer indices"),
    "negative special id": (["--special-token-ids", "0,-2"], "`special_token_ids`"),
    "repeated layer": (["--layers", "1,1"], "`layers=[1, 1]` names a layer more than once"),
    "per-layer alpha not numbers": (["--alpha", "1,x"], "--alpha"),
    "per-layer alpha zero": (["--alpha", "1,0"], "`alpha` holds 0.0 for layer 1"),
    "per-layer alpha of the wrong length": (["--alpha", "1,1,1"], "`alpine_alpha` needs one keep-window width per"),
}


@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_convert_bad_option_names_it_and_writes_nothing(stock, tmp_path, capsys, case):
    extra, named = CONVERT_CASES[case]
    before = sorted(os.listdir(stock))
    err = cli_error(capsys, main, ["--quiet", "convert", str(stock), str(tmp_path / "out"), *extra])
    assert named in err
    assert not (tmp_path / "out").exists() and sorted(os.listdir(stock)) == before


def test_convert_missing_model_folder_is_named(tmp_path, capsys):
    err = cli_error(capsys, main, ["--quiet", "convert", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert "`model`=" in err and "does not exist" in err
    assert os.listdir(tmp_path) == []


# -- the model: settings changed after construction, empty input, embeddings of a pair --------------------------------


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AlpineRobertaModel(tiny_config("roberta")).eval()


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("alpine_alpha", -1, "`alpine_alpha`"),
        ("alpine_alpha", 0, "`alpine_alpha`"),
        ("alpine_layers", [9], "`alpine_layers`"),
        ("alpine_layers", "middle", "`alpine_layers`"),
        ("alpine_scoring", "magic", "`alpine_scoring"),
        ("alpine_alpha", [1.0, 1.0], r"`alpine_alpha` needs one .* \(4 values .*\), got 2: \[1.0, 1.0\]"),
        ("alpine_layers", [2, 2], r"`alpine_layers=\[2, 2\]` names layer\(s\) \[2\] more than once"),
    ],
)
def test_settings_changed_after_construction_are_checked_at_forward(model, setting, value, named):
    input_ids, attention_mask = make_batch("roberta", [12, 9])
    setattr(model.config, setting, value)
    with pytest.raises(ValueError, match=named):
        model(input_ids=input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize(("value", "named"), [(0.0, "holds 0.0 for layer 2"), ("x", "holds 'x' for layer 2"),
                                              (True, "holds True for layer 2")])  # fmt: skip
def test_per_layer_alpha_changed_in_place_is_checked_at_forward(model, value, named):
    """Editing the list in place bypasses the config's type check; the forward pass still refuses it."""
    model.config.alpine_alpha = [1.0, 1.0, 1.0, 1.0]
    model.config.alpine_alpha[2] = value
    input_ids, attention_mask = make_batch("roberta", [12, 9])
    with pytest.raises(ValueError, match=f"`alpine_alpha` {named}.*must be a number > 0"):
        model(input_ids=input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize("shape", [(0, 8), (2, 0)])
def test_empty_input_is_refused(model, shape):
    with pytest.raises(ValueError, match=r"`input_ids` must hold at least one sequence of at least one token"):
        model(input_ids=torch.zeros(shape, dtype=torch.long))


def test_a_row_without_tokens_is_refused(model):
    input_ids, attention_mask = make_batch("roberta", [12, 9])
    attention_mask[1] = 0
    with pytest.raises(ValueError, match=r"`attention_mask` rows \[1\] hold no token"):
        model(input_ids=input_ids, attention_mask=attention_mask)


def test_inputs_embeds_without_special_tokens_mask_is_refused(model):
    input_ids, attention_mask = make_batch("roberta", [20, 20], pair_at=9)
    embeds = model.embeddings.word_embeddings(input_ids)
    with pytest.raises(ValueError, match="`inputs_embeds` without `special_tokens_mask`"):
        model(inputs_embeds=embeds, attention_mask=attention_mask)
    with pytest.raises(ValueError, match=r"`special_tokens_mask` must have the input's shape"):
        model(inputs_embeds=embeds, attention_mask=attention_mask, special_tokens_mask=attention_mask[:, :3])


def test_inputs_embeds_with_special_tokens_mask_keep_every_sep_of_a_pair(model):
    """The caller's mask protects the middle SEPs, exactly as ``input_ids`` do."""
    model.config.alpine_alpha = 0.1  # prune hard so that unprotected tokens would go
    input_ids, attention_mask = make_batch("roberta", [20, 20], pair_at=9)
    special = torch.isin(input_ids, torch.tensor([0, 2])) & attention_mask.bool()
    assert int(special.sum(-1).min()) >= 4  # <s> a </s></s> b </s>
    with torch.no_grad():
        by_ids = model(input_ids=input_ids, attention_mask=attention_mask)
        by_embeds = model(
            inputs_embeds=model.embeddings.word_embeddings(input_ids),
            attention_mask=attention_mask,
            special_tokens_mask=special.long(),
        )
    assert int(by_embeds.kept_lengths[-1].max()) < 20  # tokens were pruned
    for row in range(2):
        kept = set(by_embeds.token_positions[row].tolist())
        assert set(special[row].nonzero().flatten().tolist()) <= kept
    torch.testing.assert_close(by_embeds.last_hidden_state, by_ids.last_hidden_state)
