"""Vocabulary pruning: rebuilt tokenizer, sliced embeddings, remapped special ids (paper Sec. 3.2)."""

import copy
import json

import pytest
import torch
from flab_testing import CODE, FAMILY_NAMES, PROSE, tiny_model, tiny_tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from flab_hf import FlabConfig, prune_vocabulary
from flab_hf.pruning import bytes_to_unicode, iter_corpus_texts


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_logits_equal_dense_restricted_to_kept_ids(family, tie):
    tokenizer = tiny_tokenizer()
    dense = tiny_model(family, tie=tie)
    pruned, pruned_tokenizer, kept = prune_vocabulary(copy.deepcopy(dense), tokenizer, CODE[:3], progress=False)
    assert len(kept) < len(tokenizer)
    assert pruned.config.vocab_size == len(kept) == len(pruned_tokenizer)
    assert pruned.get_input_embeddings().weight.shape[0] == len(kept)
    assert (pruned.lm_head.weight is pruned.model.embed_tokens.weight) == tie
    for text in CODE[:3]:
        original = tokenizer(text)["input_ids"]
        new = pruned_tokenizer(text)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(original) == pruned_tokenizer.convert_ids_to_tokens(new)
        with torch.no_grad():
            expected = dense(torch.tensor([original])).logits[..., kept]
            got = pruned(torch.tensor([new])).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_ids_contiguous_in_original_order_and_specials_remapped(tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_model("qwen2")
    pruned, pruned_tokenizer, kept = prune_vocabulary(model, tokenizer, CODE, progress=False)
    assert kept == sorted(kept)
    old_vocab = tokenizer.get_vocab()
    new_vocab = pruned_tokenizer.get_vocab()
    assert sorted(new_vocab.values()) == list(range(len(kept)))
    assert all(kept[new_vocab[token]] == old_vocab[token] for token in new_vocab)
    # every byte-level base token survives
    assert set(bytes_to_unicode().values()) <= set(new_vocab)
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        token = getattr(tokenizer, name)
        assert getattr(pruned_tokenizer, name) == token
        assert new_vocab[token] == kept.index(old_vocab[token])
    assert pruned.config.eos_token_id == pruned_tokenizer.eos_token_id
    assert pruned.config.pad_token_id == pruned_tokenizer.pad_token_id
    pruned.generation_config.eos_token_id = pruned.config.eos_token_id
    pruned.save_pretrained(tmp_path)
    pruned_tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert {t["content"]: t["id"] for t in saved["added_tokens"]} == {
        t["content"]: new_vocab[t["content"]] for t in saved["added_tokens"]
    }
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["vocab_size"] == len(kept) and config["eos_token_id"] == new_vocab["<|im_end|>"]


def test_merges_need_both_parts_and_result_kept():
    tokenizer = tiny_tokenizer()
    _, pruned_tokenizer, _ = prune_vocabulary(tiny_model("llama"), tokenizer, CODE[:1], progress=False)
    state = json.loads(pruned_tokenizer.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    for merge in state["model"]["merges"]:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        assert left in vocab and right in vocab and left + right in vocab
    # a prose-only word must be spelled with smaller pieces now, but still round-trips
    text = PROSE[2]
    assert len(pruned_tokenizer(text)["input_ids"]) > len(tokenizer(text)["input_ids"])
    assert pruned_tokenizer.decode(pruned_tokenizer(text)["input_ids"]) == text


_PRUNED = {}


def _pruned_tokenizer():
    if "tokenizer" not in _PRUNED:
        _, _PRUNED["tokenizer"], _ = prune_vocabulary(tiny_model("llama"), tiny_tokenizer(), CODE, progress=False)
    return _PRUNED["tokenizer"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_decode_encode_roundtrip_on_arbitrary_unicode(text):
    tokenizer = _pruned_tokenizer()
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_corpus_from_directory_and_dataset(tmp_path):
    (tmp_path / "a.py").write_text(CODE[0])
    (tmp_path / "notes.txt").write_text("ignored")
    assert iter_corpus_texts(tmp_path) == [CODE[0]]
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"content": CODE[:2], "n": [1, 2]})
    assert iter_corpus_texts(data) == CODE[:2]


@pytest.mark.parametrize(
    "corpus, message",
    [([], "holds no text"), (["", "  \n"], "holds no text"), ([b"def f(): pass"], "not text"), ([1, 2], "not text"),
     ("def f(): pass", "not a directory")],
)  # fmt: skip
def test_bad_corpus(corpus, message):
    with pytest.raises(ValueError, match=message):
        prune_vocabulary(tiny_model("llama"), tiny_tokenizer(), corpus, progress=False)


def test_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="holds no text"):
        prune_vocabulary(tiny_model("llama"), tiny_tokenizer(), tmp_path, progress=False)


def test_non_byte_level_tokenizer_is_rejected():
    backend = Tokenizer(models.WordPiece({"[UNK]": 0, "def": 1, "f": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(ValueError, match="byte-level BPE"):
        prune_vocabulary(tiny_model("llama", vocab_size=8), tokenizer, CODE, progress=False)


def test_unsupported_model_family_is_rejected():
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=420))
    with pytest.raises(ValueError, match="supports the model families"):
        prune_vocabulary(model, tiny_tokenizer(), CODE, progress=False)


def test_special_ids_at_the_end_are_remapped_everywhere(tmp_path):
    # specials added after training sit at the end of the vocabulary: pruning must move them down
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|fim_prefix|>", "<|fim_suffix|>"]})
    tokenizer.add_tokens(["<custom_added>"])
    model = tiny_model("qwen2", vocab_size=len(tokenizer), eos_token_id=len(tokenizer) - 2)
    model.generation_config.eos_token_id = [2, len(tokenizer) - 2]
    old_fim = tokenizer.convert_tokens_to_ids("<|fim_suffix|>")
    pruned, pruned_tokenizer, kept = prune_vocabulary(model, tokenizer, CODE[:1], progress=False)
    new_fim = pruned_tokenizer.convert_tokens_to_ids("<|fim_suffix|>")
    assert new_fim == kept.index(old_fim) < old_fim
    assert pruned.config.eos_token_id == new_fim and pruned.generation_config.eos_token_id == [2, new_fim]
    pruned.save_pretrained(tmp_path)
    pruned_tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    added = {t["content"]: t["id"] for t in saved["added_tokens"]}
    assert added["<|fim_suffix|>"] == new_fim and added["<custom_added>"] == len(kept) - 1
    assert json.loads((tmp_path / "generation_config.json").read_text())["eos_token_id"] == [2, new_fim]
    assert json.loads((tmp_path / "config.json").read_text())["eos_token_id"] == new_fim
    text = "<|fim_prefix|>def f():<|fim_suffix|> <custom_added>"
    assert pruned_tokenizer.convert_ids_to_tokens(pruned_tokenizer(text)["input_ids"])[:1] == ["<|fim_prefix|>"]
    assert pruned_tokenizer.decode(pruned_tokenizer(text)["input_ids"]) == text


def test_every_whitespace_token_is_kept_so_indentation_tokenizes_as_before():
    from flab_hf.vocabulary import whitespace_token_ids

    tokenizer = tiny_tokenizer()
    spaces = whitespace_token_ids(tokenizer)
    assert spaces and all(not tokenizer.decode([i]).strip() for i in spaces)
    assert tokenizer.convert_tokens_to_ids("a") not in spaces
    # the corpus indents by 4 only; the same code indented by 8 needs whitespace tokens the corpus never used
    prompt = CODE[0].replace("    ", "        ")
    identical, kept_by = {}, {}
    for keep in (False, True):
        _, pruned_tokenizer, kept = prune_vocabulary(
            tiny_model("llama"), tokenizer, CODE[:1], keep_chat=False, keep_whitespace=keep, progress=False
        )
        identical[keep], kept_by[keep] = pruned_tokenizer.tokenize(prompt) == tokenizer.tokenize(prompt), set(kept)
    assert identical == {False: False, True: True}
    assert spaces <= kept_by[True] and not spaces <= kept_by[False]
    assert kept_by[True] - kept_by[False] <= spaces  # nothing but whitespace tokens is added
    with pytest.raises(ValueError, match=r"`keep_whitespace` must be True or False, got 'yes'"):
        FlabConfig(keep_whitespace="yes")
