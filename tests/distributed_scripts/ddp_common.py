"""Shared by the scripts ``tests/test_distributed.py`` launches with ``accelerate launch --num_processes 2``.

Each process writes ``<out>/<name>-rank<r>.json``: its rank, the world size it saw, a digest of its final weights and
whatever the script measured; the test compares the files of both ranks.
"""

import hashlib
import json
import os
import sys

import torch
from transformers import TrainerCallback

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def use_test_helpers(package: str) -> None:
    """Make ``tests/<package>`` importable (tiny model builders such as ``flab_testing``)."""
    sys.path.insert(0, os.path.join(TESTS, package))


def digest(module) -> str:
    """SHA-256 of every tensor of ``module.state_dict()`` (names, dtypes, shapes and bytes), in name order."""
    hasher = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        hasher.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return hasher.hexdigest()


def world() -> dict:
    """Rank and world size as torch.distributed sees them (1 process: rank 0 of 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return {
            "rank": torch.distributed.get_rank(),
            "world_size": torch.distributed.get_world_size(),
            "backend": torch.distributed.get_backend(),
        }
    return {"rank": 0, "world_size": 1, "backend": None}


def write(out_dir: str, name: str, payload: dict) -> None:
    info = world()
    with open(os.path.join(out_dir, f"{name}-rank{info['rank']}.json"), "w") as handle:
        json.dump({**info, **payload}, handle, indent=2, default=str)


class Recorder(TrainerCallback):
    """What a Trainer did on this process: world size, loss history, digest of the trained weights, the model."""

    def __init__(self):
        self.result = {}
        self.model = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model
        self.result = {
            "trainer_world_size": args.world_size,
            "losses": [entry["loss"] for entry in state.log_history if "loss" in entry],
            "steps": state.global_step,
            "digest": digest(model),
        }
