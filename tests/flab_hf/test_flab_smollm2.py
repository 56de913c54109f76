"""Vocabulary pruning on the real SmolLM2 tokenizer and standard-library code (slow: loads the real model)."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

_STATE = {}


def _pruned():
    if not _STATE:
        from compress_utils.embedded import load_smollm2
        from flab_hf import prune_vocabulary
        from flab_hf.data import stdlib_texts

        torch.set_num_threads(1)
        dense, tokenizer = load_smollm2()
        corpus = stdlib_texts("train", max_chars=1_000_000)
        pruned, pruned_tokenizer, kept = prune_vocabulary(copy.deepcopy(dense), tokenizer, corpus, progress=False)
        _STATE.update(
            corpus=corpus,
            dense=dense,
            tokenizer=tokenizer,
            pruned=pruned,
            pruned_tokenizer=pruned_tokenizer,
            kept=kept,
        )
    return _STATE


def test_real_logits_and_tokens_match():
    state = _pruned()
    text = state["corpus"][3][:600]  # text made of kept tokens: it comes from the corpus
    original = state["tokenizer"](text)["input_ids"]
    new = state["pruned_tokenizer"](text)["input_ids"]
    assert state["tokenizer"].convert_ids_to_tokens(original) == state["pruned_tokenizer"].convert_ids_to_tokens(new)
    with torch.no_grad():
        expected = state["dense"](torch.tensor([original])).logits[..., state["kept"]]
        got = state["pruned"](torch.tensor([new])).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    assert len(state["kept"]) < 0.5 * len(state["tokenizer"])
    assert state["pruned_tokenizer"].apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_pruned_roundtrip_as_good_as_original(text):
    # SmolLM2's own vocabulary lacks 21 byte-level base tokens, so the original tokenizer does not round-trip every
    # string either; pruning must not make any string worse
    state = _pruned()
    tokenizer, pruned = state["tokenizer"], state["pruned_tokenizer"]
    original_ok = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    pruned_ok = pruned.decode(pruned(text, add_special_tokens=False)["input_ids"]) == text
    assert pruned_ok or not original_ok
