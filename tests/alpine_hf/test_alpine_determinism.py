"""Reproducibility of ALPINE training: the pruning decisions are discrete, so any difference in the scores could
flip a token and send two runs apart. Two trainings with the same seed give identical weights and kept lengths, with
1 and with 2 threads; the forward pass (scores, decisions, loss) is also identical between 1 and 2 threads.

Weights after training differ between 1 and 2 threads, for the stock model too (ALPINE off): PyTorch's CPU
backward reduces in an order that depends on the thread count (measured: the first forward's loss is bit-identical,
the digests after 8 AdamW steps differ, with or without ``torch.use_deterministic_algorithms``)."""

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, json, sys
import torch
sys.path.insert(0, sys.argv[2])
from alpine_testing import make_batch, tiny_config
from alpine_hf import AlpineRobertaForSequenceClassification

torch.set_num_threads(int(sys.argv[1]))


def train():
    torch.manual_seed(0)
    model = AlpineRobertaForSequenceClassification(
        tiny_config("roberta", num_labels=2, alpine_layers="all", alpine_alpha=0.5, hidden_dropout_prob=0.1)
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for step in range(8):
        ids, mask = make_batch("roberta", [40, 33, 57, 21, 64, 48, 12, 60], seed=step, pair_at=10)
        labels = torch.tensor([step % 2, 1, 0, 1, 0, 0, 1, step % 2])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if first is None:
            first = {"loss": float(loss).hex(), "kept": model.roberta.alpine_stats["kept_tokens"].tolist()}
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    return {"digest": digest, "kept": model.roberta.alpine_stats["kept_tokens"].tolist(), "first": first}


print(json.dumps([train(), train()]))  # two trainings in one process
"""


def _train_twice(threads: int, helpers: str) -> list[dict]:
    # a fresh process per run: the thread count is fixed before torch starts any pool
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads), helpers], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def helpers():
    from pathlib import Path

    return str(Path(__file__).parent)


def test_same_seed_gives_identical_weights_and_kept_lengths_with_1_and_2_threads(helpers):
    one, two = _train_twice(1, helpers), _train_twice(2, helpers)
    assert one[0] == one[1] and two[0] == two[1]  # two trainings, same seed, same thread count: identical
    assert one[0]["first"] == two[0]["first"]  # the forward pass does not depend on the thread count
    kept = one[0]["kept"]
    assert len(kept) == 4 and all(b < a for a, b in zip(kept, kept[1:]))  # every layer really pruned tokens
