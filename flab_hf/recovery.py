"""Performance recovery (paper Sec. 3.5, Algorithm 3): teacher-verified training data and LoRA fine-tuning."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field

import torch

from compress_utils.allocator import allocator_hint

from .answers import generate_completions
from .callbacks import EmissionsCallback, LoRARecoveryCallback, check_emissions_country
from .data import function_body, run_tests, sample_program

logger = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class RecoveryConfig:
    """LoRA recovery settings (paper Sec. 4.5: lr 5e-4, rank 64, alpha 32).

    Example:
        >>> RecoveryConfig(epochs=1).lora_r
        64
    """

    lora_r: int = field(default=64, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    target_modules: tuple[str, ...] = field(default=LORA_TARGETS, metadata={"help": "All linear projections."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Learning rate."})
    epochs: float = field(default=2.0, metadata={"help": "Training epochs."})
    batch_size: int = field(default=4, metadata={"help": "Training batch size."})
    max_length: int = field(default=384, metadata={"help": "Longest training sample in tokens (longer are cut)."})
    seed: int = field(default=0, metadata={"help": "Training seed."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    checkpoint_dir: str | None = field(
        default=None,
        metadata={
            "help": "Trainer checkpoints (LoRA adapter + optimizer state) go here every `save_steps` and training "
            "resumes from the last one; None = no checkpoints."
        },
    )
    save_steps: int = field(default=50, metadata={"help": "Checkpoint interval in steps (with `checkpoint_dir`)."})
    track_emissions: str | None = field(
        default=None,
        metadata={"help": "ISO country code of the grid (e.g. 'FRA') to record CO2 with codecarbon; None = off."},
    )

    def __post_init__(self):
        for name in ("lora_r", "lora_alpha", "batch_size", "max_length", "save_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"`lora_dropout` must be in [0, 1), got {self.lora_dropout!r}.")
        if not self.learning_rate > 0 or not self.epochs > 0:
            raise ValueError(f"`learning_rate` and `epochs` must be > 0, got {self.learning_rate!r}, {self.epochs!r}.")
        if self.track_emissions is not None:
            self.track_emissions = check_emissions_country(self.track_emissions)


def teacher_verified_samples(dense_model, tokenizer, samples: list[dict], max_new_tokens: int = 160,
                             batch_size: int = 8, timeout: float = 10.0, progress: bool = True):  # fmt: skip
    """Algorithm 3: generate each sample's body with the dense model; if it passes the sample's tests (run in a
    subprocess with a timeout) it replaces the reference. Samples without tests (``test`` None or missing) keep
    their reference and cost no generation. Returns ``(samples with "target" and "source", stats)``."""
    tested = [sample for sample in samples if sample.get("test")]
    completions = generate_completions(
        dense_model, tokenizer, [s["prompt"] for s in tested], max_new_tokens, batch_size, progress=progress,
        desc="flab: teacher generation",
    ) if tested else []  # fmt: skip
    bodies = {id(sample): function_body(completion) for sample, completion in zip(tested, completions)}
    out, replaced = [], 0
    for sample in samples:
        body = bodies.get(id(sample), "")
        passed = bool(body.strip()) and run_tests(sample_program(sample, body), timeout=timeout)
        replaced += passed
        out.append(
            {
                **sample,
                "target": body if passed else sample["reference"],
                "source": "teacher" if passed else "reference",
            }
        )
    stats = {"samples": len(samples), "with_tests": len(tested), "teacher_passed": replaced,
             "teacher_pass_rate": replaced / max(len(tested), 1)}  # fmt: skip
    logger.info("teacher-verified data: %d of %d references replaced by dense-model code", replaced, len(samples))
    return out, stats


def tokenize_samples(tokenizer, samples: list[dict], max_length: int) -> list[dict]:
    """Causal-LM features: loss only on the target (prompt tokens are labelled -100)."""
    features = []
    for sample in samples:
        prompt = tokenizer(sample["prompt"], add_special_tokens=False)["input_ids"]
        target = tokenizer(sample["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (prompt + target)[:max_length]
        labels = ([-100] * len(prompt) + target)[:max_length]
        features.append({"input_ids": ids, "labels": labels})
    return features


def _collate(pad_id: int):
    def collate(features):
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            ids[row, :n] = torch.tensor(feature["input_ids"])
            labels[row, :n] = torch.tensor(feature["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def lora_recover(pruned_model, tokenizer, train_samples: list[dict], config: RecoveryConfig | None = None,
                 dense_model=None, eval_ids=None, kept_token_ids=None, output_dir=None):  # fmt: skip
    """LoRA-fine-tune ``pruned_model`` on samples with ``prompt``/``target`` and return ``(merged model, log)``.

    With ``dense_model`` and ``eval_ids`` the :class:`LoRARecoveryCallback` reports KL to the dense model each
    epoch; the merged model is saved to ``output_dir`` (pruned format, with ``tokenizer``) when given.

    With ``config.checkpoint_dir`` the Trainer writes ``checkpoint-N`` folders there: a peft checkpoint holds the
    LoRA adapter only (``adapter_model.safetensors`` + ``adapter_config.json``, naming the pruned base model) plus
    optimizer, scheduler and RNG state; a new call with the same ``checkpoint_dir`` resumes from the last one. Runs
    unchanged under ``accelerate launch`` (DDP); only the main process merges and saves, every process returns the
    same merged model.

    Example:
        >>> recovered, log = lora_recover(pruned, pruned_tokenizer, samples, RecoveryConfig(epochs=1))  # doctest: +SKIP
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ImportError("LoRA recovery needs peft: pip install 'peft>=0.17'") from error
    from transformers import Trainer, TrainingArguments

    config = config or RecoveryConfig()
    if not train_samples:
        raise ValueError("`train_samples` is empty; recovery needs at least one training sample.")
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules), task_type="CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(pruned_model, lora)
    features = tokenize_samples(tokenizer, train_samples, config.max_length)
    evaluate = dense_model is not None and eval_ids is not None
    callback = LoRARecoveryCallback(dense_model, eval_ids, kept_token_ids, output_dir, tokenizer) if evaluate else None
    emissions = EmissionsCallback(config.track_emissions) if config.track_emissions else None
    checkpoints = config.checkpoint_dir
    with tempfile.TemporaryDirectory(prefix="flab-lora-") as scratch:
        args = TrainingArguments(
            output_dir=checkpoints or scratch, per_device_train_batch_size=config.batch_size,
            num_train_epochs=config.epochs, learning_rate=config.learning_rate, logging_steps=1,
            save_strategy="steps" if checkpoints else "no", save_steps=config.save_steps, report_to=[],
            eval_strategy="epoch" if evaluate else "no", per_device_eval_batch_size=config.batch_size,
            seed=config.seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=not config.progress,
            dataloader_num_workers=0, remove_unused_columns=False,
        )  # fmt: skip
        trainer = Trainer(
            model=model, args=args, train_dataset=features, eval_dataset=features[: max(1, len(features) // 4)] if evaluate else None,
            data_collator=_collate(tokenizer.pad_token_id),
            callbacks=[c for c in (callback, emissions) if c is not None] or None,
        )  # fmt: skip
        if evaluate:
            kl_before = callback.kl_to_dense(model)
        resume = None
        if checkpoints and os.path.isdir(checkpoints):
            from transformers.trainer_utils import get_last_checkpoint

            resume = get_last_checkpoint(checkpoints)
        allocator_hint(trainer.args.device)
        trainer.train(resume_from_checkpoint=resume)
        # the main process merges and saves in `on_train_end`; the others wait so that the save is complete for all
        trainer.accelerator.wait_for_everyone()
    merged = callback.merged_model if callback and callback.merged_model is not None else model.merge_and_unload()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    log = {"train_losses": losses, "steps": trainer.state.global_step, "resumed_from": resume}
    if emissions is not None:
        log["emissions"] = emissions.emissions
    if evaluate:
        log["kl_before"] = kl_before
        log["kl_history"] = callback.history
    return merged.eval(), log


__all__ = [
    "LORA_TARGETS",
    "RecoveryConfig",
    "generate_completions",
    "lora_recover",
    "teacher_verified_samples",
    "tokenize_samples",
]  # fmt: skip
