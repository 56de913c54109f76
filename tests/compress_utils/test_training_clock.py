import json
import time
from types import SimpleNamespace

from compress_utils.training_clock import CLOCK_FILE, TrainingClockCallback


def _state(step):
    return SimpleNamespace(global_step=step, is_world_process_zero=True)


def test_resumed_run_counts_the_time_before_its_resume(tmp_path):
    args = SimpleNamespace(output_dir=str(tmp_path))
    first = TrainingClockCallback()
    first.on_train_begin(args, _state(0), None)
    time.sleep(0.05)
    (tmp_path / "checkpoint-2").mkdir()
    first.on_save(args, _state(2), None)
    saved = json.loads((tmp_path / "checkpoint-2" / CLOCK_FILE).read_text())["train_seconds"]
    assert saved >= 0.05
    # the process dies; a new one resumes from checkpoint-2 and trains a little more
    resumed = TrainingClockCallback()
    resumed.on_train_begin(args, _state(2), None)
    time.sleep(0.02)
    resumed.on_train_end(args, _state(4), None)
    assert resumed.seconds >= saved + 0.02
    assert resumed.seconds < saved + 5.0  # not the time since some other origin


def test_checkpoint_without_a_clock_gives_unknown_time_not_a_partial_one(tmp_path):
    args = SimpleNamespace(output_dir=str(tmp_path))
    (tmp_path / "checkpoint-3").mkdir()
    clock = TrainingClockCallback()
    clock.on_train_begin(args, _state(3), None)
    clock.on_save(args, _state(5), None)  # no folder checkpoint-5 and no clock: nothing written
    clock.on_train_end(args, _state(5), None)
    assert clock.seconds is None
    assert not (tmp_path / "checkpoint-5").exists()
