"""The shared distillation pieces: the hidden-state loss and the callback's checks."""

import pytest
import torch

from compress_utils.distillation import DistillationCallback, hidden_state_loss


def test_hidden_state_loss_is_normalised_per_layer_or_per_token_and_skips_masked_positions():
    teacher = (torch.ones(1, 3, 4), 10 * torch.ones(1, 3, 4))
    student = (2 * torch.ones(1, 3, 4), 20 * torch.ones(1, 3, 4))
    # each layer: MSE / mean square = 1, whatever the scale of its states
    assert float(hidden_state_loss(student, teacher, {0: 0, 1: 1})) == pytest.approx(2.0)
    masked = (student[0].clone(), student[1])
    masked[0][0, 2] = 100.0  # a padded position: must not count
    mask = torch.tensor([[1, 1, 0]])
    assert float(hidden_state_loss(masked, teacher, {0: 0}, mask)) == pytest.approx(1.0)
    # one huge position (an attention sink) hides the others' errors from one mean square, not from per-token ones
    sink = torch.ones(1, 3, 4)
    sink[0, 0] = 100.0
    off = sink.clone()
    off[0, 1:] *= 2
    assert float(hidden_state_loss((off,), (sink,), {0: 0})) < 0.001
    assert float(hidden_state_loss((off,), (sink,), {0: 0}, per_token=True)) == pytest.approx(2 / 3)
    assert float(hidden_state_loss((off,), (sink,), {0: 0}, torch.tensor([[0, 1, 1]]), per_token=True)) == 1.0
    with pytest.raises(ValueError, match="layer_map"):
        hidden_state_loss(student, teacher, {0: 5})
    with pytest.raises(ValueError, match="layer_map"):
        hidden_state_loss(student, teacher, {})


def test_callback_refuses_hidden_distillation_without_a_layer_map():
    teacher = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="layer_map"):
        DistillationCallback(teacher, hidden_weight=1.0)
    with pytest.raises(ValueError, match="hidden_weight"):
        DistillationCallback(teacher, hidden_weight=-0.5, layer_map={1: 1})
    assert DistillationCallback(teacher, hidden_weight=0.5, layer_map={1: 2}).layer_map == {1: 2}
