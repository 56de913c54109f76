# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``TrainerCallback``s for XTC: knowledge distillation inside a stock ``transformers.Trainer``, and a time budget.

Example:
    >>> from transformers import Trainer
    >>> from xtc_hf import DistillationCallback
    >>> trainer = Trainer(model=student, args=args, train_dataset=blocks,  # doctest: +SKIP
    ...                   callbacks=[DistillationCallback(teacher, layer_map={1: 2, 2: 4})])
    >>> trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from compress_utils.distillation import hidden_state_loss
from compress_utils.emissions import CODECARBON_HINT, EmissionsCallback, check_emissions_country

logger = logging.getLogger(__name__)


def soft_cross_entropy(student_logits, teacher_logits, temperature: float = 1.0, mask=None) -> torch.Tensor:
    """Mean over (unmasked) tokens of ``-sum softmax(t/T) * log_softmax(s/T)``, times ``T**2`` (Hinton et al.)."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    q = F.softmax(teacher_logits.float() / temperature, dim=-1)
    per_token = -(q * log_p).sum(-1) * temperature**2
    if mask is None:
        return per_token.mean()
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


class DistillationCallback(TrainerCallback):
    """Make a stock ``Trainer`` train its model by knowledge distillation from ``teacher``.

    A callback cannot return a loss, so on ``on_train_begin`` this callback wraps the student with two forward hooks:
    the pre-hook asks the student for hidden states (when hidden-state KD is on), the post-hook runs the frozen teacher
    on the same ``input_ids`` and replaces ``outputs.loss`` by::

        logit_weight * T^2 * soft_CE(student / T, teacher / T)
        + hidden_weight * sum_{(s, t) in layer_map} MSE(student_hidden[s], teacher_hidden[t]) / mean(teacher_hidden[t]^2)
        + gt_weight * cross_entropy(student, labels)

    Hooks only act in training mode, so evaluation reports the plain LM loss. The three terms are averaged between
    logging steps and added to the Trainer logs (``kd_logit``, ``kd_hidden``, ``kd_gt``) on the main process.

    Args:
        teacher: the full-precision model to imitate (moved to the student's device, frozen, eval mode).
        temperature: softmax temperature (XTC uses 1).
        logit_weight, hidden_weight, gt_weight: weights of the three terms.
        layer_map: ``{student_hidden_index: teacher_hidden_index}`` over ``output_hidden_states`` tuples (index 0 is
            the embedding output, ``i + 1`` the output of block ``i``). ``None`` disables hidden-state KD.

    Example:
        >>> callback = DistillationCallback(teacher, temperature=1.0, layer_map={0: 0, 1: 2, 2: 4})  # doctest: +SKIP
    """

    def __init__(
        self,
        teacher,
        temperature: float = 1.0,
        logit_weight: float = 1.0,
        hidden_weight: float = 1.0,
        gt_weight: float = 0.0,
        layer_map: dict[int, int] | None = None,
    ):
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        for name, value in (
            ("logit_weight", logit_weight),
            ("hidden_weight", hidden_weight),
            ("gt_weight", gt_weight),
        ):
            if not value >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {value}.")
        if logit_weight == 0 and gt_weight == 0 and (hidden_weight == 0 or not layer_map):
            raise ValueError(
                "All loss terms are off; set `logit_weight`, `gt_weight` or `hidden_weight` + `layer_map`."
            )
        self.teacher = teacher
        self.temperature = float(temperature)
        self.logit_weight = float(logit_weight)
        self.hidden_weight = float(hidden_weight) if layer_map else 0.0
        self.gt_weight = float(gt_weight)
        self.layer_map = dict(layer_map or {})
        self._handles = []
        self._sums: dict[str, float] = {}
        self._count = 0

    # -- hooks ---------------------------------------------------------------------------------------------------------
    def _pre_hook(self, module, args, kwargs):
        if module.training and self.hidden_weight > 0:
            kwargs["output_hidden_states"] = True
        return args, kwargs

    def _post_hook(self, module, args, kwargs, outputs):
        if not module.training:
            return outputs
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            raise ValueError("DistillationCallback needs `input_ids` in the batch; the teacher sees the same tokens.")
        attention_mask = kwargs.get("attention_mask")
        with torch.no_grad():
            teacher_out = self.teacher(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=self.hidden_weight > 0,
                use_cache=False,
            )
        mask = attention_mask
        terms = {}
        loss = 0.0
        if self.logit_weight > 0:
            terms["kd_logit"] = soft_cross_entropy(outputs.logits, teacher_out.logits, self.temperature, mask)
            loss = loss + self.logit_weight * terms["kd_logit"]
        if self.hidden_weight > 0:
            hidden = hidden_state_loss(outputs.hidden_states, teacher_out.hidden_states, self.layer_map)
            terms["kd_hidden"] = hidden
            loss = loss + self.hidden_weight * hidden
        if self.gt_weight > 0:
            labels = kwargs.get("labels")
            if labels is None:  # causal LM: the ground truth is the next input token
                labels = input_ids if mask is None else input_ids.masked_fill(mask == 0, -100)
            shift_logits = outputs.logits[..., :-1, :].float()
            terms["kd_gt"] = F.cross_entropy(
                shift_logits.reshape(-1, shift_logits.shape[-1]), labels[..., 1:].reshape(-1), ignore_index=-100
            )
            loss = loss + self.gt_weight * terms["kd_gt"]
        for name, value in terms.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value.detach())
        self._count += 1
        outputs.loss = loss
        if isinstance(outputs, dict):  # ModelOutput keeps attribute and mapping views in sync only through __setitem__
            outputs["loss"] = loss
        return outputs

    # -- events --------------------------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("DistillationCallback needs the Trainer to pass `model` to its callbacks.")
        parameter = next(model.parameters())
        self.teacher.to(parameter.device)
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        self._remove_hooks()
        self._handles = [
            model.register_forward_pre_hook(self._pre_hook, with_kwargs=True),
            model.register_forward_hook(self._post_hook, with_kwargs=True),
        ]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._count and state.is_world_process_zero and logs is not None and "loss" in logs:
            averages = {name: round(total / self._count, 6) for name, total in self._sums.items()}
            logs.update(averages)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(averages)  # the Trainer copied `logs` before calling us
        if logs is not None and "loss" in logs:
            self._sums, self._count = {}, 0

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hooks()

    def _remove_hooks(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []


class TimeBudgetCallback(TrainerCallback):
    """Stop training (and save) once ``minutes`` of wall-clock time have passed since ``on_train_begin``.

    Example:
        >>> TimeBudgetCallback(minutes=2.5)  # doctest: +ELLIPSIS
        <xtc_hf.callbacks.TimeBudgetCallback object at ...>
    """

    def __init__(self, minutes: float):
        if not minutes > 0:
            raise ValueError(f"`minutes` must be > 0, got {minutes}.")
        self.seconds = 60.0 * minutes
        self._start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is None:
            return
        over = time.monotonic() - self._start > self.seconds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # clocks differ between processes: all must stop at the same step, or the others wait forever in the next
            # gradient all-reduce; stop when any process is over budget
            flag = torch.tensor([float(over)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over = bool(flag.item())
        if over:
            if state.is_world_process_zero:
                logger.info("time budget of %.1f min reached at step %d", self.seconds / 60, state.global_step)
            control.should_training_stop = True
            control.should_save = True


__all__ = [
    "CODECARBON_HINT",
    "DistillationCallback",
    "EmissionsCallback",
    "TimeBudgetCallback",
    "check_emissions_country",
    "hidden_state_loss",
    "soft_cross_entropy",
]
