"""``Trainer`` callbacks for ALPINE models: kept-length/FLOPs logging and distillation from an unpruned teacher."""

from __future__ import annotations

import inspect
import logging

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from compress_utils.emissions import CODECARBON_HINT, EmissionsCallback, check_emissions_country

logger = logging.getLogger(__name__)


def find_alpine_encoder(model):
    """The ALPINE encoder inside ``model`` (a bare encoder, a task model, or a wrapped/PEFT model), or ``None``."""
    for module in model.modules():
        if hasattr(module, "alpine_stats") and hasattr(module, "reset_alpine_stats"):
            return module
    return None


class AlpineStatsCallback(TrainerCallback):
    """Log ALPINE's mean kept length per layer and its analytic FLOPs ratio with the Trainer's logs.

    At every logging step, adds ``alpine/kept_len_layer_<i>`` (mean real rows after layer ``i``),
    ``alpine/input_len`` and ``alpine/flops_ratio`` (stock FLOPs / ALPINE FLOPs, paper Eq. 10 + 13) over the batches
    seen since the previous log, then resets the counters. Under DDP the logged numbers are the main process's
    share of the batches (a sample of the same distribution; no collective in a logging event); use
    :func:`reduce_alpine_stats` for totals over every process.

    Example:
        >>> trainer = Trainer(model=alpine_model, args=args, train_dataset=train,
        ...                   callbacks=[AlpineStatsCallback()])  # doctest: +SKIP
    """

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if model is None or logs is None:
            return
        encoder = find_alpine_encoder(model)
        if not state.is_world_process_zero:
            if encoder is not None:  # other processes only reset, so that their counters do not grow without end
                encoder.reset_alpine_stats()
            return
        if encoder is None:
            logger.warning("AlpineStatsCallback: the model has no ALPINE encoder; nothing to log.")
            return
        stats = encoder.alpine_stats
        if stats["sequences"] == 0:
            return
        sequences = stats["sequences"]
        entries = {"alpine/input_len": round(stats["input_tokens"] / sequences, 2)}
        for index, kept in enumerate(stats["kept_tokens"].tolist()):
            entries[f"alpine/kept_len_layer_{index}"] = round(kept / sequences, 2)
        entries["alpine/flops_ratio"] = round(stats["flops_stock"] / max(stats["flops_alpine"], 1.0), 4)
        logs.update(entries)
        if state.log_history:  # the Trainer appended its copy of `logs` before calling callbacks
            state.log_history[-1].update(entries)
        encoder.reset_alpine_stats()


# what the teacher sees of the student's batch (labels are the student's task loss, not the teacher's business)
_TEACHER_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


class AlpineDistillationCallback(TrainerCallback):
    """Fine-tune an ALPINE model with a stock ``Trainer`` while distilling from an unpruned teacher.

    The loss becomes ``(1 - kl_weight) * task + kl_weight * T^2 * KL(teacher || student)``, with both softmaxes at
    temperature ``T`` (Hinton et al.): the task loss the model returns for the batch's ``labels``, plus how far its
    logits are from the teacher's on the same inputs. This is schedule (b) of the retention study: fine-tune the
    unpruned model first, then continue with pruning on, distilling from it.

    A ``TrainerCallback`` cannot return a loss, and ``Trainer(compute_loss_func=...)`` sees the outputs but not the
    inputs the teacher needs; so on ``on_train_begin`` this callback registers a forward hook on the student. In
    training mode the hook runs the teacher (eval mode, no grad) on the same inputs and replaces ``outputs.loss``;
    in eval mode it does nothing, so evaluation reports the plain task loss. ``on_train_end`` removes the hook. The
    teacher is held by the callback, never a submodule of the student, so checkpoints hold the student alone: a normal
    ALPINE checkpoint.

    Sequence-level logits (classification) are compared row by row. Token-level logits of an ALPINE masked-LM cover
    the surviving rows only; the teacher's rows are gathered by ``token_positions`` to match (merged and pad rows
    excluded). ``distill/kl`` and ``distill/task`` (means since the previous log) are added to the Trainer logs.

    Args:
        teacher: the unpruned model to imitate (same tokenizer and labels; moved to the student's device, frozen).
        temperature: softmax temperature ``T`` (> 0); higher values weigh the teacher's non-top classes more.
        kl_weight: weight ``w`` of the KL term in [0, 1]; 1 trains on the teacher alone, 0 on the task alone.

    Example:
        >>> teacher = AutoModelForSequenceClassification.from_pretrained("runs/none")  # doctest: +SKIP
        >>> student = AlpineBertForSequenceClassification.from_pretrained("runs/none", alpine_layers="all")  # doctest: +SKIP
        >>> trainer = Trainer(model=student, args=args, train_dataset=train,  # doctest: +SKIP
        ...                   callbacks=[AlpineDistillationCallback(teacher, temperature=2.0, kl_weight=0.5)])
    """

    def __init__(self, teacher: torch.nn.Module, temperature: float = 2.0, kl_weight: float = 0.5):
        if not isinstance(teacher, torch.nn.Module):
            raise ValueError(f"`teacher` must be a model (torch.nn.Module), got {type(teacher).__name__}.")
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0 (softmax temperature; 1 = plain softmax), got {temperature}.")
        if not 0 <= kl_weight <= 1:
            raise ValueError(
                f"`kl_weight` must be in [0, 1] (the weight of the KL term; the task loss gets 1 - kl_weight), got "
                f"{kl_weight}."
            )
        self.teacher = teacher
        self.temperature = float(temperature)
        self.kl_weight = float(kl_weight)
        self._handle = None
        self._sums = {"distill/kl": 0.0, "distill/task": 0.0}
        self._count = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise ValueError("AlpineDistillationCallback needs the Trainer to pass `model` to its callbacks.")
        if model is self.teacher:
            raise ValueError("`teacher` is the model being trained; pass a separate (unpruned) copy as the teacher.")
        self.teacher.to(next(model.parameters()).device)
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        self._remove_hook()
        self._teacher_takes_special_mask = find_alpine_encoder(self.teacher) is not None
        self._handle = model.register_forward_hook(self._distill, with_kwargs=True)

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hook()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        if self._count and state.is_world_process_zero:
            averages = {name: round(total / self._count, 6) for name, total in self._sums.items()}
            logs.update(averages)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(averages)  # the Trainer appended its copy of `logs` before calling us
        self._sums, self._count = dict.fromkeys(self._sums, 0.0), 0

    def _remove_hook(self):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _distill(self, module, args, kwargs, outputs):
        """Forward hook of the student: replace the task loss by the distillation loss (training mode only)."""
        if not module.training:
            return outputs
        if not isinstance(outputs, dict):
            raise ValueError(
                "AlpineDistillationCallback needs the student's outputs as a ModelOutput; do not pass "
                "`return_dict=False` while training."
            )
        inputs = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments if args else kwargs
        names = _TEACHER_INPUTS + (("special_tokens_mask",) if self._teacher_takes_special_mask else ())
        with torch.no_grad():
            teacher_logits = self.teacher(**{name: inputs[name] for name in names if inputs.get(name) is not None})
            teacher_logits = teacher_logits.logits
        kl = self._kl(outputs, teacher_logits)
        task = outputs.get("loss")
        if task is None and self.kl_weight < 1:
            raise ValueError(
                "AlpineDistillationCallback: the student returned no task loss (the batch has no `labels`); add "
                "labels to the training data, or set `kl_weight=1.0` to train on the teacher alone."
            )
        loss = self.kl_weight * self.temperature**2 * kl
        if self.kl_weight < 1:
            loss = loss + (1 - self.kl_weight) * task
            self._sums["distill/task"] += float(task.detach())
        self._sums["distill/kl"] += float(kl.detach())
        self._count += 1
        outputs["loss"] = loss  # ModelOutput.__setitem__ sets the attribute too, even where `loss` was None
        return outputs

    def _kl(self, outputs, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Mean over rows of ``KL(softmax(t / T) || softmax(s / T))``."""
        student_logits = outputs.logits
        rows = None
        positions = outputs.get("token_positions")
        if student_logits.dim() == 3 and positions is not None:  # ALPINE masked-LM: logits of the surviving rows
            index = positions.clamp(min=0)[..., None].expand(-1, -1, teacher_logits.shape[-1])
            teacher_logits, rows = teacher_logits.gather(1, index), positions >= 0
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(
                f"The student's logits {tuple(student_logits.shape)} and the teacher's {tuple(teacher_logits.shape)} "
                "differ in shape; the teacher must be the same task model (same head and labels) without pruning."
            )
        log_student = F.log_softmax(student_logits.float() / self.temperature, dim=-1)
        log_teacher = F.log_softmax(teacher_logits.float() / self.temperature, dim=-1)
        per_row = F.kl_div(log_student, log_teacher, log_target=True, reduction="none").sum(-1)
        if rows is None:
            return per_row.mean()
        return (per_row * rows).sum() / rows.sum().clamp(min=1)


def reduce_alpine_stats(stats: dict, device=None) -> dict:
    """``stats`` (an encoder's ``alpine_stats``) summed over every process of a distributed run; unchanged otherwise.

    Every process must call it (it is a collective). ``device`` is where the reduction runs (the process's device
    for nccl; CPU for gloo).

    Example:
        >>> stats = reduce_alpine_stats(encoder.alpine_stats)  # doctest: +SKIP
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return stats
    scalars = ("sequences", "input_tokens", "flops_stock", "flops_alpine")
    flat = torch.cat([torch.tensor([float(stats[key]) for key in scalars], dtype=torch.float64), stats["kept_tokens"]])
    flat = flat.to(device or "cpu")
    torch.distributed.all_reduce(flat)
    flat = flat.cpu()
    reduced = {key: float(value) for key, value in zip(scalars, flat.tolist())}
    reduced["sequences"] = int(reduced["sequences"])
    reduced["kept_tokens"] = flat[len(scalars) :].clone()
    return reduced


__all__ = [
    "AlpineDistillationCallback",
    "AlpineStatsCallback",
    "CODECARBON_HINT",
    "EmissionsCallback",
    "check_emissions_country",
    "find_alpine_encoder",
    "reduce_alpine_stats",
]
