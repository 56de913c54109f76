"""``Trainer`` callbacks for ALPINE models: kept-length/FLOPs logging and distillation from an unpruned teacher."""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from compress_utils.distillation import DistillationCallback
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


class AlpineDistillationCallback(DistillationCallback):
    """Fine-tune an ALPINE model with a stock ``Trainer`` while distilling from an unpruned teacher.

    The loss becomes ``(1 - kl_weight) * task + kl_weight * T^2 * KL(teacher || student)``, with both softmaxes at
    temperature ``T`` (Hinton et al.): the task loss the model returns for the batch's ``labels``, plus how far its
    logits are from the teacher's on the same inputs. This is schedule (b) of the retention study: fine-tune the
    unpruned model first, then continue with pruning on, distilling from it. The mechanics (a forward hook on the
    student, the teacher outside the checkpoint, ``distill/kl`` and ``distill/task`` in the logs) are
    :class:`compress_utils.distillation.DistillationCallback`'s, so checkpoints are normal ALPINE checkpoints.

    Sequence-level logits (classification) are compared row by row. Token-level logits of an ALPINE masked-LM cover
    the surviving rows only; the teacher's rows are gathered by ``token_positions`` to match (merged and pad rows
    excluded).

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

    # what the teacher sees of the student's batch (labels are the student's task loss, not the teacher's business)
    teacher_inputs = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        if find_alpine_encoder(self.teacher) is not None:  # a pruning teacher reads the special-tokens mask too
            self.teacher_inputs = (*type(self).teacher_inputs, "special_tokens_mask")

    def align(self, outputs, teacher_logits: torch.Tensor, inputs: dict):
        student_logits = outputs.logits
        positions = outputs.get("token_positions")
        if student_logits.dim() == 3 and positions is not None:  # ALPINE masked-LM: logits of the surviving rows
            index = positions.clamp(min=0)[..., None].expand(-1, -1, teacher_logits.shape[-1])
            return student_logits, teacher_logits.gather(1, index), positions >= 0
        return student_logits, teacher_logits, None


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
