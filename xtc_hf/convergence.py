# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Distillation to convergence: held-out KL to the teacher, measured during training, and a stop when it plateaus.

:class:`HeldOutKLCallback` measures ``KL(teacher || student)`` on held-out blocks every ``every_steps`` optimizer
steps and, with a ``patience``, stops the ``Trainer`` once ``patience`` measurements in a row failed to lower the best
KL by a relative ``min_delta``; with a :class:`PlateauAnnealSchedule` it anneals the learning rate to 0 from there
instead and stops at the end of the anneal (a plateau at the peak learning rate is where decaying pays, not where the
student is done). Its points live in the Trainer's ``log_history``, so a checkpoint carries the curve and the
stopping state (recomputed from the points, never held in the callback), and a resumed run decides exactly as an
uninterrupted one.

Example:
    >>> from xtc_hf.convergence import plateaued
    >>> plateaued([3.0, 2.0, 1.98, 1.99, 1.995], patience=3, min_delta=0.01)
    True
    >>> plateaued([3.0, 2.0, 1.5], patience=3, min_delta=0.01)
    False
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from compress_utils.distillation import kl_divergence

logger = logging.getLogger(__name__)

KL_KEY = "heldout_kl"  # marks the held-out KL entries in the Trainer's log history


def plateaued(values: list[float], patience: int, min_delta: float = 0.0) -> bool:
    """Whether the last ``patience`` values all failed to fall below ``best * (1 - min_delta)``, ``best`` being the
    lowest value before each of them (a relative threshold: KL falls from very different heights in the two stages).

    Example:
        >>> plateaued([1.0, 0.5, 0.6, 0.7], patience=2)
        True
    """
    if patience < 1:
        raise ValueError(f"`patience` must be >= 1, got {patience}.")
    if len(values) <= patience:
        return False
    best = min(values[:-patience])
    for value in values[-patience:]:
        if value < best * (1.0 - min_delta):
            return False
        best = min(best, value)
    return True


class PlateauAnnealSchedule:
    """The learning-rate multiplier of a stage distilled to convergence (a ``LambdaLR`` lambda): linear warm-up over
    ``warmup_steps``, the peak until the held-out KL plateaus, then linear decay to 0 over ``anneal_ratio`` of the
    stage's steps (``round(start * anneal_ratio / (1 - anneal_ratio))`` steps after a plateau at ``start``).

    Without a plateau the decay starts where it still ends at ``max_steps``: a capped stage ends annealed too.
    :class:`HeldOutKLCallback` sets :attr:`plateau_step` and stops the Trainer at :meth:`end_step`.

    Example:
        >>> schedule = PlateauAnnealSchedule(max_steps=100, warmup_steps=10, anneal_ratio=0.2)
        >>> schedule(5), schedule(50), schedule(90), schedule.end_step()
        (0.5, 1.0, 0.5, 100)
        >>> schedule.plateau_step = 40
        >>> schedule.end_step(), schedule(45)
        (50, 0.5)
    """

    def __init__(self, max_steps: int, warmup_steps: int, anneal_ratio: float):
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"`max_steps` must be an int >= 1, got {max_steps!r}.")
        if not 0 <= warmup_steps < max_steps:
            raise ValueError(f"`warmup_steps` must be in [0, max_steps={max_steps}), got {warmup_steps!r}.")
        if not 0 < anneal_ratio < 1:
            raise ValueError(
                f"`anneal_ratio` must be in (0, 1) (the share of the stage spent decaying), got {anneal_ratio!r}."
            )
        self.max_steps = max_steps
        self.warmup_steps = warmup_steps
        self.anneal_ratio = float(anneal_ratio)
        self.plateau_step: int | None = None  # set by the callback; recomputed from the curve on resume

    def start_step(self) -> int:
        """The step the decay starts: the plateau, or the latest start that still ends at ``max_steps``."""
        latest = max(self.warmup_steps, round(self.max_steps * (1 - self.anneal_ratio)))
        return latest if self.plateau_step is None else min(self.plateau_step, latest)

    def end_step(self) -> int:
        """The step the learning rate reaches 0 and the stage ends."""
        start = self.start_step()
        if self.plateau_step is None or start < self.plateau_step:
            return self.max_steps
        return min(self.max_steps, start + max(1, round(start * self.anneal_ratio / (1 - self.anneal_ratio))))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        start, end = self.start_step(), self.end_step()
        if step <= start:
            return 1.0
        return max(0.0, (end - step) / (end - start))


@torch.no_grad()
def heldout_kl(student, teacher, input_ids: torch.Tensor, batch_size: int = 8) -> float:
    """Mean per-token ``KL(teacher || student)`` (temperature 1, fp32) over ``input_ids`` ``(n, length)``.

    Both models run in eval mode; the student's training mode is restored afterwards.

    Example:
        >>> float(heldout_kl(model, model, torch.randint(0, 99, (4, 16))))  # doctest: +SKIP
        0.0
    """
    if input_ids.ndim != 2 or input_ids.shape[0] == 0:
        raise ValueError(f"`input_ids` must be a non-empty (n, length) tensor, got shape {tuple(input_ids.shape)}.")
    was_training = student.training
    student.eval()
    teacher.eval()
    device = next(student.parameters()).device
    total, count = 0.0, 0
    try:
        for start in range(0, input_ids.shape[0], batch_size):
            batch = input_ids[start : start + batch_size].to(device)
            student_logits = student(input_ids=batch).logits
            teacher_logits = teacher(input_ids=batch).logits
            total += float(kl_divergence(student_logits, teacher_logits)) * batch.numel()
            count += batch.numel()
    finally:
        student.train(was_training)
    return total / count


class HeldOutKLCallback(TrainerCallback):
    """Measure held-out KL to the teacher every ``every_steps`` steps; with ``patience``, stop when it plateaus.

    The first point is measured before the first step, the last at the last step. Each point is a ``log_history``
    entry ``{"step", "heldout_kl", "heldout_kl_tokens"}``; :meth:`curve` reads them back. With ``patience`` the
    Trainer stops once :func:`plateaued` holds for the measured values (the checkpoint at that step is saved); with a
    ``schedule`` as well, the first plateau after its warm-up starts the schedule's decay instead, and the Trainer
    stops where the decay ends.

    Args:
        teacher: the model the student imitates.
        input_ids: held-out token blocks ``(n, length)``.
        every_steps: the interval in optimizer steps.
        tokens_per_step: training tokens per optimizer step (over every process), for the curve's x axis.
        patience: measurements without progress before stopping; ``None`` = measure only, never stop.
        min_delta: the relative fall of the best KL that counts as progress.
        batch_size: sequences per forward pass of the measurement.
        schedule: the :class:`PlateauAnnealSchedule` of the Trainer's learning rate (needs ``patience``).

    Example:
        >>> callback = HeldOutKLCallback(teacher, held_out_ids, every_steps=50, patience=3)  # doctest: +SKIP
        >>> Trainer(model=student, args=args, train_dataset=blocks, callbacks=[distill, callback]).train()  # doctest: +SKIP
    """

    def __init__(self, teacher, input_ids: torch.Tensor, every_steps: int, tokens_per_step: int = 1,
                 patience: int | None = None, min_delta: float = 0.0, batch_size: int = 8,
                 schedule: PlateauAnnealSchedule | None = None):  # fmt: skip
        for name, value in (("every_steps", every_steps), ("tokens_per_step", tokens_per_step),
                            ("batch_size", batch_size)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"`patience` must be None (never stop) or an int >= 1, got {patience!r}.")
        if not 0 <= min_delta < 1:
            raise ValueError(f"`min_delta` must be in [0, 1) (a relative fall of the KL), got {min_delta!r}.")
        if schedule is not None and patience is None:
            raise ValueError("A `schedule` anneals on a plateau, which needs `patience`; give both or neither.")
        self.schedule = schedule
        self.teacher = teacher
        self.input_ids = torch.as_tensor(input_ids, dtype=torch.long)
        self.every_steps = every_steps
        self.tokens_per_step = tokens_per_step
        self.patience = patience
        self.min_delta = float(min_delta)
        self.batch_size = batch_size

    def _measure(self, state, model):
        value = heldout_kl(model, self.teacher, self.input_ids, self.batch_size)
        point = {"step": state.global_step, KL_KEY: value,
                 f"{KL_KEY}_tokens": state.global_step * self.tokens_per_step}  # fmt: skip
        state.log_history.append(point)
        logger.info("held-out KL %.5f after %d steps", value, state.global_step)

    def _plateau_step(self, curve: list[dict]) -> int | None:
        """The first measured step after the warm-up at which the KL had plateaued (None: not yet)."""
        values = [point["kl"] for point in curve]
        for index, point in enumerate(curve):
            if point["step"] >= self.schedule.warmup_steps and plateaued(values[: index + 1], self.patience,
                                                                         self.min_delta):  # fmt: skip
                return point["step"]
        return None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and not any(KL_KEY in entry for entry in state.log_history):
            self._measure(state, model)
        if self.schedule is not None:  # a resumed run anneals from where the uninterrupted one did
            self.schedule.plateau_step = self._plateau_step(self.curve(state.log_history))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        last = state.max_steps if self.schedule is None else min(state.max_steps, self.schedule.end_step())
        if state.global_step % self.every_steps and state.global_step < last:
            return
        self._measure(state, model)
        if self.schedule is not None:
            self._anneal(args, state, control)
            return
        values = [point["kl"] for point in self.curve(state.log_history)]
        if self.patience is not None and plateaued(values, self.patience, self.min_delta):
            if state.is_world_process_zero:
                logger.info(
                    "held-out KL stopped falling (%d measurements without a %.1f%% fall below %.5f): stopping at "
                    "step %d", self.patience, 100 * self.min_delta, min(values), state.global_step,
                )  # fmt: skip
            control.should_training_stop = True
            # a checkpoint at the stop: a crash before the stage is saved resumes here, not a save interval earlier
            control.should_save = control.should_save or args.save_strategy != "no"

    def _anneal(self, args, state, control):
        schedule = self.schedule
        if schedule.plateau_step is None:
            schedule.plateau_step = self._plateau_step(self.curve(state.log_history))
            if schedule.plateau_step is not None and state.is_world_process_zero:
                logger.info(
                    "held-out KL stopped falling (%d measurements without a %.1f%% fall) at step %d: annealing the "
                    "learning rate to 0 by step %d", self.patience, 100 * self.min_delta, state.global_step,
                    schedule.end_step(),
                )  # fmt: skip
        if state.global_step >= schedule.end_step() and state.global_step < state.max_steps:
            control.should_training_stop = True
            control.should_save = control.should_save or args.save_strategy != "no"

    @staticmethod
    def curve(log_history: list[dict]) -> list[dict]:
        """The held-out KL points of a Trainer ``log_history``: ``{"step", "tokens", "kl"}`` each."""
        return [
            {"step": entry["step"], "tokens": entry[f"{KL_KEY}_tokens"], "kl": entry[KL_KEY]}
            for entry in log_history
            if KL_KEY in entry
        ]


def split_heldout(dataset, count: int):
    """``(train, held_out)``: ``count`` blocks of ``dataset`` spread evenly over it (not its tail, which packs the
    last files in path order) held out, the rest kept for training.

    Example:
        >>> from datasets import Dataset
        >>> train, held = split_heldout(Dataset.from_dict({"input_ids": [[i] for i in range(10)]}), 2)
        >>> held[:]["input_ids"], len(train)
        ([[4], [9]], 8)
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"`count` must be an int >= 1, got {count!r}.")
    if len(dataset) <= count:
        raise ValueError(
            f"The training data has {len(dataset)} blocks, too few to hold out {count} for the held-out KL; give an "
            "`eval_dataset` or lower `kl_eval_blocks`."
        )
    stride = len(dataset) // count
    held = [stride * (i + 1) - 1 for i in range(count)]
    chosen = set(held)
    return dataset.select([i for i in range(len(dataset)) if i not in chosen]), dataset.select(held)


__all__ = ["HeldOutKLCallback", "KL_KEY", "PlateauAnnealSchedule", "heldout_kl", "plateaued", "split_heldout"]
