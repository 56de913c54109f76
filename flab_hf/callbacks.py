"""``Trainer`` callbacks for Flab-Pruner recovery (paper Sec. 3.5)."""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

from compress_utils.emissions import CODECARBON_HINT, EmissionsCallback, check_emissions_country

logger = logging.getLogger(__name__)


class LoRARecoveryCallback(TrainerCallback):
    """Track KL to the dense model during LoRA recovery; merge the adapters and save the model when training ends.

    On every evaluation event adds ``eval_flab_kl`` = mean token KL(P_dense || P_model) on ``eval_ids`` (ids of the
    *pruned* tokenizer; the dense model reads ``kept_token_ids[eval_ids]`` and its distribution is restricted to the
    kept ids). At the end of training it merges the LoRA weights into the base model (``merge_and_unload``), keeps
    it as ``self.merged_model`` and, if ``output_dir`` is set, saves it in the pruned format with ``tokenizer``.
    Acts on the main process only.

    Example:
        >>> callback = LoRARecoveryCallback(dense, eval_ids, kept_token_ids=kept, output_dir="recovered",
        ...                                 tokenizer=pruned_tokenizer)  # doctest: +SKIP
        >>> Trainer(model=peft_model, args=args, train_dataset=train, eval_dataset=valid,
        ...         callbacks=[callback]).train()  # doctest: +SKIP
    """

    def __init__(self, dense_model, eval_ids: torch.Tensor, kept_token_ids=None, output_dir=None, tokenizer=None,
                 batch_size: int = 4):  # fmt: skip
        self.dense_model = dense_model
        self.eval_ids = eval_ids
        self.kept = None if kept_token_ids is None else torch.as_tensor(list(kept_token_ids), dtype=torch.long)
        self.output_dir = output_dir
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.references = None
        self.merged_model = None
        self.history: list[dict] = []

    @torch.no_grad()
    def _reference_log_probs(self) -> list[torch.Tensor]:
        if self.references is None:
            device = self.dense_model.get_input_embeddings().weight.device
            self.references = []
            for batch in torch.split(self.eval_ids, self.batch_size):
                ids = batch if self.kept is None else self.kept[batch]
                logits = self.dense_model(ids.to(device)).logits.float()
                if self.kept is not None:
                    logits = logits[..., self.kept.to(device)]
                self.references.append(torch.log_softmax(logits, -1).cpu())
        return self.references

    @torch.no_grad()
    def kl_to_dense(self, model) -> float:
        references = self._reference_log_probs()
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for batch, reference in zip(torch.split(self.eval_ids, self.batch_size), references):
            log_q = torch.log_softmax(model(input_ids=batch.to(device)).logits.float(), -1).cpu()
            values = (reference.exp() * (reference - log_q)).sum(-1)
            total += float(values.sum())
            count += values.numel()
        model.train(was_training)
        return total / max(count, 1)

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        kl = self.kl_to_dense(model)
        self.history.append({"step": state.global_step, "kl": kl})
        if metrics is not None:
            metrics["eval_flab_kl"] = kl
        logger.info("step %d: KL to dense %.4f", state.global_step, kl)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        self.merged_model = merged.eval()
        if self.output_dir is not None:
            from .pruning import to_saveable
            from .recipe import save_pruned

            if self.tokenizer is None:
                raise ValueError("`tokenizer` is required to save the recovered model; pass the pruned tokenizer.")
            self.merged_model = to_saveable(self.merged_model)
            save_pruned(self.merged_model, self.tokenizer, self.output_dir, overwrite=True)


__all__ = ["CODECARBON_HINT", "EmissionsCallback", "LoRARecoveryCallback", "check_emissions_country"]
