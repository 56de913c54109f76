"""Knowledge distillation in a stock ``Trainer``: a callback that swaps the student's loss for a distillation loss.

A ``TrainerCallback`` cannot return a loss, and ``Trainer(compute_loss_func=...)`` sees the outputs but not the
inputs the teacher needs; so :class:`DistillationCallback` registers a forward hook on the student at
``on_train_begin``. In training mode the hook runs the teacher (eval mode, no grad) on the same inputs and replaces
``outputs.loss`` by ``kl_weight * T^2 * KL(teacher || student) + (1 - kl_weight) * task``, plus ``hidden_weight *``
:func:`hidden_state_loss` when a ``layer_map`` pairs student hidden states with teacher ones (intermediate-layer
distillation, as TinyBERT and XTC do); in eval mode it does nothing, so evaluation reports the plain task loss.
``on_train_end`` removes the hooks. The teacher is held by the callback, never a submodule of the student, so
checkpoints hold the student alone.

A method subclasses it and says how the teacher reads the student's inputs (:meth:`DistillationCallback.
teacher_outputs`) and which rows of the two logits to compare (:meth:`DistillationCallback.align`).

Example:
    >>> from compress_utils.distillation import kl_divergence
    >>> import torch
    >>> float(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)))
    0.0
"""

from __future__ import annotations

import inspect
import logging

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from .allocator import allocator_hint

logger = logging.getLogger(__name__)


def kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                  mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Mean over rows (the last dimension is the classes) of ``KL(softmax(t / T) || softmax(s / T))``, in fp32.

    ``mask`` (the logits' shape without the last dimension; 1 = count the row) leaves out padding and other rows.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_row = F.kl_div(log_student, log_teacher, log_target=True, reduction="none").sum(-1)
    if mask is None:
        return per_row.mean()
    mask = mask.to(per_row.dtype)
    return (per_row * mask).sum() / mask.sum().clamp(min=1)


def hidden_state_loss(student_states, teacher_states, layer_map: dict[int, int],
                      mask: torch.Tensor | None = None, per_token: bool = False) -> torch.Tensor:  # fmt: skip
    """Intermediate-layer distillation loss: ``sum over (s, t) in layer_map of MSE(student[s], teacher[t]) /
    mean(teacher[t]^2)``, in fp32.

    ``student_states``/``teacher_states`` are ``output_hidden_states`` tuples (index 0 the embedding output, ``i + 1``
    the output of block ``i``); ``layer_map`` pairs each student state with the teacher state it should reproduce,
    e.g. the output of the teacher block it was initialised from. ``mask`` (batch x positions, 1 = count) leaves out
    padding. ``per_token`` divides each position's squared error by that position's own teacher mean square (the
    relative error, averaged over positions) instead of one mean square over the whole state: Llama-style models keep
    a few positions (the first, an attention sink) up to 10^4 times larger than the rest, and one mean square over
    all of them would leave every other position almost out of the loss.

    Example:
        >>> state = torch.ones(1, 2, 4)
        >>> float(hidden_state_loss((state, 2 * state), (state, state), {0: 0, 1: 1}))
        1.0
    """
    if not layer_map:
        raise ValueError("`layer_map` is empty; map at least one student hidden state to a teacher one.")

    def mean(values: torch.Tensor) -> torch.Tensor:  # over the counted positions (and any feature dimension)
        if mask is None:
            return values.mean()
        weights = mask.to(values.dtype).reshape(*mask.shape, *[1] * (values.dim() - mask.dim()))
        return (values * weights).sum() / (weights.sum() * values[0, 0].numel()).clamp(min=1)

    total = 0.0
    for s_index, t_index in layer_map.items():
        if not (0 <= s_index < len(student_states) and 0 <= t_index < len(teacher_states)):
            raise ValueError(
                f"`layer_map` pairs student state {s_index} with teacher state {t_index}, but there are "
                f"{len(student_states)} student and {len(teacher_states)} teacher hidden states."
            )
        target = teacher_states[t_index].float()
        error, power = (student_states[s_index].float() - target).pow(2), target.pow(2)
        if per_token:  # one relative error per position, then their mean
            total = total + mean(error.mean(-1) / power.mean(-1).clamp(min=1e-6))
        else:
            # residual streams are not normalised and grow with depth: dividing by the teacher state's mean square
            # puts every mapped layer (and the hidden term as a whole) on one scale, that of the logit term
            total = total + mean(error) / mean(power).clamp(min=1e-6)
    return total


def check_distillation_settings(temperature: float, kl_weight: float, prefix: str = "",
                                hidden_weight: float = 0.0) -> None:  # fmt: skip
    """Raise a ``ValueError`` naming the setting if ``temperature`` is not > 0, ``kl_weight`` not in [0, 1] or
    ``hidden_weight`` not >= 0; ``prefix`` is put before the names where a config spells them so
    (``distil_temperature``)."""
    if not temperature > 0:
        raise ValueError(
            f"`{prefix}temperature` must be > 0 (softmax temperature; 1 = plain softmax), got {temperature!r}."
        )
    if not 0 <= kl_weight <= 1:
        raise ValueError(
            f"`{prefix}kl_weight` must be in [0, 1] (the weight of the KL term; the task loss gets 1 - "
            f"{prefix}kl_weight), got {kl_weight!r}."
        )
    if isinstance(hidden_weight, bool) or not hidden_weight >= 0:
        raise ValueError(f"`{prefix}hidden_weight` must be a number >= 0 (0 = logits only), got {hidden_weight!r}.")


class DistillationCallback(TrainerCallback):
    """Distil ``teacher`` into the model a stock ``Trainer`` trains (see the module docstring).

    ``distill/kl`` and ``distill/task`` (means since the previous log; ``distill/task`` only when ``kl_weight`` < 1,
    the task loss is not computed otherwise) are added to the Trainer logs.

    Args:
        teacher: the model to imitate (moved to the student's device, frozen, eval mode).
        temperature: softmax temperature ``T`` (> 0); higher values weigh the teacher's non-top classes more.
        kl_weight: weight ``w`` of the KL term in [0, 1]; 1 trains on the teacher alone, 0 on the task alone.
        hidden_weight: weight of :func:`hidden_state_loss` over ``layer_map`` (>= 0; added to the loss above, logged
            as ``distill/hidden``); 0 = logits only.
        layer_map: ``{student_hidden_index: teacher_hidden_index}`` over ``output_hidden_states`` tuples (index 0 the
            embedding output, ``i + 1`` the output of block ``i``); needed when ``hidden_weight`` > 0.

    Subclasses override :meth:`teacher_outputs` (default: the teacher called with the student's ``input_ids``,
    ``attention_mask`` and ``token_type_ids``) and :meth:`align` (default: compare every row).
    """

    teacher_inputs: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    hidden_per_token: bool = False  # hidden_state_loss's `per_token`: True for models with attention-sink positions

    def __init__(self, teacher: torch.nn.Module, temperature: float = 2.0, kl_weight: float = 0.5,
                 hidden_weight: float = 0.0, layer_map: dict[int, int] | None = None):  # fmt: skip
        if not isinstance(teacher, torch.nn.Module):
            raise ValueError(f"`teacher` must be a model (torch.nn.Module), got {type(teacher).__name__}.")
        check_distillation_settings(temperature, kl_weight, hidden_weight=hidden_weight)
        if hidden_weight > 0 and not layer_map:
            raise ValueError(
                "`hidden_weight` > 0 needs a `layer_map` ({student_hidden_index: teacher_hidden_index}) saying which "
                "teacher hidden state each student one should reproduce."
            )
        self.teacher = teacher
        self.temperature = float(temperature)
        self.kl_weight = float(kl_weight)
        self.hidden_weight = float(hidden_weight)
        self.layer_map = dict(layer_map or {})
        self._handles = []
        self._sums = {"distill/kl": 0.0, "distill/task": 0.0, "distill/hidden": 0.0}
        self._count = 0

    # ------------------------------------------------------------------------------------------- what subclasses say

    def teacher_outputs(self, inputs: dict, output_hidden_states: bool = False):
        """The teacher's outputs (``logits``; ``hidden_states`` too when asked) for the student's forward arguments
        ``inputs`` (called under ``no_grad``)."""
        extra = {"output_hidden_states": True} if output_hidden_states else {}
        return self.teacher(**{name: inputs[name] for name in self.teacher_inputs if inputs.get(name) is not None},
                            **extra)  # fmt: skip

    def align(self, outputs, teacher_logits: torch.Tensor, inputs: dict):
        """``(student_logits, teacher_logits, mask or None)`` of equal shapes: the rows to compare."""
        return outputs.logits, teacher_logits, None

    # ------------------------------------------------------------------------------------------- Trainer events

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError(f"{type(self).__name__} needs the Trainer to pass `model` to its callbacks.")
        if model is self.teacher:
            raise ValueError("`teacher` is the model being trained; pass a separate copy as the teacher.")
        device = next(model.parameters()).device
        allocator_hint(device)
        self.teacher.to(device)
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        self._remove_hooks()
        self._handles.append(model.register_forward_hook(self._distill, with_kwargs=True))
        if self.hidden_weight > 0:
            self._handles.append(model.register_forward_pre_hook(self._ask_hidden_states, with_kwargs=True))

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hooks()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        if self._count and state.is_world_process_zero:
            logged = {"distill/kl", *(["distill/task"] if self.kl_weight < 1 else []),
                      *(["distill/hidden"] if self.hidden_weight > 0 else [])}  # fmt: skip
            averages = {name: round(total / self._count, 6) for name, total in self._sums.items() if name in logged}
            logs.update(averages)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(averages)  # the Trainer appended its copy of `logs` before calling us
        self._sums, self._count = dict.fromkeys(self._sums, 0.0), 0

    def _remove_hooks(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _ask_hidden_states(self, module, args, kwargs):
        """Forward pre-hook of the student: ask for its hidden states (training mode only)."""
        if module.training:
            kwargs["output_hidden_states"] = True
        return args, kwargs

    def _distill(self, module, args, kwargs, outputs):
        """Forward hook of the student: replace the task loss by the distillation loss (training mode only)."""
        if not module.training:
            return outputs
        if not isinstance(outputs, dict):
            raise ValueError(
                f"{type(self).__name__} needs the student's outputs as a ModelOutput; do not pass "
                "`return_dict=False` while training."
            )
        inputs = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments if args else kwargs
        hidden = self.hidden_weight > 0
        with torch.no_grad():
            teacher = self.teacher_outputs(inputs, output_hidden_states=hidden)
        student_logits, teacher_logits, mask = self.align(outputs, teacher.logits, inputs)
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"The student's logits {tuple(student_logits.shape)} and the teacher's {tuple(teacher_logits.shape)} "
                "differ in shape; the teacher must have the same head (same labels or vocabulary) as the student."
            )
        kl = kl_divergence(student_logits, teacher_logits, self.temperature, mask)
        task = outputs.get("loss")
        if task is None and self.kl_weight < 1:
            raise ValueError(
                f"{type(self).__name__}: the student returned no task loss (the batch has no `labels`); add labels to "
                "the training data, or set `kl_weight=1.0` to train on the teacher alone."
            )
        loss = self.kl_weight * self.temperature**2 * kl
        if self.kl_weight < 1:
            loss = loss + (1 - self.kl_weight) * task
            self._sums["distill/task"] += float(task.detach())
        if hidden:
            states = hidden_state_loss(outputs.hidden_states, teacher.hidden_states, self.layer_map,
                                       inputs.get("attention_mask"), per_token=self.hidden_per_token)  # fmt: skip
            loss = loss + self.hidden_weight * states
            self._sums["distill/hidden"] += float(states.detach())
        self._sums["distill/kl"] += float(kl.detach())
        self._count += 1
        outputs["loss"] = loss  # ModelOutput.__setitem__ sets the attribute too, even where `loss` was None
        return outputs


__all__ = ["DistillationCallback", "check_distillation_settings", "hidden_state_loss", "kl_divergence"]
