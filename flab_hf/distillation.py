# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Recovery by distillation: the dense model teaches the pruned one its next-token distributions, in a stock
``Trainer``.

The loss is ``kl_weight * T^2 * KL(P_dense || P_pruned) + (1 - kl_weight) * CE`` per token, where ``P_dense`` is the
dense model's distribution restricted to the kept vocabulary and renormalised (the pruned model cannot predict a
removed token, and the dense logits of the kept tokens are what vocabulary pruning leaves unchanged). The dense model
reads the same text as the student: the student's ids mapped back to the original vocabulary.

Example:
    >>> from flab_hf.distillation import DistillationConfig, distill_recover
    >>> blocks = distillation_blocks(pruned_tokenizer, code, chat, block_size=256, tokens=1_000_000)["blocks"]  # doctest: +SKIP
    >>> recovered, log = distill_recover(pruned, pruned_tokenizer, dense, blocks, kept_token_ids=kept,
    ...                                  eval_ids=valid_ids, config=DistillationConfig())  # doctest: +SKIP
    >>> log["curve"][-1]["perplexity"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from compress_utils.capability import resolve_bf16
from compress_utils.distillation import DistillationCallback
from compress_utils.emissions import EmissionsCallback, check_emissions_country
from compress_utils.io import check_output_dir

from .quality import quality

logger = logging.getLogger(__name__)

CURVE_KEY = "recovery_tokens"  # marks the recovery-curve entries in the Trainer's log history


@dataclass
class DistillationConfig:
    """Settings of :func:`distill_recover` (the budget is counted in training tokens).

    Example:
        >>> DistillationConfig(train_tokens=2048, block_size=128, batch_size=4).steps()
        4
    """

    train_tokens: int = field(default=1_000_000, metadata={"help": "Training tokens (the budget); steps follow."})
    block_size: int = field(default=256, metadata={"help": "Tokens per training sequence."})
    batch_size: int = field(default=8, metadata={"help": "Sequences per step and process."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (cosine decay after warm-up)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of the steps with a linear warm-up."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of both distributions."})
    kl_weight: float = field(
        default=1.0, metadata={"help": "Weight of the KL term; the cross-entropy on the text gets 1 - kl_weight."}
    )
    hidden_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of intermediate-layer distillation: each kept layer's output against the dense layer it "
            "was (each position's squared error over its dense mean square, summed over layers); 0 = logits only."
        },
    )
    lora_r: int | None = field(
        default=None, metadata={"help": "LoRA rank (adapters merged at the end); None = full fine-tuning."}
    )
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (with `lora_r`)."})
    curve_every: int = field(
        default=100_000, metadata={"help": "Measure the recovery curve every this many training tokens."}
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 autocast; None = where bf16 products are fast here (capability probe)."},
    )
    seed: int = field(default=0, metadata={"help": "Training seed (data order, LoRA init)."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    checkpoint_dir: str | None = field(
        default=None,
        metadata={
            "help": "Trainer checkpoints go here every `save_steps` and training resumes from the last one (the "
            "recovery curve with it); None = no checkpoints."
        },
    )
    save_steps: int = field(default=50, metadata={"help": "Checkpoint interval in steps (with `checkpoint_dir`)."})
    track_emissions: str | None = field(
        default=None,
        metadata={"help": "ISO country code of the grid (e.g. 'FRA') to record CO2 with codecarbon; None = off."},
    )

    def __post_init__(self):
        for name in ("train_tokens", "block_size", "batch_size", "lora_alpha", "curve_every", "save_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if self.lora_r is not None and (isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int)
                                        or self.lora_r < 1):  # fmt: skip
            raise ValueError(f"`lora_r` must be an int >= 1 or None (full fine-tuning), got {self.lora_r!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate!r}.")
        if not 0 <= self.warmup_ratio < 1 or self.weight_decay < 0:
            raise ValueError(
                f"`warmup_ratio` must be in [0, 1) and `weight_decay` >= 0, got {self.warmup_ratio!r}, "
                f"{self.weight_decay!r}."
            )
        from compress_utils.distillation import check_distillation_settings

        check_distillation_settings(self.temperature, self.kl_weight, hidden_weight=self.hidden_weight)
        if self.track_emissions is not None:
            self.track_emissions = check_emissions_country(self.track_emissions)

    def steps(self, processes: int = 1) -> int:
        """Optimizer steps that cover ``train_tokens`` with ``processes`` data-parallel processes."""
        return max(1, math.ceil(self.train_tokens / (self.block_size * self.batch_size * processes)))


def hidden_layer_map(num_dense_layers: int, removed_layers=()) -> dict[int, int]:
    """``{pruned hidden index: dense hidden index}`` for intermediate-layer distillation after layer pruning.

    Kept layer ``j`` of the pruned model was dense layer ``kept[j]``, so its output (hidden state ``j + 1``) should
    reproduce the dense model's state ``kept[j] + 1``. The embedding output (the same in both) and the last state
    (Transformers returns it after the final norm; the logit term covers it) are not mapped.

    Example:
        >>> hidden_layer_map(5, removed_layers=[2])
        {1: 1, 2: 2, 3: 4}
    """
    removed = set(removed_layers)
    if not removed <= set(range(num_dense_layers)):
        raise ValueError(
            f"`removed_layers` {sorted(removed)} must be layer indices of the dense model (0 to "
            f"{num_dense_layers - 1})."
        )
    kept = [index for index in range(num_dense_layers) if index not in removed]
    return {position + 1: original + 1 for position, original in enumerate(kept[:-1])}


class FlabDistillationCallback(DistillationCallback):
    """Distil the dense model into a vocabulary-pruned one in a stock ``Trainer`` (causal LM, every token).

    The dense model reads ``kept_token_ids[input_ids]`` (the same text in its own vocabulary) and its logits are
    restricted to the kept ids; padded positions (``attention_mask`` 0) do not count, and with ``labels`` in the
    batch only the positions that predict a label other than -100 do (the prompt of an assistant-only batch).
    Everything else (a forward hook
    on the student, the teacher outside the checkpoint, ``distill/kl`` in the logs) is
    :class:`compress_utils.distillation.DistillationCallback`'s.

    Args:
        dense_model: the unpruned model.
        kept_token_ids: the original ids the pruned vocabulary keeps, in the pruned model's order; None when the
            vocabulary was not pruned.
        temperature: softmax temperature of both distributions.
        kl_weight: weight of the KL term; the student's own loss (cross-entropy on ``labels``) gets ``1 - kl_weight``.
        hidden_weight: weight of intermediate-layer distillation over ``layer_map`` (see :func:`hidden_layer_map`);
            0 = logits only.
        layer_map: ``{pruned hidden index: dense hidden index}``, needed when ``hidden_weight`` > 0.

    Example:
        >>> callback = FlabDistillationCallback(dense, kept_token_ids=kept, kl_weight=1.0)  # doctest: +SKIP
        >>> Trainer(model=pruned, args=args, train_dataset=blocks, callbacks=[callback]).train()  # doctest: +SKIP
    """

    teacher_inputs = ("input_ids", "attention_mask")
    # Llama/Qwen decoders hold the first position (an attention sink) up to 10^4 times larger than the others from the
    # middle layers on: one mean square over all positions would leave the others almost out of the hidden term
    hidden_per_token = True

    def __init__(self, dense_model, kept_token_ids=None, temperature: float = 1.0, kl_weight: float = 1.0,
                 hidden_weight: float = 0.0, layer_map: dict[int, int] | None = None):  # fmt: skip
        super().__init__(dense_model, temperature=temperature, kl_weight=kl_weight, hidden_weight=hidden_weight,
                         layer_map=layer_map)  # fmt: skip
        self.kept = None if kept_token_ids is None else torch.as_tensor(list(kept_token_ids), dtype=torch.long)

    def teacher_outputs(self, inputs: dict, output_hidden_states: bool = False):
        """The dense model's outputs on the student's text, its logits restricted to the kept vocabulary."""
        ids = inputs["input_ids"]
        if self.kept is not None:
            self.kept = self.kept.to(ids.device)
            ids = self.kept[ids]
        outputs = self.teacher(input_ids=ids, attention_mask=inputs.get("attention_mask"),
                               output_hidden_states=output_hidden_states)  # fmt: skip
        if self.kept is not None:
            outputs["logits"] = outputs.logits[..., self.kept]
        return outputs

    def align(self, outputs, teacher_logits: torch.Tensor, inputs: dict):
        mask = inputs.get("attention_mask")
        labels = inputs.get("labels")
        if labels is not None:  # row t predicts token t + 1; the last row predicts nothing in the block
            targets = torch.zeros_like(labels, dtype=torch.bool)
            targets[:, :-1] = labels[:, 1:] != -100
            mask = targets if mask is None else targets & mask.bool()
        return outputs.logits, teacher_logits, mask


class RecoveryCurveCallback(TrainerCallback):
    """Measure held-out perplexity, KL to the dense model and next-token agreement every ``every_steps`` steps.

    Each point goes into the Trainer's ``log_history`` (``recovery_tokens``, ``recovery_perplexity``,
    ``recovery_kl_to_dense``, ``recovery_next_token_agreement``), so checkpoints carry the curve and a resumed run
    continues it; :meth:`curve` reads it back. The first point is measured before the first step.

    Args:
        dense_model: the unpruned model.
        eval_ids: held-out windows in the *pruned* tokenizer's ids, shape ``(n, length)``.
        kept_token_ids: the original ids the pruned vocabulary keeps (None when it was not pruned).
        every_steps: the interval; the last step is always measured.
        tokens_per_step: training tokens per optimizer step (over every process), for the x axis.
    """

    def __init__(self, dense_model, eval_ids: torch.Tensor, kept_token_ids=None, every_steps: int = 50,
                 tokens_per_step: int = 1):  # fmt: skip
        self.dense_model = dense_model
        self.kept = None if kept_token_ids is None else torch.as_tensor(list(kept_token_ids), dtype=torch.long)
        self.eval_original = eval_ids if self.kept is None else self.kept[eval_ids]
        self.every_steps = every_steps
        self.tokens_per_step = tokens_per_step

    def _measure(self, state, model):
        measured = quality(model, self.dense_model, self.eval_original, self.kept)
        point = {"step": state.global_step, CURVE_KEY: state.global_step * self.tokens_per_step}
        point.update(
            {f"recovery_{key}": measured[key] for key in ("perplexity", "kl_to_dense", "next_token_agreement")}
        )
        point["recovery_dense_perplexity"] = measured["dense_perplexity"]
        state.log_history.append(point)
        logger.info(
            "recovery after %d tokens: perplexity %.3f (dense %.3f), KL %.4f, agreement %.3f", point[CURVE_KEY],
            measured["perplexity"], measured["dense_perplexity"], measured["kl_to_dense"],
            measured["next_token_agreement"],
        )  # fmt: skip

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and not any(CURVE_KEY in entry for entry in state.log_history):
            self._measure(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and (state.global_step % self.every_steps == 0 or state.global_step == state.max_steps):
            self._measure(state, model)
            control.should_save = control.should_save or bool(args.save_strategy != "no")

    @staticmethod
    def curve(log_history: list[dict]) -> list[dict]:
        """The curve points of a Trainer's ``log_history``, keys without the ``recovery_`` prefix."""
        points = [entry for entry in log_history if CURVE_KEY in entry]
        return [
            {"tokens": p[CURVE_KEY], "step": p["step"],
             **{k.removeprefix("recovery_"): v for k, v in p.items() if k.startswith("recovery_") and k != CURVE_KEY}}
            for p in points
        ]  # fmt: skip


def _collate(with_labels: bool):
    def collate(features):
        ids = torch.tensor([feature["input_ids"] for feature in features], dtype=torch.long)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if "loss_mask" in features[0]:  # assistant-only: the prompt tokens are no targets
            mask = torch.tensor([feature["loss_mask"] for feature in features], dtype=torch.bool)
            batch["labels"] = ids.masked_fill(~mask, -100)
        elif with_labels:
            batch["labels"] = ids.clone()
        return batch

    return collate


def _layer_map(dense_model, pruned_model, removed_layers) -> dict[int, int]:
    dense_layers = dense_model.config.num_hidden_layers
    pruned_layers = pruned_model.config.num_hidden_layers
    removed = list(removed_layers or ())
    if dense_layers - len(set(removed)) != pruned_layers:
        raise ValueError(
            f"`removed_layers`={removed_layers!r} leaves {dense_layers - len(set(removed))} of the dense model's "
            f"{dense_layers} layers, but the pruned model has {pruned_layers}; pass the pruning report's "
            "`removed_layers` (needed for `hidden_weight` > 0)."
        )
    return hidden_layer_map(dense_layers, removed)


def distill_recover(pruned_model, tokenizer, dense_model, train_blocks: list[list[int]],
                    config: DistillationConfig | None = None, kept_token_ids=None, eval_ids: torch.Tensor | None = None,
                    output_dir: str | None = None, overwrite: bool = False, callbacks: list | None = None,
                    train_masks: list[list[int]] | None = None, removed_layers=None):  # fmt: skip
    """Distil ``dense_model`` into ``pruned_model`` on ``train_blocks``; returns ``(recovered model, log)``.

    ``train_blocks`` are equal-length token-id lists of the pruned tokenizer (see
    :func:`flab_hf.distillation_data.distillation_blocks`); training stops after ``config.train_tokens`` tokens
    (``config.steps()`` optimizer steps), cycling over the blocks if they are fewer. Full fine-tuning by default,
    LoRA with ``config.lora_r`` (merged at the end). With ``eval_ids`` (held-out windows, pruned ids) the log holds
    the recovery curve (``log["curve"]``: perplexity, KL to dense, next-token agreement against training tokens).
    With ``config.checkpoint_dir`` a stopped run resumes from its last checkpoint, curve included. Runs unchanged
    under ``accelerate launch``. With ``output_dir`` the recovered model is saved there (pruned format, with
    ``tokenizer``); a non-empty ``output_dir`` is refused unless ``overwrite``, before training starts. ``callbacks``
    are more ``TrainerCallback`` objects for the Trainer (logging, early stopping). ``train_masks`` (one 0/1 list per
    block, :func:`~flab_hf.distillation_data.distillation_blocks`' ``loss_masks``) leaves the 0 tokens out of the loss
    (both the KL and the cross-entropy): training on the answers, not on the prompts they answer. With
    ``config.hidden_weight`` > 0 each kept layer's output also learns the dense layer it was
    (:func:`hidden_layer_map`); ``removed_layers`` (the dense indices layer pruning removed, the pruning report's
    ``removed_layers``) says which those are, and is needed when the pruned model has fewer layers than the dense one.

    Example:
        >>> recovered, log = distill_recover(pruned, pruned_tokenizer, dense, blocks, DistillationConfig(),
        ...                                  kept_token_ids=kept, eval_ids=valid_ids)  # doctest: +SKIP
    """
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    from .pruning import to_saveable
    from .recipe import save_pruned

    config = config or DistillationConfig()
    if not train_blocks:
        raise ValueError("`train_blocks` is empty; build them with distillation_blocks(...).")
    if len({len(block) for block in train_blocks}) != 1:
        raise ValueError("`train_blocks` must all have the same length (pack_blocks makes them so).")
    if train_masks is not None and [len(m) for m in train_masks] != [len(b) for b in train_blocks]:
        raise ValueError(
            "`train_masks` must hold one mask per block, of the block's length; pass distillation_blocks(...)"
            "['loss_masks'] with its 'blocks'."
        )
    layer_map = None
    if config.hidden_weight > 0:
        layer_map = _layer_map(dense_model, pruned_model, removed_layers)
    if output_dir is not None:
        check_output_dir(output_dir, overwrite=overwrite, argument="output_dir")
    model = pruned_model
    if config.lora_r is not None:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as error:
            raise ImportError("LoRA recovery needs peft: pip install 'peft>=0.17'") from error
        from .recovery import LORA_TARGETS

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=list(LORA_TARGETS),
                          task_type="CAUSAL_LM")  # fmt: skip
        model = get_peft_model(model, lora)
    bf16 = resolve_bf16(config.bf16)
    distill = FlabDistillationCallback(dense_model, kept_token_ids, config.temperature, config.kl_weight,
                                       config.hidden_weight, layer_map)  # fmt: skip
    checkpoints = config.checkpoint_dir
    with tempfile.TemporaryDirectory(prefix="flab-distill-") as scratch:
        args = TrainingArguments(
            output_dir=checkpoints or scratch, per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=config.warmup_ratio,
            weight_decay=config.weight_decay, logging_steps=10, report_to=[], bf16=bf16,
            save_strategy="steps" if checkpoints else "no", save_steps=config.save_steps, save_total_limit=2,
            seed=config.seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=not config.progress,
            dataloader_num_workers=0, remove_unused_columns=False, max_steps=1,  # set below, once processes are known
            average_tokens_across_devices=False,  # the loss is a per-process mean: the Trainer must not rescale it
        )  # fmt: skip
        processes = args.world_size
        steps = config.steps(processes)
        args.max_steps = steps
        tokens_per_step = config.block_size * config.batch_size * processes
        callbacks = [distill, *(callbacks or ())]
        if eval_ids is not None:
            every = max(1, config.curve_every // tokens_per_step)
            callbacks.append(RecoveryCurveCallback(dense_model, eval_ids, kept_token_ids, every, tokens_per_step))
        if config.track_emissions:
            callbacks.append(EmissionsCallback(config.track_emissions))
        needed = steps * config.batch_size * processes
        rows = [{"input_ids": block} for block in train_blocks]
        if train_masks is not None:
            rows = [{**row, "loss_mask": mask} for row, mask in zip(rows, train_masks)]
        trainer = Trainer(
            model=model, args=args, train_dataset=[rows[i % len(rows)] for i in range(needed)],
            data_collator=_collate(with_labels=config.kl_weight < 1), callbacks=callbacks,
        )  # fmt: skip
        resume = get_last_checkpoint(checkpoints) if checkpoints and os.path.isdir(checkpoints) else None
        logger.info("distillation: %d steps of %d tokens (%s)", steps, tokens_per_step, "bf16" if bf16 else "fp32")
        trainer.train(resume_from_checkpoint=resume)
        trainer.accelerator.wait_for_everyone()
    recovered = model.merge_and_unload() if config.lora_r is not None else model
    recovered = to_saveable(recovered.eval())
    history = trainer.state.log_history
    log = {
        "steps": trainer.state.global_step,
        "tokens": trainer.state.global_step * tokens_per_step,
        "bf16": bf16,
        "resumed_from": resume,
        "train_losses": [entry["loss"] for entry in history if "loss" in entry],
        "kl": [entry["distill/kl"] for entry in history if "distill/kl" in entry],
        "curve": RecoveryCurveCallback.curve(history),
    }
    if output_dir is not None and trainer.is_world_process_zero():
        save_pruned(recovered, tokenizer, output_dir, overwrite=overwrite)
    return recovered, log


__all__ = [
    "DistillationConfig",
    "FlabDistillationCallback",
    "RecoveryCurveCallback",
    "distill_recover",
    "hidden_layer_map",
]
