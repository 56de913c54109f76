# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""A CodeGPT-style teacher trained here: byte-level BPE on standard-library code and a 12-layer GPT-2.

No GPT-2 weights can be downloaded in our build environment, so the zoo trains its own teacher within a time budget
and caches it under ``runs/xtc/teacher/<settings hash>/``. Any GPT-2 checkpoint a user has (e.g. CodeGPT-small-py)
goes through :func:`xtc_hf.xtc_compress` the same way.

Example:
    >>> from benchmarks.xtc_teacher import TeacherSettings, train_teacher
    >>> folder = train_teacher(TeacherSettings(minutes=3))  # doctest: +SKIP
    >>> model = GPT2LMHeadModel.from_pretrained(folder)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field

import torch

from compress_utils.capability import resolve_bf16
from compress_utils.io import save_pretrained_atomic
from xtc_hf.data import lm_dataset, pack_blocks, stdlib_code

logger = logging.getLogger(__name__)

EOS = "<|endoftext|>"
DEFAULT_CACHE = os.path.join("runs", "xtc")
# the corpus and split rule the teacher reads (compress_utils.corpus); part of the cache key
CORPUS_VERSION = "stdlib, compress_utils.corpus split v1"


@dataclass
class TeacherSettings:
    """How the teacher is built. Every field is part of the cache key."""

    n_layer: int = field(default=12, metadata={"help": "GPT-2 blocks (CodeGPT-small has 12)."})
    n_embd: int = field(default=256, metadata={"help": "Hidden size (small so a CPU trains it in minutes)."})
    n_head: int = field(default=4, metadata={"help": "Attention heads."})
    n_positions: int = field(default=512, metadata={"help": "Longest context."})
    vocab_size: int = field(default=8192, metadata={"help": "Byte-level BPE vocabulary size."})
    block_size: int = field(default=256, metadata={"help": "Training sequence length."})
    batch_size: int = field(default=8, metadata={"help": "Sequences per step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate (cosine decay)."})
    minutes: float = field(default=4.0, metadata={"help": "Wall-clock budget; sets the step count when steps=None."})
    steps: int | None = field(default=None, metadata={"help": "Exact step count (deterministic); overrides minutes."})
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 autocast; None = where bf16 products are fast (AMX: ~4x faster, AVX2: ~60x slower)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of tokenizer-independent randomness (init, data order)."})
    max_files: int | None = field(
        default=None, metadata={"help": "Read only the first N training files (sorted by path); None = all of them."}
    )

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "block_size", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.n_embd % self.n_head:
            raise ValueError(f"`n_embd` ({self.n_embd}) must be divisible by `n_head` ({self.n_head}).")
        if self.block_size > self.n_positions:
            raise ValueError(f"`block_size` ({self.block_size}) must be <= `n_positions` ({self.n_positions}).")
        if self.steps is None and not self.minutes > 0:
            raise ValueError(f"`minutes` must be > 0 when `steps` is None, got {self.minutes}.")
        if self.max_files is not None and (not isinstance(self.max_files, int) or self.max_files < 1):
            raise ValueError(f"`max_files` must be None or a positive integer, got {self.max_files!r}.")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {self.steps}.")
        # resolved here, so xtc_teacher.json and the cache key record what ran (True/False), not "auto"
        self.bf16 = resolve_bf16(self.bf16, "cuda" if torch.cuda.is_available() else "cpu")

    def key(self) -> str:
        """Short hash of the settings, the cache folder name."""
        settings = dataclasses.asdict(self)
        settings.update(minutes=float(self.minutes), learning_rate=float(self.learning_rate))  # 20 and 20.0 alike
        settings["corpus"] = CORPUS_VERSION  # a teacher trained on another split must not be reused
        blob = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_tokenizer(texts, vocab_size: int = 8192):
    """A GPT-2-style byte-level BPE tokenizer trained on ``texts`` (deterministic: ``tokenizers`` sorts ties)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS
    )


def _steps_for_budget(model, blocks, settings: TeacherSettings) -> int:
    """Estimate how many optimizer steps fit in ``settings.minutes`` from two timed steps on a throwaway copy."""
    import copy

    probe = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-4)
    batch = torch.tensor(blocks[: settings.batch_size])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            loss = probe(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    per_step = min(times[1:])
    return max(10, int(settings.minutes * 60 / (per_step * 1.1)))


def train_teacher(
    settings: TeacherSettings | None = None, cache_dir: str | None = None, overwrite: bool = False
) -> str:
    """Train (or reuse from the cache) the tokenizer and GPT-2 teacher; return the checkpoint folder.

    The folder holds a stock ``GPT2LMHeadModel``, its tokenizer, and ``xtc_teacher.json`` (settings, steps, time,
    final training loss). Training resumes from the last Trainer checkpoint if interrupted.
    """
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from xtc_hf.callbacks import TimeBudgetCallback

    settings = settings or TeacherSettings()
    root = os.path.join(cache_dir or DEFAULT_CACHE, "teacher", settings.key())
    final = os.path.join(root, "final")
    if os.path.isfile(os.path.join(final, "xtc_teacher.json")) and not overwrite:
        logger.info("reusing cached teacher %s", final)
        return final
    set_seed(settings.seed)
    start = time.perf_counter()
    texts = [item["text"] for item in stdlib_code("train", max_files=settings.max_files)]
    tokenizer = train_tokenizer(texts, settings.vocab_size)
    blocks = pack_blocks(texts, tokenizer, settings.block_size)
    logger.info("teacher data: %d blocks of %d tokens", len(blocks), settings.block_size)
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=settings.n_positions,
        n_embd=settings.n_embd,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        resid_pdrop=0.0,  # a few hundred steps never overfit; dropout would only slow learning
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    model = GPT2LMHeadModel(config)
    steps = settings.steps or _steps_for_budget(model, blocks, settings)
    logger.info("training the teacher for %d steps", steps)
    args = TrainingArguments(
        output_dir=os.path.join(root, "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 20),
        weight_decay=0.01,
        bf16=settings.bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=max(1, steps // 20),
        save_strategy="steps",
        save_steps=max(50, steps // 4),
        save_total_limit=1,
        report_to=[],
        seed=settings.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    callbacks = [TimeBudgetCallback(settings.minutes * 1.5)] if settings.steps is None else []
    trainer = Trainer(model=model, args=args, train_dataset=lm_dataset(blocks), callbacks=callbacks)
    resume = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
    result = trainer.train(resume_from_checkpoint=resume)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    meta = {
        "settings": dataclasses.asdict(settings),
        "steps": trainer.state.global_step,
        "train_seconds": round(time.perf_counter() - start, 1),
        "final_train_loss": losses[-1] if losses else None,
        "train_loss": result.training_loss,
        "train_tokens": trainer.state.global_step * settings.batch_size * settings.block_size,
        "torch_threads": torch.get_num_threads(),
    }
    model.config.use_cache = True

    class _Meta:
        def save_pretrained(self, folder):
            with open(os.path.join(folder, "xtc_teacher.json"), "w") as handle:
                json.dump(meta, handle, indent=2)

    save_pretrained_atomic(
        final, model, tokenizer, _Meta(), overwrite=True
    )  # our own cache folder, keyed by the settings
    # the Trainer checkpoints this cache entry resumed from; removed only if they are nothing else
    if os.path.isdir(args.output_dir) and all(n.startswith("checkpoint-") for n in os.listdir(args.output_dir)):
        shutil.rmtree(args.output_dir, ignore_errors=True)
    logger.info("teacher saved to %s (%s)", final, meta)
    return final


def teacher_perplexity(model, blocks, batch_size: int = 8) -> float:
    """Token-level perplexity of a causal LM on fixed-length blocks (a quick sanity number)."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(blocks), batch_size):
            batch = torch.tensor(blocks[i : i + batch_size])
            loss = model(input_ids=batch, labels=batch).loss
            total += float(loss) * batch.numel()
            count += batch.numel()
    return math.exp(total / max(count, 1))


__all__ = [
    "DEFAULT_CACHE",
    "EOS",
    "TeacherSettings",
    "teacher_perplexity",
    "train_teacher",
    "train_tokenizer",
]
