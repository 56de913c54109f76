"""Fine-tuning ALPINE models with a stock ``Trainer``: stats and distillation callbacks, checkpoints with remote code,
resume."""

import os

import datasets
import pytest
import torch
from alpine_testing import make_batch, tiny_config
from transformers import Trainer, TrainingArguments

from alpine_hf import AlpineRobertaForSequenceClassification
from alpine_hf.callbacks import AlpineDistillationCallback, AlpineStatsCallback


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


def make_trainer(output_dir, max_steps, callbacks=(), **kwargs):
    torch.manual_seed(0)
    model = AlpineRobertaForSequenceClassification(tiny_config("roberta", alpine_layers="all", alpine_alpha=0.8))
    settings = dict(
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
    )
    args = TrainingArguments(**{**settings, **kwargs})
    return Trainer(model=model, args=args, train_dataset=tiny_dataset(), callbacks=[AlpineStatsCallback(), *callbacks])


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


# -- distillation from an unpruned teacher ----------------------------------------------------------------------------


def make_teacher():
    """An unpruned tiny classifier with confident predictions (class 1, logit margin ~2.8) that the balanced labels do
    not explain, so the task loss alone does not lead the student to it."""
    torch.manual_seed(1)
    teacher = AlpineRobertaForSequenceClassification(tiny_config("roberta", alpine_layers="none")).eval()
    with torch.no_grad():
        teacher.classifier.dense.weight.mul_(30)
        teacher.classifier.out_proj.weight.mul_(25)
    return teacher


def kl_to_teacher(teacher, model) -> float:
    data = tiny_dataset()
    inputs = {"input_ids": torch.tensor(data["input_ids"]), "attention_mask": torch.tensor(data["attention_mask"])}
    model.eval()
    with torch.no_grad():
        log_t = torch.log_softmax(teacher(**inputs).logits, -1)
        log_s = torch.log_softmax(model(**inputs).logits, -1)
    return float((log_t.exp() * (log_t - log_s)).sum(-1).mean())


def test_distillation_brings_the_pruned_student_closer_to_the_teacher(tmp_path):
    teacher = make_teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    plain = make_trainer(tmp_path / "plain", max_steps=8, learning_rate=1e-2)
    plain.train()
    callback = AlpineDistillationCallback(teacher, temperature=2.0, kl_weight=0.5)
    distilled = make_trainer(tmp_path / "distilled", max_steps=8, learning_rate=1e-2, callbacks=[callback])
    distilled.train()
    # the same student, seed, data and steps: only the loss differs (measured here: 0.05 against 0.41)
    kl_plain, kl_distilled = kl_to_teacher(teacher, plain.model), kl_to_teacher(teacher, distilled.model)
    assert kl_distilled < 0.5 * kl_plain, (kl_distilled, kl_plain)
    logged = [entry for entry in distilled.state.log_history if "distill/kl" in entry]
    assert len(logged) == 4 and logged[-1]["distill/kl"] < logged[0]["distill/kl"] and logged[0]["distill/task"] > 0
    # the teacher is untouched, the hook is gone, and the checkpoint is a plain ALPINE model
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not distilled.model._forward_hooks
    fresh_keys = set(AlpineRobertaForSequenceClassification(distilled.model.config).state_dict())
    assert set(distilled.model.state_dict()) == fresh_keys
    checkpoint = tmp_path / "distilled" / "checkpoint-8"
    reloaded = AlpineRobertaForSequenceClassification.from_pretrained(checkpoint).eval()
    assert kl_to_teacher(teacher, reloaded) == pytest.approx(kl_distilled, abs=1e-6)


def test_distillation_loss_is_the_documented_mix(tmp_path):
    """One training forward: (1 - w) * task + w * T^2 * KL(teacher || student), with the teacher on the same inputs."""
    teacher = make_teacher()
    trainer = make_trainer(tmp_path, max_steps=1)
    callback = AlpineDistillationCallback(teacher, temperature=3.0, kl_weight=0.25)
    callback.on_train_begin(trainer.args, trainer.state, trainer.control, model=trainer.model)
    batch = tiny_dataset(8)
    inputs = {name: torch.tensor(batch[name]) for name in ("input_ids", "attention_mask", "labels")}
    model = trainer.model.train()
    got = model(**inputs)
    callback.on_train_end(trainer.args, trainer.state, trainer.control)
    plain = model(**inputs)  # hook removed: the task loss alone
    with torch.no_grad():
        log_t = torch.log_softmax(teacher(inputs["input_ids"], inputs["attention_mask"]).logits / 3.0, -1)
    log_s = torch.log_softmax(plain.logits / 3.0, -1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1).mean()
    torch.testing.assert_close(got.loss, 0.75 * plain.loss + 0.25 * 9.0 * kl)
    assert got.loss.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0}, r"`temperature` must be > 0 .*got 0"),
        ({"kl_weight": 1.5}, r"`kl_weight` must be in \[0, 1\] .*got 1.5"),
        ({"kl_weight": -0.1}, r"`kl_weight` must be in \[0, 1\] .*got -0.1"),
    ],
)
def test_distillation_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlpineDistillationCallback(make_teacher(), **kwargs)


def test_distillation_without_labels_names_the_fix(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    callback = AlpineDistillationCallback(make_teacher(), kl_weight=0.5)
    callback.on_train_begin(trainer.args, trainer.state, trainer.control, model=trainer.model)
    input_ids, mask = make_batch("roberta", [12, 9])
    with pytest.raises(ValueError, match=r"no task loss .*`labels`.*`kl_weight=1.0`"):
        trainer.model.train()(input_ids=input_ids, attention_mask=mask)
    callback.kl_weight = 1.0  # the teacher alone needs no labels
    assert float(trainer.model(input_ids=input_ids, attention_mask=mask).loss.detach()) > 0


def test_masked_lm_distils_the_surviving_rows_against_the_teacher_rows_they_came_from(tmp_path):
    from alpine_hf import AlpineRobertaForMaskedLM

    torch.manual_seed(0)
    teacher = AlpineRobertaForMaskedLM(tiny_config("roberta", alpine_layers="none")).eval()
    with torch.no_grad():  # peaked token distributions, so that pruning visibly moves them
        teacher.lm_head.dense.weight.mul_(30)
        teacher.lm_head.decoder.weight.mul_(50)
    student = AlpineRobertaForMaskedLM(tiny_config("roberta", alpine_layers="all", alpine_alpha=1.0))
    student.load_state_dict(teacher.state_dict())
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    callback = AlpineDistillationCallback(teacher, temperature=1.0, kl_weight=1.0)
    callback.on_train_begin(args, None, None, model=student)
    input_ids, mask = make_batch("roberta", [24, 17], seed=5)
    pruned = student.train()(input_ids=input_ids, attention_mask=mask)
    assert pruned.logits.shape[1] < 24 and pruned.loss.requires_grad
    with torch.no_grad():
        teacher_logits = teacher(input_ids=input_ids, attention_mask=mask).logits
    terms = []
    for row, positions in enumerate(pruned.token_positions.tolist()):
        for slot, position in enumerate(positions):
            if position >= 0:  # a surviving input row (merged and pad rows have -1)
                log_t = torch.log_softmax(teacher_logits[row, position], -1)
                log_s = torch.log_softmax(pruned.logits[row, slot].detach(), -1)
                terms.append((log_t.exp() * (log_t - log_s)).sum())
    assert len(terms) < int(mask.sum())
    torch.testing.assert_close(pruned.loss.detach(), torch.stack(terms).mean())
    student.config.alpine_layers = "none"  # the same weights without pruning: every row matches its teacher row
    assert float(student(input_ids=input_ids, attention_mask=mask).loss.detach()) == pytest.approx(0.0, abs=1e-6)
    callback.on_train_end(args, None, None)
