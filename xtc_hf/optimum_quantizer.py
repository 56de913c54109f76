# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""XTC behind Optimum's quantizer interface: ``XTCQuantizer.from_pretrained(teacher).quantize(save_dir)``.

Optimum's ``OptimumQuantizer`` is the common front of its backends (``ORTQuantizer``, ``INCQuantizer``, ...): load a
model with ``from_pretrained``, write a quantized one with ``quantize(save_dir, ...)``. ``XTCQuantizer`` plugs the
XTC recipe (:func:`xtc_hf.xtc_compress`: layer reduction and quantisation-aware distillation, then packing) into it,
so code written against Optimum's interface gets XTC GPT-2 checkpoints.

Example:
    >>> from xtc_hf import XTCQuantizer
    >>> quantizer = XTCQuantizer.from_pretrained("path/to/gpt2")  # doctest: +SKIP
    >>> student = quantizer.quantize("gpt2-1w8a6l", student_layers="odd", weight_bits=1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from optimum.quantization_base import OptimumQuantizer

from compress_utils.io import check_output_dir, save_pretrained_atomic_once

from .modeling_xtc import XTCGPT2LMHeadModel, check_gpt2_shaped
from .recipe import XTCRecipeConfig, xtc_compress

logger = logging.getLogger(__name__)

WORK_SUFFIX = ".xtc-stages"


class XTCQuantizer(OptimumQuantizer):
    """Compress a GPT-2 causal LM with XTC and save the packed student.

    Args:
        model: the teacher, a ``GPT2LMHeadModel`` (or an unpacked ``XTCGPT2LMHeadModel``, e.g. a layer-reduced one).
        tokenizer: the teacher's tokenizer; needed when the training data is text, and saved next to the student.

    Example:
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> quantizer = XTCQuantizer(GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99)))
        >>> type(quantizer.model).__name__
        'GPT2LMHeadModel'
    """

    def __init__(self, model, tokenizer=None):
        check_gpt2_shaped(model)
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, model_or_path, file_name: str | None = None, tokenizer=None) -> XTCQuantizer:
        """A quantizer for a model object or a checkpoint folder (GPT-2, or an unpacked XTC checkpoint).

        Args:
            model_or_path: a GPT-2 causal LM, or the folder / Hub id of one (its tokenizer is loaded too if present).
            file_name: part of Optimum's interface for single-file formats (ONNX); Transformers checkpoints are
                folders, so it must stay ``None``.
            tokenizer: overrides the tokenizer found next to the checkpoint.
        """
        if file_name is not None:
            raise ValueError(
                f"`file_name={file_name!r}` is not used by XTC: pass the checkpoint folder as `model_or_path` "
                "(Transformers checkpoints are folders, not single files)."
            )
        if not isinstance(model_or_path, (str, os.PathLike)):
            return cls(model_or_path, tokenizer)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(model_or_path)
        if tokenizer is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(model_or_path)
            except (OSError, ValueError):
                logger.warning("No tokenizer in %s; pass `tokenizer=` to train on text.", model_or_path)
        return cls(model, tokenizer)

    def compress(
        self,
        recipe: XTCRecipeConfig | None = None,
        train_dataset=None,
        work_dir: str | os.PathLike | None = None,
        callbacks=None,
    ) -> XTCGPT2LMHeadModel:
        """Run :func:`xtc_hf.xtc_compress` on the teacher and return the student (without copying it anywhere).

        ``train_dataset`` defaults to the training split of the running interpreter's standard-library sources;
        ``work_dir`` (stage checkpoints, resumable) defaults to xtc_compress's ``runs/xtc/compress``.
        """
        if train_dataset is None:
            from .data import stdlib_dataset

            logger.info("no `train_dataset` given: distilling on the standard library's training split")
            train_dataset = stdlib_dataset("train")
        extra = {"output_dir": os.fspath(work_dir)} if work_dir is not None else {}
        return xtc_compress(self.model, recipe, train_dataset, tokenizer=self.tokenizer, callbacks=callbacks, **extra)

    def quantize(
        self,
        save_dir: str | Path,
        file_prefix: str | None = None,
        recipe: XTCRecipeConfig | None = None,
        train_dataset=None,
        work_dir: str | os.PathLike | None = None,
        callbacks=None,
        overwrite: bool = False,
        **recipe_fields,
    ) -> XTCGPT2LMHeadModel:
        """Compress the teacher with XTC and save the student (and tokenizer) to ``save_dir`` atomically.

        Args:
            save_dir: output folder; loads with ``AutoModelForCausalLM.from_pretrained(save_dir,
                trust_remote_code=True)`` anywhere, or without ``trust_remote_code`` where ``xtc_hf`` is imported.
            file_prefix: part of Optimum's interface for single-file formats; must stay ``None``.
            recipe: an :class:`XTCRecipeConfig`; or give its fields as keyword arguments
                (``student_layers="odd", weight_bits=1, ...``), not both.
            train_dataset: ``datasets.Dataset`` with code in a ``text`` column (or ``input_ids``); default: the
                standard library's training split.
            work_dir: where the stages checkpoint and resume; default ``<save_dir>.xtc-stages`` (a sibling, so two
                teachers never share stage results).
            callbacks: extra ``TrainerCallback``s for both stages.
            overwrite: replace ``save_dir`` if it exists and is not empty (checked before any training).

        Returns:
            The student (packed if quantised); its ``xtc_checkpoint`` attribute is ``save_dir``.
        """
        if file_prefix is not None:
            raise ValueError(
                f"`file_prefix={file_prefix!r}` is not used by XTC, which saves a Transformers checkpoint folder; "
                "choose the folder with `save_dir`."
            )
        if recipe is not None and recipe_fields:
            raise ValueError(
                f"Pass either `recipe` or XTCRecipeConfig fields as keyword arguments, not both (got recipe and "
                f"{sorted(recipe_fields)})."
            )
        recipe = recipe if recipe is not None else XTCRecipeConfig(**recipe_fields)
        check_output_dir(save_dir, overwrite=overwrite, argument="save_dir")  # before hours of training, not after
        save_dir = os.path.abspath(os.fspath(save_dir))
        work_dir = work_dir if work_dir is not None else save_dir + WORK_SUFFIX
        student = self.compress(recipe, train_dataset, work_dir=work_dir, callbacks=callbacks)
        savables = [student, *([self.tokenizer] if self.tokenizer is not None else [])]
        student.xtc_checkpoint = save_pretrained_atomic_once(
            save_dir, *savables, overwrite=overwrite
        )  # one writer under `accelerate launch`
        logger.info("saved the XTC student to %s (stages in %s)", save_dir, work_dir)
        return student


__all__ = ["XTCQuantizer"]
