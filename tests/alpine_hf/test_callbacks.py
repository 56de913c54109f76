"""Fine-tuning ALPINE models with a stock ``Trainer``: stats callback, checkpoints with remote code, resume."""

import os

import datasets
import pytest
import torch
from alpine_testing import make_batch, tiny_config
from transformers import Trainer, TrainingArguments

from alpine_hf import AlpineRobertaForSequenceClassification
from alpine_hf.callbacks import AlpineStatsCallback


def tiny_dataset(n=32):
    input_ids, mask = make_batch("roberta", [24 - (i % 9) for i in range(n)], seed=11)
    labels = [i % 2 for i in range(n)]
    # a learnable task: label-1 sequences use the upper half of the vocabulary
    body = (input_ids > 2) & mask.bool()
    input_ids[1::2] = torch.where(body[1::2], 50 + input_ids[1::2] % 49, input_ids[1::2])
    input_ids[0::2] = torch.where(body[0::2], 5 + input_ids[0::2] % 45, input_ids[0::2])
    return datasets.Dataset.from_dict(
        {"input_ids": input_ids.tolist(), "attention_mask": mask.tolist(), "labels": labels}
    )


def make_trainer(output_dir, max_steps, **kwargs):
    torch.manual_seed(0)
    model = AlpineRobertaForSequenceClassification(tiny_config("roberta", alpine_layers="all", alpine_alpha=0.8))
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        max_steps=max_steps,
        logging_steps=2,
        save_steps=4,
        learning_rate=1e-3,
        report_to=[],
        seed=0,
        data_seed=0,
        use_cpu=True,
        disable_tqdm=True,
        **kwargs,
    )
    return Trainer(model=model, args=args, train_dataset=tiny_dataset(), callbacks=[AlpineStatsCallback()])


def test_stats_callback_logs_kept_lengths_and_flops_ratio(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "alpine/flops_ratio" in entry]
    assert len(logged) == 2
    entry = logged[-1]
    kept = [entry[f"alpine/kept_len_layer_{i}"] for i in range(4)]
    assert all(later <= earlier for earlier, later in zip(kept, kept[1:]))
    assert kept[-1] < entry["alpine/input_len"]
    assert entry["alpine/flops_ratio"] > 1.0


def test_trainer_checkpoints_carry_remote_code_and_resume(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=8)
    trainer.train()
    checkpoint = tmp_path / "checkpoint-4"
    assert {"modeling_alpine.py", "configuration_alpine.py", "model.safetensors"} <= set(os.listdir(checkpoint))
    final = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    resumed = make_trainer(tmp_path, max_steps=8)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final[key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize("merge", [True, False])
def test_training_reduces_loss(tmp_path, merge):
    trainer = make_trainer(tmp_path, max_steps=12)
    trainer.model.config.alpine_merge = merge
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] and result.training_loss > 0
