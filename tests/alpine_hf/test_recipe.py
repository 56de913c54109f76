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


def test_apply_alpine_with_per_layer_alpha():
    model = apply_alpine(
        RobertaModel(tiny_config("roberta", alpine=False)), AlpinePruningConfig(alpha=[0.2, 9.0, 9.0, 9.0])
    )
    assert model.config.alpine_alpha == [0.2, 9.0, 9.0, 9.0] and model.config.alpine_alpha_for(0) == 0.2
    input_ids, mask = make_batch("roberta", [30])
    kept = model(input_ids, mask).kept_lengths[:, 0].tolist()
    assert kept[0] < 30 and kept[1:] == [kept[0]] * 3  # only the narrow window of layer 0 prunes


def test_apply_alpine_refuses_per_layer_alpha_of_the_wrong_length():
    stock = RobertaModel(tiny_config("roberta", alpine=False))
    with pytest.raises(ValueError, match=r"`alpine_alpha` needs .* \(4 values for this 4-layer model\), got 2"):
        apply_alpine(stock, AlpinePruningConfig(alpha=[1.0, 0.5]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0}, "`alpha`"),
        ({"alpha": [1.0, -0.5]}, r"`alpha` holds -0.5 for layer 1"),
        ({"alpha": [1.0, "x"]}, r"`alpha` holds 'x' for layer 1"),
        ({"alpha": []}, r"`alpha` is an empty list"),
        ({"layers": "most"}, "`layers`"),
        ({"layers": [0, 2, 0]}, r"`layers=\[0, 2, 0\]` names a layer more than once.*\[0, 2\]"),
        ({"scoring": "magic"}, "`scoring='magic'`"),
    ],
)
def test_bad_recipe_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlpinePruningConfig(**kwargs)


def test_non_encoder_model_is_refused():
    with pytest.raises(ValueError, match="GPT2Model.*BERT and RoBERTa"):
        apply_alpine(GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2)))
