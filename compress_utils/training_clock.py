"""Training time that survives a resume: a run stopped and resumed from its checkpoint reports its whole training
time, not only the part since the resume (which would make a resumed run look several times faster).

Example:
    >>> from compress_utils.training_clock import TrainingClockCallback
    >>> clock = TrainingClockCallback()
    >>> clock.seconds is None  # nothing trained yet
    True
"""

from __future__ import annotations

import json
import logging
import os
import time

from transformers import TrainerCallback

from .io import atomic_write_text

logger = logging.getLogger(__name__)

CLOCK_FILE = "training_clock.json"


class TrainingClockCallback(TrainerCallback):
    """Wall-clock seconds of training summed over the process that started it and every process that resumed it.

    Each checkpoint gets a ``training_clock.json`` with the seconds spent up to it; a resumed run starts its clock
    from that of the checkpoint it resumed. A checkpoint written without this callback has no clock: then
    ``seconds`` stays None (unknown), never a partial figure.

    Example:
        >>> clock = TrainingClockCallback()
        >>> trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[clock])  # doctest: +SKIP
        >>> trainer.train(resume_from_checkpoint=True)  # doctest: +SKIP
        >>> clock.seconds  # doctest: +SKIP
        1843.2
    """

    def __init__(self):
        self.seconds: float | None = None
        self._before: float | None = 0.0
        self._started: float | None = None

    def _elapsed(self) -> float | None:
        if self._before is None or self._started is None:
            return None
        return self._before + time.perf_counter() - self._started

    def on_train_begin(self, args, state, control, **kwargs):
        self._before = 0.0
        if state.global_step > 0:  # resumed: the Trainer has loaded the checkpoint's state before this event
            path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", CLOCK_FILE)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    self._before = float(json.load(handle)["train_seconds"])
            else:
                logger.warning("Resumed from a checkpoint without %s: the run's training time is unknown.", CLOCK_FILE)
                self._before = None
        self._started = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        elapsed = self._elapsed()
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if elapsed is not None and state.is_world_process_zero and os.path.isdir(folder):
            atomic_write_text(os.path.join(folder, CLOCK_FILE), json.dumps({"train_seconds": elapsed}) + "\n")

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = self._elapsed()


__all__ = ["CLOCK_FILE", "TrainingClockCallback"]
