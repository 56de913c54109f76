# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""The XTC recipe: layer reduction by distillation, then quantisation-aware distillation, then packing.

Example:
    >>> from xtc_hf import XTCRecipeConfig, xtc_compress
    >>> config = XTCRecipeConfig(student_layers="odd", weight_bits=1, activation_bits=8)
    >>> student = xtc_compress(teacher, config, train_dataset, tokenizer=tokenizer, output_dir="runs/xtc/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace

import torch

from compress_utils.capability import resolve_bf16
from compress_utils.io import save_pretrained_atomic_once

from .callbacks import DistillationCallback, EmissionsCallback, TimeBudgetCallback, check_emissions_country
from .configuration_xtc import ACTIVATION_BITS, GRANULARITIES, WEIGHT_BITS
from .convergence import HeldOutKLCallback, PlateauAnnealSchedule, plateaued, split_heldout
from .data import lm_dataset, pack_blocks
from .modeling_xtc import XTCGPT2LMHeadModel, check_gpt2_shaped

logger = logging.getLogger(__name__)

LAYER_MODES = ("odd", "even", "first", "last", "all")
STAGE_FILE = "xtc_stage.json"


def resolve_student_layers(layers, num_teacher_layers: int, num_student_layers: int | None = None) -> list[int]:
    """Teacher block indices the student keeps.

    ``"odd"`` is XTC's every-other-layer choice (1, 3, 5, ... of a 12-layer teacher), ``"even"`` 0, 2, 4, ...,
    ``"first"``/``"last"`` the bottom/top half, ``"all"``/``None`` no reduction, a list is used as given.
    ``num_student_layers`` (default: half the teacher) sets how many layers ``first``/``last``/``odd``/``even`` keep.

    Example:
        >>> resolve_student_layers("odd", 12)
        [1, 3, 5, 7, 9, 11]
        >>> resolve_student_layers("first", 12, 4)
        [0, 1, 2, 3]
    """
    if layers is None or layers == "all":
        return list(range(num_teacher_layers))
    if isinstance(layers, str):
        if layers not in LAYER_MODES:
            raise ValueError(
                f"`student_layers` must be one of {LAYER_MODES} or a list of layer indices, got {layers!r}."
            )
        count = num_student_layers if num_student_layers is not None else max(1, num_teacher_layers // 2)
        if not 1 <= count <= num_teacher_layers:
            raise ValueError(
                f"`num_student_layers` must be in [1, {num_teacher_layers}] for this teacher, got {count}."
            )
        if layers == "first":
            return list(range(count))
        if layers == "last":
            return list(range(num_teacher_layers - count, num_teacher_layers))
        start = 1 if layers == "odd" else 0
        picked = list(range(start, num_teacher_layers, 2))[:count]
        if len(picked) < count:
            raise ValueError(
                f"`student_layers={layers!r}` yields only {len(picked)} layers of a {num_teacher_layers}-layer teacher, "
                f"fewer than `num_student_layers={count}`; use a list instead."
            )
        return picked
    indices = list(layers)
    if not indices:
        raise ValueError("`student_layers` is an empty list; keep at least one teacher layer.")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_teacher_layers:
            raise ValueError(
                f"`student_layers` holds {index!r}, which is not a layer index of this {num_teacher_layers}-layer "
                f"teacher; use integers in [0, {num_teacher_layers - 1}] or one of {LAYER_MODES}."
            )
    if len(set(indices)) != len(indices):
        raise ValueError(f"`student_layers` must not repeat a layer, got {indices}.")
    return sorted(indices)


@dataclass
class XTCRecipeConfig:
    """Settings of :func:`xtc_compress`. Defaults follow the CodeGPT-on-XTC paper (every other layer, 1-bit weights,
    8-bit activations, lr 5e-4 with 20% warm-up and linear decay, temperature 1) with a CPU-sized step budget."""

    student_layers: str | list[int] | None = field(
        default="odd", metadata={"help": "Kept teacher layers: odd (paper), even, first, last, all, or a list."}
    )
    num_student_layers: int | None = field(
        default=None, metadata={"help": "How many layers odd/even/first/last keep (default: half the teacher)."}
    )
    weight_bits: int = field(
        default=1, metadata={"help": "1 (binary), 2 (ternary), 4, 8 or 32 (no weight quantisation)."}
    )
    activation_bits: int = field(default=8, metadata={"help": "8 (per-token int8) or 32."})
    weight_granularity: str = field(default="matrix", metadata={"help": "Weight scale per `matrix` or per `row`."})
    quantize_embeddings: bool = field(default=True, metadata={"help": "Quantise word embeddings (row-wise) too."})
    embedding_bits: int | None = field(
        default=None,
        metadata={
            "help": "Bits of the word embeddings and tied LM head (per-row scales): 8 = int8 under low-bit blocks; "
            "None = weight_bits (with quantize_embeddings)."
        },
    )
    embedding_int8_rows: int | None = field(
        default=None,
        metadata={
            "help": "Word-embedding (LM-head) rows kept at 8 bits under lower embedding_bits: those of the tokens "
            "most frequent in the training data, e.g. 2048 of 8192; None = none."
        },
    )
    position_embedding_bits: int | None = field(
        default=None,
        metadata={"help": "Bits of the position embeddings (one scale per position), e.g. 8; None = float."},
    )
    temperature: float = field(default=1.0, metadata={"help": "KD softmax temperature (XTC: 1)."})
    logit_weight: float = field(default=1.0, metadata={"help": "Weight of the soft cross-entropy on logits."})
    hidden_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the intermediate-layer loss: MSE between each student hidden state and the teacher "
            "state of the layer it was initialised from, over the teacher state's mean square (0 = off)."
        },
    )
    gt_weight: float = field(default=0.0, metadata={"help": "Weight of the ground-truth LM loss."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (paper: 5e-4 for 1 epoch)."})
    quantization_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate of stage 2 (the quantised student); None = learning_rate. At 5e-4 the "
            "1-bit students' held-out KL rises while the warm-up climbs and falls most late in the decay: XTC's "
            "own recipe distils at 5e-5."
        },
    )
    warmup_ratio: float = field(default=0.2, metadata={"help": "Fraction of steps of linear warm-up (paper: 0.2)."})
    batch_size: int = field(default=8, metadata={"help": "Sequences per step."})
    block_size: int = field(default=256, metadata={"help": "Tokens per training sequence (text datasets)."})
    layer_reduction_steps: int = field(
        default=150,
        metadata={"help": "Optimizer steps of stage 1 (with until_converged: its cap and learning-rate schedule)."},
    )
    quantization_steps: int = field(
        default=150,
        metadata={"help": "Optimizer steps of stage 2 (with until_converged: its cap and learning-rate schedule)."},
    )
    until_converged: bool = field(
        default=False,
        metadata={
            "help": "Distil each stage until held-out KL to the teacher stops falling (see kl_eval_steps, patience, "
            "min_delta); the stage step counts become caps. Off: the fixed step counts."
        },
    )
    kl_eval_steps: int = field(
        default=50,
        metadata={"help": "Measure held-out KL every this many steps (with until_converged or an eval_dataset)."},
    )
    patience: int = field(
        default=6,
        metadata={
            "help": "until_converged: a plateau is this many KL measurements without progress. At a constant learning "
            "rate a KL still falling ~2% per measurement scatters by a few percent: 3 called a plateau there."
        },
    )
    min_delta: float = field(
        default=0.01,
        metadata={"help": "until_converged: the relative fall of the best held-out KL that counts as progress."},
    )
    anneal_ratio: float = field(
        default=0.2,
        metadata={
            "help": "until_converged: on a held-out KL plateau, decay the learning rate linearly to 0 over this share "
            "of the stage's steps, then stop (without a plateau the decay ends at the cap); 0 = stop at the plateau, "
            "the learning rate decaying linearly over the cap."
        },
    )
    kl_eval_blocks: int = field(
        default=32,
        metadata={
            "help": "Held-out blocks the KL is measured on: the first of eval_dataset, or (until_converged without "
            "one) blocks spread over the training data, then not trained on."
        },
    )
    max_minutes_per_stage: float | None = field(
        default=None, metadata={"help": "Stop a stage early after this many minutes (and save)."}
    )
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 autocast during training; None = where bf16 products are fast (compress_utils.probe)."
        },
    )
    save_steps: int = field(default=50, metadata={"help": "Trainer checkpoint interval (resumable)."})
    logging_steps: int = field(default=10, metadata={"help": "Trainer logging interval."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    track_emissions: str | None = field(
        default=None,
        metadata={"help": "ISO country code of the grid (e.g. 'FRA') to record CO2 with codecarbon; None = off."},
    )

    def __post_init__(self):
        if isinstance(self.weight_bits, bool) or self.weight_bits not in WEIGHT_BITS:
            raise ValueError(f"`weight_bits` must be one of {WEIGHT_BITS}, got {self.weight_bits!r}.")
        if isinstance(self.activation_bits, bool) or self.activation_bits not in ACTIVATION_BITS:
            raise ValueError(f"`activation_bits` must be one of {ACTIVATION_BITS}, got {self.activation_bits!r}.")
        if self.weight_granularity not in GRANULARITIES:
            raise ValueError(f"`weight_granularity` must be one of {GRANULARITIES}, got {self.weight_granularity!r}.")
        if self.embedding_bits is not None:
            if isinstance(self.embedding_bits, bool) or self.embedding_bits not in WEIGHT_BITS:
                raise ValueError(
                    f"`embedding_bits` must be None (follow `weight_bits`) or one of {WEIGHT_BITS}, got "
                    f"{self.embedding_bits!r}."
                )
            if self.embedding_bits < 32 and not self.quantize_embeddings:
                raise ValueError(
                    f"`embedding_bits={self.embedding_bits}` quantises the word embeddings but `quantize_embeddings` is "
                    "False; drop one of the two settings."
                )
        rows = self.embedding_int8_rows
        if rows is not None:
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
                raise ValueError(f"`embedding_int8_rows` must be None or an integer >= 1, got {rows!r}.")
            if not self.word_embedding_bits < 8:
                raise ValueError(
                    f"`embedding_int8_rows={rows}` keeps rows at 8 bits among lower-bit word embeddings, but they are "
                    f"{self.word_embedding_bits}-bit; set `embedding_bits` to 1, 2 or 4, or drop `embedding_int8_rows`."
                )
        bits = self.position_embedding_bits
        if bits is not None and (isinstance(bits, bool) or bits not in WEIGHT_BITS):
            raise ValueError(f"`position_embedding_bits` must be None (float) or one of {WEIGHT_BITS}, got {bits!r}.")
        if isinstance(self.student_layers, str) and self.student_layers not in LAYER_MODES:
            raise ValueError(
                f"`student_layers` must be one of {LAYER_MODES} or a list of layer indices, got {self.student_layers!r}."
            )
        if isinstance(self.student_layers, (list, tuple)) and not self.student_layers:
            raise ValueError("`student_layers` is an empty list; keep at least one teacher layer.")
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}.")
        for name in ("logit_weight", "hidden_weight", "gt_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0 (0 = that loss term off), got {getattr(self, name)}.")
        if self.logit_weight == 0 and self.hidden_weight == 0 and self.gt_weight == 0:
            raise ValueError("All loss terms are off; set `logit_weight`, `hidden_weight` or `gt_weight` > 0.")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"`warmup_ratio` must be in [0, 1), got {self.warmup_ratio}.")
        for name in ("batch_size", "block_size", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        for name in ("kl_eval_steps", "patience", "kl_eval_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        if isinstance(self.anneal_ratio, bool) or not 0 <= self.anneal_ratio < 1:
            raise ValueError(
                f"`anneal_ratio` must be in [0, 1) (the share of a stage spent decaying; 0 = stop at the plateau), got "
                f"{self.anneal_ratio!r}."
            )
        if not 0 <= self.min_delta < 1:
            raise ValueError(
                f"`min_delta` must be in [0, 1) (a relative fall of the held-out KL; 0.01 = 1%), got {self.min_delta!r}."
            )
        # 0 used to train one step anyway (Trainer reads max_steps=0 as "use epochs"); a stage is skipped by its
        # settings instead: keep every layer (student_layers="all") or keep 32-bit weights and activations
        skip = {"layer_reduction_steps": "`student_layers='all'`", "quantization_steps": "32-bit weights/activations"}
        for name, how in skip.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}; to skip the stage use {how}.")
        # resolved here, so the stage reports and cache keys record what ran (True/False), not "auto"
        self.bf16 = resolve_bf16(self.bf16, "cuda" if torch.cuda.is_available() else "cpu")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}.")
        if self.quantization_learning_rate is not None and not self.quantization_learning_rate > 0:
            raise ValueError(
                f"`quantization_learning_rate` must be > 0 or None (= learning_rate), got "
                f"{self.quantization_learning_rate}."
            )
        if self.track_emissions is not None:
            self.track_emissions = check_emissions_country(self.track_emissions)

    @property
    def word_embedding_bits(self) -> int:
        """Bits the word embeddings get: ``embedding_bits`` if set, else ``weight_bits`` with ``quantize_embeddings``."""
        if self.embedding_bits is not None:
            return self.embedding_bits
        return self.weight_bits if self.quantize_embeddings else 32

    @property
    def quantizes(self) -> bool:
        """Whether stage 2 (quantisation-aware distillation) runs: any weight or activation below 32 bits."""
        positions = 32 if self.position_embedding_bits is None else self.position_embedding_bits
        return min(self.weight_bits, self.activation_bits, self.word_embedding_bits, positions) < 32


def frequent_tokens(dataset, count: int, vocab_size: int) -> tuple[torch.Tensor, float]:
    """The ``count`` token ids most frequent in ``dataset``'s ``input_ids`` (ties: the lower id first) and the share
    of all its tokens they make up.

    Example:
        >>> frequent_tokens({"input_ids": [[5, 5, 2, 7], [2, 5, 9, 9]]}, 2, vocab_size=10)
        (tensor([5, 2]), 0.625)
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= vocab_size:
        raise ValueError(f"`count` must be an integer in [1, {vocab_size}] (the vocabulary), got {count!r}.")
    ids = torch.tensor(list(dataset["input_ids"]), dtype=torch.long).reshape(-1)
    counts = torch.bincount(ids, minlength=vocab_size)
    order = torch.sort(counts, descending=True, stable=True).indices[:count]
    return order, float(counts[order].sum() / max(int(counts.sum()), 1))


def prepare_train_dataset(train_dataset, tokenizer=None, block_size: int = 256):
    """A causal-LM dataset of ``input_ids``/``labels`` from ``train_dataset``.

    Accepts a ``datasets.Dataset`` (or list of dicts) with a ``text`` column (tokenised and packed into
    ``block_size``-token blocks with ``tokenizer``) or an ``input_ids`` column (used as is).
    """
    from datasets import Dataset

    if isinstance(train_dataset, list):
        train_dataset = Dataset.from_list(train_dataset)
    columns = list(getattr(train_dataset, "column_names", None) or [])
    if len(train_dataset) == 0:
        raise ValueError("`train_dataset` is empty; give it code in a `text` column.")
    if "input_ids" in columns:
        if "labels" not in columns:
            train_dataset = train_dataset.map(lambda row: {"labels": list(row["input_ids"])})
        return train_dataset
    if "text" not in columns:
        raise ValueError(
            f"`train_dataset` has no `text` column (columns: {columns}); give it raw code as `text` or token ids as "
            "`input_ids`, e.g. `dataset.rename_column('content', 'text')`."
        )
    if tokenizer is None:
        raise ValueError("`train_dataset` holds `text`: pass the teacher's `tokenizer` to tokenise it.")
    texts = [text for text in train_dataset["text"] if isinstance(text, str) and text.strip()]
    if not texts:
        raise ValueError("The `text` column of `train_dataset` holds no non-empty strings.")
    blocks = pack_blocks(texts, tokenizer, block_size)
    if not blocks:
        raise ValueError(f"`train_dataset` holds fewer than `block_size`={block_size} tokens; give more text.")
    return lm_dataset(blocks)


def _stage_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _train_stage(student, teacher, dataset, layer_map, config: XTCRecipeConfig, steps: int, stage_dir: str, callbacks,
                 heldout=None):  # fmt: skip
    """Distil ``teacher`` into ``student`` for ``steps`` steps (at most, ``until_converged``) with a stock Trainer;
    resumes from checkpoints. With ``heldout`` blocks the report holds the held-out KL curve."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    args = TrainingArguments(
        output_dir=os.path.join(stage_dir, "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=int(config.warmup_ratio * steps),
        weight_decay=0.0,
        bf16=config.bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        report_to=[],
        seed=config.seed,
        dataloader_num_workers=0,
        # the distillation loss is a per-batch mean: under DDP the Trainer must not multiply it by the number of
        # processes (it does for models whose forward takes **kwargs, expecting a loss summed over tokens)
        average_tokens_across_devices=False,
    )
    distill = DistillationCallback(
        teacher,
        temperature=config.temperature,
        logit_weight=config.logit_weight,
        hidden_weight=config.hidden_weight,
        gt_weight=config.gt_weight,
        layer_map=layer_map,
    )
    extra = [TimeBudgetCallback(config.max_minutes_per_stage)] if config.max_minutes_per_stage else []
    emissions = EmissionsCallback(config.track_emissions) if config.track_emissions else None
    extra += [emissions] if emissions else []
    tokens_per_step = config.batch_size * len(dataset[0]["input_ids"]) * args.world_size
    optimizers = (None, None)
    schedule = None
    if config.until_converged and config.anneal_ratio > 0:
        schedule = PlateauAnnealSchedule(steps, args.warmup_steps, config.anneal_ratio)
        # the Trainer's own AdamW (weight decay 0 makes its two parameter groups one) under a schedule the held-out
        # KL callback moves: there is no Trainer scheduler whose decay starts on a measured plateau
        optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=config.learning_rate,
                                      betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                                      weight_decay=0.0)  # fmt: skip
        optimizers = (optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule))
    if heldout is not None:
        extra.append(HeldOutKLCallback(
            teacher, heldout, config.kl_eval_steps, tokens_per_step,
            patience=config.patience if config.until_converged else None, min_delta=config.min_delta,
            batch_size=config.batch_size, schedule=schedule,
        ))  # fmt: skip
    trainer = Trainer(model=student, args=args, train_dataset=dataset, optimizers=optimizers,
                      callbacks=[distill, *extra, *(callbacks or [])])  # fmt: skip
    resume = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
    if resume:
        logger.info("resuming from %s", resume)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    report = {
        "train_seconds": round(seconds, 1),
        "steps": trainer.state.global_step,
        "max_steps": steps,
        "learning_rate": config.learning_rate,  # the peak (stage 2's may differ from stage 1's)
        "tokens": trainer.state.global_step * tokens_per_step,
        "bf16": config.bf16,
        "log": history,
    }
    curve = HeldOutKLCallback.curve(trainer.state.log_history)
    if curve:
        best = min(curve, key=lambda point: point["kl"])
        report.update(kl_curve=curve, best_kl=best["kl"], best_kl_step=best["step"])
    if schedule is not None:
        # converged: the KL plateaued and the stage annealed from there (False: the cap came first)
        report.update(converged=schedule.plateau_step is not None, anneal_start=schedule.start_step(),
                      anneal_end=schedule.end_step())  # fmt: skip
    elif config.until_converged:
        # whether the stage ended on a plateau (False: the cap or a time budget ended it while the KL still fell)
        report["converged"] = bool(plateaued([p["kl"] for p in curve], config.patience, config.min_delta))
    if emissions is not None:
        report["emissions"] = emissions.emissions
    return report


def hidden_layer_map(student_layers: list[int], num_teacher_layers: int) -> dict[int, int]:
    """The intermediate-layer distillation pairs: student ``hidden_states`` index -> teacher index.

    Each student block's output is paired with the output of the teacher block it was initialised from
    (``student_layers``); [0] is the embedding output of both. GPT-2's last hidden state is taken after the final
    LayerNorm, so the last student state maps to the last teacher state.

    Example:
        >>> hidden_layer_map([1, 3, 5], 6)
        {0: 0, 1: 2, 2: 4, 3: 6}
    """
    mapping = {0: 0, **{i + 1: layer + 1 for i, layer in enumerate(student_layers[:-1])}}
    mapping[len(student_layers)] = num_teacher_layers
    return mapping


def _load_stage(stage_dir: str):
    final = os.path.join(stage_dir, "final")
    marker = os.path.join(final, STAGE_FILE)
    if not os.path.isfile(marker):
        return None, None
    with open(marker) as handle:
        report = json.load(handle)
    model = XTCGPT2LMHeadModel.from_pretrained(final)
    model.xtc_checkpoint = final
    return model, report


def _save_stage(model, stage_dir: str, report: dict, tokenizer=None):
    class _Report:
        def save_pretrained(self, folder):
            with open(os.path.join(folder, STAGE_FILE), "w") as handle:
                json.dump(report, handle, indent=2)

    savables = [model, *([tokenizer] if tokenizer is not None else []), _Report()]
    model.xtc_checkpoint = save_pretrained_atomic_once(
        os.path.join(stage_dir, "final"), *savables, overwrite=True
    )  # one writer under DDP


def xtc_compress(
    teacher,
    config: XTCRecipeConfig | None = None,
    train_dataset=None,
    tokenizer=None,
    output_dir: str = os.path.join("runs", "xtc", "compress"),
    callbacks=None,
    eval_dataset=None,
) -> XTCGPT2LMHeadModel:
    """Compress a GPT-2 ``teacher`` with XTC and return the (packed, if quantised) student.

    Stage 1 (if ``config.student_layers`` drops layers): the student is initialised from the kept teacher layers and
    trained by KD (logits + layer-mapped hidden states). Stage 2 (if any bits < 32): the student is quantised
    (weights/activations fake-quantised with STE) and trained by KD from the full-precision teacher, then packed.

    Each stage runs a stock ``transformers.Trainer`` with :class:`DistillationCallback`, checkpoints into
    ``output_dir/<stage>-<settings hash>/checkpoints`` and resumes from there, and saves its result atomically to
    ``.../final`` with an ``xtc_stage.json`` report (steps, seconds, loss log); a finished stage is reused, so a 6L
    and a 1W8A6L run in the same ``output_dir`` share stage 1. The returned model's ``xtc_checkpoint`` attribute is
    the folder it was saved to.

    With ``config.until_converged`` each stage distils until its held-out KL to the teacher stops falling
    (``patience`` measurements every ``kl_eval_steps`` steps without a relative fall of ``min_delta``), then anneals
    its learning rate to 0 over ``anneal_ratio`` of its steps, at most ``layer_reduction_steps`` /
    ``quantization_steps`` steps; the stage report holds the KL curve (``kl_curve``: step, tokens, KL), ``best_kl``,
    ``converged`` and where the anneal started and ended. The held-out blocks are the first ``kl_eval_blocks`` of
    ``eval_dataset``, or, without one, blocks spread over the training data (then not trained on). An
    ``eval_dataset`` without ``until_converged`` only records the curve.

    Args:
        teacher: a GPT-2 causal LM (``GPT2LMHeadModel``; any GPT-2 checkpoint, e.g. CodeGPT-small-py).
        config: :class:`XTCRecipeConfig` (default: 6 of 12 layers, 1-bit weights, 8-bit activations).
        train_dataset: ``datasets.Dataset`` with a ``text`` column of code (or ``input_ids``).
        tokenizer: the teacher's tokenizer (needed for ``text``; saved next to the results).
        output_dir: where stages checkpoint and save.
        callbacks: extra ``TrainerCallback``s for both stages.
        eval_dataset: held-out code like ``train_dataset`` (``text`` or ``input_ids``) for the held-out KL.

    Example:
        >>> recipe = XTCRecipeConfig(until_converged=True, layer_reduction_steps=5000, quantization_steps=5000)
        >>> student = xtc_compress(teacher, recipe, train, tokenizer=tokenizer, eval_dataset=valid)  # doctest: +SKIP
        >>> [r["kl_curve"][-1] for r in stage_reports("runs/xtc/compress").values()]  # doctest: +SKIP
    """
    config = config or XTCRecipeConfig()
    check_gpt2_shaped(teacher)
    vocab = teacher.config.vocab_size
    if config.embedding_int8_rows is not None and config.embedding_int8_rows > vocab:
        # checked here, not when stage 2 builds its config: stage 1 may run for hours first
        raise ValueError(
            f"`embedding_int8_rows={config.embedding_int8_rows}` exceeds the teacher's vocabulary ({vocab} tokens); "
            f"give at most {vocab}."
        )
    if train_dataset is None:
        raise ValueError("`train_dataset` is required: a `datasets.Dataset` with code in a `text` column.")
    layers = resolve_student_layers(config.student_layers, teacher.config.n_layer, config.num_student_layers)
    dataset = prepare_train_dataset(train_dataset, tokenizer, config.block_size)
    heldout = None
    if eval_dataset is not None:
        held = prepare_train_dataset(eval_dataset, tokenizer, config.block_size)
        heldout = torch.tensor(held[: config.kl_eval_blocks]["input_ids"], dtype=torch.long)
    elif config.until_converged:
        dataset, held = split_heldout(dataset, config.kl_eval_blocks)
        heldout = torch.tensor(held[:]["input_ids"], dtype=torch.long)
        logger.info("held out %d training blocks for the held-out KL (no `eval_dataset` given)", len(held))
    teacher.eval()
    common = {
        "seed": config.seed,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "warmup_ratio": config.warmup_ratio,
        "temperature": config.temperature,
        "weights": [config.logit_weight, config.hidden_weight, config.gt_weight],
        "bf16": config.bf16,
        "minutes": config.max_minutes_per_stage,
        "data": len(dataset),
    }
    if config.until_converged:  # where each stage stops depends on these (keys of fixed-step stages stay as they were)
        held_key = hashlib.sha256(heldout.numpy().tobytes()).hexdigest()[:10]
        common["converged"] = [config.kl_eval_steps, config.patience, config.min_delta, held_key]
        if config.anneal_ratio > 0:  # keys of stages that stopped at the plateau (anneal_ratio 0) stay as they were
            common["anneal_ratio"] = config.anneal_ratio
    student = teacher
    reduce = layers != list(range(teacher.config.n_layer))
    stage1_key = None
    if reduce:
        stage1_key = _stage_key({**common, "layers": layers, "steps": config.layer_reduction_steps})
        stage_dir = os.path.join(output_dir, f"layer_reduction-{stage1_key}")
        student, report = _load_stage(stage_dir)
        if student is None:
            logger.info("stage 1: layer reduction to teacher layers %s", layers)
            student = XTCGPT2LMHeadModel.from_gpt2(teacher, teacher_layers=layers, weight_bits=32, activation_bits=32)
            report = _train_stage(
                student,
                teacher,
                dataset,
                hidden_layer_map(layers, teacher.config.n_layer),
                config,
                config.layer_reduction_steps,
                stage_dir,
                callbacks,
                heldout,
            )
            report.update(stage="layer_reduction", teacher_layers=layers)
            _save_stage(student, stage_dir, report, tokenizer)
            student.eval()
        else:
            logger.info("stage 1: reusing %s", stage_dir)
    if not config.quantizes:
        if not reduce:
            raise ValueError(
                "Nothing to do: `student_layers` keeps every layer and all bit widths (weights, activations, "
                "embeddings) are 32."
            )
        return student.eval()
    bits = [config.weight_bits, config.activation_bits, config.weight_granularity, config.quantize_embeddings]
    if config.embedding_bits is not None:  # only when set: stages cached before the setting existed keep their keys
        bits.append(config.embedding_bits)
    if config.embedding_int8_rows is not None:
        bits.append(f"int8rows{config.embedding_int8_rows}")
    if config.position_embedding_bits is not None:
        bits.append(f"positions{config.position_embedding_bits}")  # after embedding_bits, told apart from it
    quant = {
        "bits": bits,
        "steps": config.quantization_steps,
        "init": stage1_key,
        "layers": layers,
    }
    stage2_config = config
    if config.quantization_learning_rate is not None:  # only when set: stages cached before it keep their keys
        quant["learning_rate"] = config.quantization_learning_rate
        stage2_config = replace(config, learning_rate=config.quantization_learning_rate)
    stage_dir = os.path.join(output_dir, f"quantization-{_stage_key({**common, **quant})}")
    quantized, report = _load_stage(stage_dir)
    if quantized is not None:
        logger.info("stage 2: reusing %s", stage_dir)
        return quantized.eval()
    logger.info(
        "stage 2: %d-bit weights, %d-bit activations, %d-bit embeddings",
        config.weight_bits, config.activation_bits, config.word_embedding_bits,
    )  # fmt: skip
    quantized = XTCGPT2LMHeadModel.from_gpt2(
        student,
        weight_bits=config.weight_bits,
        activation_bits=config.activation_bits,
        weight_granularity=config.weight_granularity,
        quantize_embeddings=config.quantize_embeddings,
        embedding_bits=config.embedding_bits,
        embedding_int8_rows=config.embedding_int8_rows,
        position_embedding_bits=config.position_embedding_bits,
    )
    if config.embedding_int8_rows:
        rows, share = frequent_tokens(dataset, config.embedding_int8_rows, teacher.config.vocab_size)
        quantized.transformer.wte.set_int8_rows(rows)
        logger.info("8-bit embedding rows: the %d most frequent tokens, %.1f%% of the training tokens", len(rows),
                    100 * share)  # fmt: skip
    report = _train_stage(
        quantized,
        teacher,
        dataset,
        hidden_layer_map(layers, teacher.config.n_layer),
        stage2_config,
        config.quantization_steps,
        stage_dir,
        callbacks,
        heldout,
    )
    # the stage-1 folder it started from (None: the teacher itself), so a report names its own first stage
    report.update(stage="quantization", teacher_layers=layers,
                  init=f"layer_reduction-{stage1_key}" if stage1_key else None)  # fmt: skip
    quantized.pack_()
    _save_stage(quantized, stage_dir, report, tokenizer)
    return quantized.eval()


def stage_reports(output_dir: str) -> dict[str, dict]:
    """The ``xtc_stage.json`` reports of every finished stage under ``output_dir``, keyed by stage folder."""
    reports = {}
    if os.path.isdir(output_dir):
        for name in sorted(os.listdir(output_dir)):
            marker = os.path.join(output_dir, name, "final", STAGE_FILE)
            if os.path.isfile(marker):
                with open(marker) as handle:
                    reports[name] = json.load(handle)
    return reports


__all__ = [
    "LAYER_MODES",
    "XTCRecipeConfig",
    "frequent_tokens",
    "hidden_layer_map",
    "prepare_train_dataset",
    "resolve_student_layers",
    "stage_reports",
    "xtc_compress",
]
