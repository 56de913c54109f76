"""Intermediate-layer distillation: student hidden states against the teacher layers they were initialised from."""

import pytest
import torch
from datasets import Dataset

from xtc_hf import XTCGPT2LMHeadModel, XTCRecipeConfig, xtc_compress
from xtc_hf.callbacks import hidden_state_loss
from xtc_hf.recipe import hidden_layer_map


def test_hidden_layer_map_pairs_each_block_with_its_source():
    assert hidden_layer_map([1, 3], 4) == {0: 0, 1: 2, 2: 4}
    assert hidden_layer_map([1, 3, 5, 7, 9, 11], 12) == {0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12}
    assert hidden_layer_map([0, 1, 2], 3) == {0: 0, 1: 1, 2: 2, 3: 3}  # no reduction: every state to itself


def test_hidden_state_loss_is_the_normalised_mse():
    torch.manual_seed(0)
    student = tuple(torch.randn(2, 5, 8) for _ in range(3))
    teacher = tuple(3 * torch.randn(2, 5, 8) for _ in range(5))
    expected = sum(
        ((student[s] - teacher[t]) ** 2).mean() / (teacher[t] ** 2).mean() for s, t in {0: 0, 1: 2, 2: 4}.items()
    )
    torch.testing.assert_close(hidden_state_loss(student, teacher, {0: 0, 1: 2, 2: 4}), expected)
    assert float(hidden_state_loss(teacher, teacher, {1: 1})) == 0.0


@pytest.mark.parametrize(
    ("layer_map", "match"),
    [({}, "`layer_map` is empty"), ({3: 0}, "pairs student state 3 with teacher state 0, but there are 3 student")],
)
def test_hidden_state_loss_rejects_bad_maps(layer_map, match):
    states = tuple(torch.zeros(1, 2, 4) for _ in range(3))
    with pytest.raises(ValueError, match=match):
        hidden_state_loss(states, states, layer_map)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_weight": -1.0}, r"`hidden_weight` must be >= 0 \(0 = that loss term off\), got -1.0"),
        ({"logit_weight": float("nan")}, "`logit_weight` must be >= 0"),
        ({"logit_weight": 0.0, "hidden_weight": 0.0}, "All loss terms are off"),
    ],
)
def test_recipe_checks_the_loss_weights(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XTCRecipeConfig(**kwargs)


def test_hidden_distillation_lowers_the_students_hidden_state_loss(tiny_gpt2, tmp_path):
    torch.manual_seed(2)
    data = Dataset.from_dict({"input_ids": torch.randint(1, 99, (64, 16)).tolist()})
    held_out = torch.randint(1, 99, (8, 16))
    layer_map = hidden_layer_map([1, 3], tiny_gpt2.config.n_layer)

    def loss_of(model):
        with torch.no_grad():
            student = model.eval()(input_ids=held_out, output_hidden_states=True).hidden_states
            teacher = tiny_gpt2(input_ids=held_out, output_hidden_states=True).hidden_states
        return float(hidden_state_loss(student, teacher, layer_map))

    initial = loss_of(XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, [1, 3], weight_bits=32, activation_bits=32))
    trained = {}
    for weight in (0.0, 1.0):  # logits alone, then logits + intermediate layers
        recipe = XTCRecipeConfig(num_student_layers=2, weight_bits=32, activation_bits=32, hidden_weight=weight,
                                 layer_reduction_steps=20, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0,
                                 bf16=False, save_steps=100, logging_steps=10)  # fmt: skip
        student = xtc_compress(tiny_gpt2, recipe, data, output_dir=str(tmp_path / f"hidden-{weight}"))
        assert student.config.teacher_layers == [1, 3]
        trained[weight] = loss_of(student)
    # measured: 0.106 before, 0.077 after logit-only distillation, 0.051 with the hidden-state term
    assert trained[1.0] < 0.75 * trained[0.0], trained
    assert trained[1.0] < 0.6 * initial, (trained, initial)
