"""Quality against the dense model: tokenization-independent perplexity."""

import pytest
import torch
from flab_testing import CODE, tiny_model, tiny_tokenizer

from flab_hf.quality import text_perplexity


def test_text_perplexity_is_the_ordinary_perplexity_for_the_own_tokenizer():
    torch.manual_seed(0)
    model, tokenizer = tiny_model().eval(), tiny_tokenizer()
    texts = CODE[:3]
    measured = text_perplexity(model, tokenizer, texts)
    assert measured["tokens"] == measured["reference_tokens"]
    nll = count = 0.0
    for text in texts:  # the same number by hand (no grad: a float of a graph tensor warns)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            log_q = torch.log_softmax(model(ids).logits[:, :-1], -1)
        nll -= float(log_q.gather(-1, ids[:, 1:, None]).sum())
        count += ids.shape[1] - 1
    assert measured["perplexity"] == pytest.approx(float(torch.exp(torch.tensor(nll / count))), rel=1e-3)


def test_text_perplexity_counts_reference_tokens():
    torch.manual_seed(0)
    model, tokenizer = tiny_model().eval(), tiny_tokenizer()
    own = text_perplexity(model, tokenizer, CODE[:2])
    halved = text_perplexity(model, tokenizer, CODE[:2], reference_tokenizer=_Doubling(tokenizer))
    # the same log-likelihood spread over (about) twice the reference tokens: the square root of the perplexity
    assert halved["tokens"] == own["tokens"] and halved["reference_tokens"] > 1.9 * own["reference_tokens"]
    assert halved["perplexity"] < own["perplexity"]
    with pytest.raises(ValueError, match="two or more tokens"):
        text_perplexity(model, tokenizer, [""])


class _Doubling:
    """A reference tokenizer that makes every token two."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text, add_special_tokens=False):
        ids = self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        return {"input_ids": [i for i in ids for _ in range(2)]}
