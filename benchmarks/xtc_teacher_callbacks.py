# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``TrainerCallback``s of the teacher training: a progress bar counted in tokens and a learning curve.

The learning curve pairs the training loss with held-out line-completion EM/ES (:mod:`benchmarks.xtc_eval`) against
the tokens seen. Its points go into the Trainer's ``log_history``, so every checkpoint carries the curve so far and a
resumed run continues it instead of starting a new one.

Example:
    >>> from benchmarks.xtc_teacher_callbacks import TeacherCurveCallback
    >>> TeacherCurveCallback.curve([{"step": 0, "curve_tokens": 0, "curve_em": 0.0, "curve_es": 12.5}])
    [{'tokens': 0, 'step': 0, 'train_loss': None, 'em': 0.0, 'es': 12.5}]
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

CURVE_KEY = "curve_tokens"  # marks the learning-curve entries in the Trainer's log history
# curve keys of a distilled teacher -> the DistillationCallback's log names
DISTILL_LOGS = {"train_kl": "distill/kl", "train_ce": "distill/task"}


class TokenProgressCallback(TrainerCallback):
    """A ``tqdm`` bar of training tokens (not steps): the budget is counted in tokens, so the bar is too.

    A resumed run starts the bar at the tokens already seen; the postfix shows the last logged training loss. Only
    the main process draws it, and ``enabled=False`` keeps it quiet.

    Example:
        >>> TokenProgressCallback(tokens_per_step=2048, enabled=False).tokens_per_step
        2048
    """

    def __init__(self, tokens_per_step: int, enabled: bool = True):
        if isinstance(tokens_per_step, bool) or not isinstance(tokens_per_step, int) or tokens_per_step < 1:
            raise ValueError(f"`tokens_per_step` must be an int >= 1, got {tokens_per_step!r}.")
        self.tokens_per_step = tokens_per_step
        self.enabled = enabled
        self._bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.enabled or not state.is_world_process_zero:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=state.max_steps * self.tokens_per_step, initial=state.global_step * self.tokens_per_step,
            unit="tok", unit_scale=True, desc="teacher", dynamic_ncols=True,
        )  # fmt: skip

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(self.tokens_per_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._bar is not None and logs and "loss" in logs:
            self._bar.set_postfix(loss=f"{logs['loss']:.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TeacherCurveCallback(TrainerCallback):
    """Record a learning curve: training loss and held-out line-completion EM/ES every ``every_steps`` steps.

    A point is measured before the first step (tokens 0), every ``every_steps`` steps and at the last step (also when
    a time budget stops the run early). At a curve step the callback asks the Trainer to log, then, when that log
    arrives, completes ``samples`` with the model being trained (greedy, eval mode, no gradient: the training itself is
    unchanged) and adds ``curve_tokens``, ``curve_em``, ``curve_es`` to the log entry; ``train_loss`` is the Trainer's
    logged training loss at that step. :meth:`curve` reads the points back from any ``log_history``.

    Args:
        tokenizer: the model's tokenizer.
        samples: ``{"prompt", "target"}`` held-out samples (:func:`benchmarks.xtc_eval.line_completion_samples`);
            empty = a loss-only curve.
        every_steps: the interval in optimizer steps.
        tokens_per_step: training tokens per optimizer step, for the x axis.
        max_new_tokens: the longest completion generated per sample (``None``: 48, at most half of ``positions``).
        positions: the training block length: prompt and completion stay within the positions the model learns
            (``None``: its ``n_positions``).

    Example:
        >>> callback = TeacherCurveCallback(tokenizer, samples, every_steps=100, tokens_per_step=2048)  # doctest: +SKIP
    """

    def __init__(
        self, tokenizer, samples, every_steps: int, tokens_per_step: int, max_new_tokens: int | None = None,
        positions: int | None = None,
    ):  # fmt: skip
        for name, value in (("every_steps", every_steps), ("tokens_per_step", tokens_per_step),
                            ("max_new_tokens", 48 if max_new_tokens is None else max_new_tokens)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        self.tokenizer = tokenizer
        self.samples = list(samples or [])
        self.every_steps = every_steps
        self.tokens_per_step = tokens_per_step
        self.max_new_tokens = max_new_tokens
        self.positions = positions

    def _scores(self, model) -> dict:
        if not self.samples:
            return {}
        from .xtc_eval import evaluate_line_completion

        was_training = model.training
        try:
            # shard=False: the teacher trains in one process; each point scores every sample
            scores = evaluate_line_completion(model, self.tokenizer, self.samples, max_new_tokens=self.max_new_tokens,
                                              progress=False, shard=False, positions=self.positions)  # fmt: skip
        finally:
            model.train(was_training)
        return {"curve_em": scores["em"], "curve_es": scores["es"]}

    def _measured(self, state) -> bool:
        return any(CURVE_KEY in entry and entry.get("step") == state.global_step for entry in state.log_history)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None or any(CURVE_KEY in entry for entry in state.log_history):
            return  # a resumed run: its checkpoint carries the points so far
        point = {"step": state.global_step, CURVE_KEY: state.global_step * self.tokens_per_step, **self._scores(model)}
        state.log_history.append(point)
        logger.info("learning curve at %d tokens: %s", point[CURVE_KEY], point)

    def on_step_end(self, args, state, control, **kwargs):
        due = state.global_step % self.every_steps == 0 or state.global_step >= state.max_steps
        if due or control.should_training_stop:
            control.should_log = True  # the point is measured in on_log, where the step's training loss is known

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        due = state.global_step % self.every_steps == 0 or state.global_step >= state.max_steps
        if model is None or logs is None or "loss" not in logs or self._measured(state):
            return
        if not (due or control.should_training_stop):
            return
        point = {CURVE_KEY: state.global_step * self.tokens_per_step, **self._scores(model)}
        logs.update(point)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(point)  # the Trainer appended its copy of `logs` before calling us
        logger.info("learning curve at %d tokens: loss %.4f %s", point[CURVE_KEY], logs["loss"],
                    {k: round(v, 2) for k, v in point.items() if k != CURVE_KEY})  # fmt: skip

    @staticmethod
    def curve(log_history: list[dict]) -> list[dict]:
        """The curve points of a Trainer ``log_history``: ``{"tokens", "step", "train_loss", "em", "es"}`` each
        (``em``/``es`` absent for a loss-only curve; ``train_loss`` is ``None`` before the first step). A distilled
        teacher's points also hold ``train_kl`` and ``train_ce`` (the KL to the source model and the cross-entropy on
        the text: its ``train_loss`` mixes the two, so ``train_ce`` is what compares with a teacher trained on the
        text alone)."""
        points = []
        for entry in log_history:
            if CURVE_KEY not in entry:
                continue
            point = {"tokens": entry[CURVE_KEY], "step": entry["step"], "train_loss": entry.get("loss")}
            point.update({key: entry[f"curve_{key}"] for key in ("em", "es") if f"curve_{key}" in entry})
            point.update({key: entry[name] for key, name in DISTILL_LOGS.items() if name in entry})
            points.append(point)
        return points


__all__ = ["CURVE_KEY", "DISTILL_LOGS", "TeacherCurveCallback", "TokenProgressCallback"]
