"""``apply_alpine``: stock model in, ALPINE model with the same weights out."""

import pytest
import torch
from alpine_testing import make_batch, tiny_config
from transformers import BertForSequenceClassification, GPT2Config, GPT2Model, RobertaModel

from alpine_hf import AlpineBertForSequenceClassification, AlpineRobertaModel
from alpine_hf.recipe import AlpinePruningConfig, apply_alpine


def test_apply_alpine_keeps_weights_and_outputs_with_layers_none():
    stock = BertForSequenceClassification(tiny_config("bert", alpine=False)).eval()
    model = apply_alpine(stock, AlpinePruningConfig(layers="none", special_token_ids=[3, 4]))
    assert isinstance(model, AlpineBertForSequenceClassification) and not model.training
    input_ids, mask = make_batch("bert", [17, 9])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids, mask).logits, stock(input_ids, mask).logits, atol=1e-6, rtol=0)
    assert model.config.alpine_special_token_ids == [3, 4]


def test_apply_alpine_sets_settings_and_prunes():
    model = apply_alpine(
        RobertaModel(tiny_config("roberta", alpine=False)), AlpinePruningConfig(alpha=0.5, layers=[0])
    )
    assert isinstance(model, AlpineRobertaModel)
    assert model.config.alpine_layer_indices == [0] and model.config.alpine_alpha == 0.5
    input_ids, mask = make_batch("roberta", [30])
    assert model(input_ids, mask).kept_lengths[0, 0] < 30


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 0}, "`alpha`"), ({"layers": "most"}, "`layers`"), ({"scoring": "magic"}, "`scoring='magic'`")],
)
def test_bad_recipe_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlpinePruningConfig(**kwargs)


def test_non_encoder_model_is_refused():
    with pytest.raises(ValueError, match="GPT2Model.*BERT and RoBERTa"):
        apply_alpine(GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2)))
