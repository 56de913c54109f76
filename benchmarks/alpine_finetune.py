"""Accuracy retention: fine-tune an encoder on clone detection with and without ALPINE, with a stock ``Trainer``.

Each mode (no pruning; ALPINE all/even/odd, with and without merging; or an explicit plan of layers and per-layer
alphas, see :func:`parse_mode`) fine-tunes the same pretrained weights on the same data with the same seed, prunes
during fine-tuning and evaluation (as the paper does), and reports accuracy, F1, retention against the unpruned run
and the fine-tuning wall-time ratio.

Two training schedules (``FinetuneConfig.schedules``):

- ``"a"`` (the paper's): prune from the first step.
- ``"b"``: fine-tune unpruned first (the ``none`` run of the same seed, reused if it exists), then continue from its
  weights with pruning on for ``distill_epochs``, distilling from it (:class:`~alpine_hf.callbacks.
  AlpineDistillationCallback`: KL on the logits plus the task loss).

Results: ``results["modes"]`` holds schedule (a) and the unpruned baseline, as always; ``results["schedules"]["b"]``
holds schedule (b), keyed by the same mode strings, with retention against the same unpruned runs. Every run keeps
its Trainer checkpoints in its own folder and resumes from them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from alpine_hf.callbacks import (
    AlpineDistillationCallback,
    AlpineStatsCallback,
    EmissionsCallback,
    check_emissions_country,
    find_alpine_encoder,
    reduce_alpine_stats,
)
from alpine_hf.modeling_alpine import AlpineBertForSequenceClassification, AlpineRobertaForSequenceClassification
from compress_utils.allocator import allocator_hint
from compress_utils.capability import cpu_model, probe, resolve_bf16
from compress_utils.io import atomic_dir, atomic_write_text, check_output_dir
from compress_utils.metric_loading import load_metric
from compress_utils.training_clock import TrainingClockCallback

from .alpine_plans import ALL_MODES, PLAN_EXAMPLE, mode_folder, parse_mode
from .clone_detection import build_clone_dataset

logger = logging.getLogger(__name__)

SCHEDULES = ("a", "b")
# beside the unpruned run's checkpoints: its scores, which every schedule (b) run started from it records
START_SCORES = "start_scores.json"


@dataclass
class FinetuneConfig:
    """Settings of the clone-detection fine-tuning comparison."""

    model: str | None = field(default=None, metadata={"help": "Checkpoint folder; None = embedded all-MiniLM-L6-v2."})
    modes: tuple[str, ...] = field(
        default=ALL_MODES,
        metadata={"help": f"Modes to run: from {ALL_MODES}, or plans such as {PLAN_EXAMPLE!r} (see parse_mode)."},
    )
    alpha: float = field(default=1.0, metadata={"help": "ALPINE keep-window width (for modes that do not set it)."})
    train_pairs: int = field(default=1200, metadata={"help": "Training pairs (balanced)."})
    eval_pairs: int = field(default=400, metadata={"help": "Test pairs (balanced, files unseen in training)."})
    packages: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Installed packages whose sources add functions to the standard library's (e.g. 'datasets': the "
            "stdlib alone gives ~7,200 training pairs)."
        },
    )
    max_length: int = field(default=256, metadata={"help": "Tokens per pair (both functions together)."})
    epochs: float = field(default=1.0, metadata={"help": "Training epochs."})
    batch_size: int = field(default=16, metadata={"help": "Per-device batch size."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    seed: int = field(default=42, metadata={"help": "Seed for data, initialisation and order."})
    seeds: int = field(
        default=1,
        metadata={
            "help": "Training runs per mode, with seeds seed, seed+1, ...; the data always comes from `seed`. "
            "Results report the mean and standard deviation over the runs."
        },
    )
    schedules: tuple[str, ...] = field(
        default=("a",),
        metadata={
            "help": "Training schedules: a = prune from the first step (the paper's); b = fine-tune unpruned first "
            "(the `none` run of the same seed), then continue with pruning on, distilling from it."
        },
    )
    distill_epochs: float = field(default=1.0, metadata={"help": "Schedule b: epochs with pruning and distillation."})
    distill_temperature: float = field(default=2.0, metadata={"help": "Schedule b: softmax temperature of the KL."})
    distill_kl_weight: float = field(
        default=0.5, metadata={"help": "Schedule b: weight w of the KL; loss = (1-w) * task + w * T^2 * KL."}
    )
    distill_learning_rate: float | None = field(
        default=None, metadata={"help": "Schedule b: learning rate of the pruned phase; None = learning_rate."}
    )
    output_dir: str = field(default="runs/alpine_finetune", metadata={"help": "Where Trainer checkpoints go."})
    results_dir: str | None = field(
        default=None,
        metadata={
            "help": "Each finished run's metrics go here as JSON, named by its settings, and a run whose file exists "
            "is not trained again: commit the folder and a long grid continues on another machine. None = off."
        },
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 autocast for every mode; None = where the hardware has fast bf16."}
    )
    track_emissions: str | None = field(
        default=None,
        metadata={"help": "ISO country code of the grid (e.g. 'FRA') to record CO2 with codecarbon; None = off."},
    )

    def __post_init__(self):
        self.packages = tuple(self.packages)
        missing = [
            name for name in self.packages if not isinstance(name, str) or importlib.util.find_spec(name) is None
        ]
        if missing:
            raise ValueError(f"`packages` names {missing}, which are not installed; pass installed packages or none.")
        self.modes = tuple(self.modes)
        for mode in self.modes:
            parse_mode(mode)
        repeated = sorted({mode for mode in self.modes if self.modes.count(mode) > 1})
        if repeated:
            raise ValueError(f"`modes` lists {repeated} more than once; list each mode once.")
        self.schedules = tuple(self.schedules)
        if (
            not self.schedules
            or not set(self.schedules) <= set(SCHEDULES)
            or len(set(self.schedules)) < len(self.schedules)
        ):
            raise ValueError(
                f"`schedules` must list some of {SCHEDULES}, each once, got {self.schedules!r}; e.g. ('a', 'b')."
            )
        for name in ("train_pairs", "eval_pairs", "max_length", "batch_size", "seeds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")
        for name in ("alpha", "distill_epochs", "distill_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")
        if self.distill_learning_rate is not None and not self.distill_learning_rate > 0:
            raise ValueError(
                f"`distill_learning_rate` must be > 0, or None for `learning_rate`, got {self.distill_learning_rate}."
            )
        if not 0 <= self.distill_kl_weight <= 1:
            raise ValueError(
                f"`distill_kl_weight` must be in [0, 1] (1 = the teacher alone, 0 = the task alone), got "
                f"{self.distill_kl_weight}."
            )
        if "b" in self.schedules and not any(parse_mode(mode).prunes for mode in self.modes):
            raise ValueError(
                f"`schedules` includes 'b', which fine-tunes pruned models from the unpruned one, but `modes` "
                f"{self.modes!r} prune nothing; add a pruning mode such as 'all'."
            )
        if self.bf16 is None:
            self.bf16 = fast_bf16_available()
        if self.track_emissions is not None:
            self.track_emissions = check_emissions_country(self.track_emissions)

    def runs(self) -> list[tuple[str, str]]:
        """The ``(schedule, mode)`` pairs to run, in order: schedule (b) needs the unpruned run of schedule (a) first,
        so ``("a", "none")`` is included whenever (b) runs, and (b) runs only the modes that prune.

        Example:
            >>> FinetuneConfig(modes=("all", "layers=1-3"), schedules=("b",), bf16=False).runs()
            [('a', 'none'), ('b', 'all'), ('b', 'layers=1-3')]
        """
        first = list(self.modes) if "a" in self.schedules else []
        if "b" in self.schedules and "none" not in first:
            first.insert(0, "none")
        second = [mode for mode in self.modes if parse_mode(mode).prunes] if "b" in self.schedules else []
        return [("a", mode) for mode in first] + [("b", mode) for mode in second]


def fast_bf16_available() -> bool:
    """True where bf16 products are faster than fp32 on the training device, by :func:`compress_utils.probe` (ISA
    flags alone mislead: an AVX2-only CPU runs bf16 ~60x slower than fp32, a capped oneDNN too)."""
    return resolve_bf16(None, "cuda" if torch.cuda.is_available() else "cpu")


def _model_class(folder: str):
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(folder).model_type.removeprefix("alpine_")
    if model_type in ("roberta", "xlm-roberta"):
        return AlpineRobertaForSequenceClassification
    if model_type == "bert":
        return AlpineBertForSequenceClassification
    raise ValueError(f"`model={folder!r}` is a {model_type!r} checkpoint; ALPINE fine-tunes BERT/RoBERTa encoders.")


def prepare_clone_data(tokenizer, config: FinetuneConfig):
    """Tokenised train/test clone pairs (code pair as a sequence pair, truncated together)."""
    dataset = build_clone_dataset(
        seed=config.seed,
        max_pairs_per_split={"train": config.train_pairs, "valid": 2, "test": config.eval_pairs},
        packages=config.packages,
    )

    def encode(batch):
        encoded = tokenizer(batch["code1"], batch["code2"], truncation="longest_first", max_length=config.max_length)
        encoded["labels"] = batch["label"]
        return encoded

    columns = dataset["train"].column_names
    data = {split: dataset[split].map(encode, batched=True, remove_columns=columns) for split in ("train", "test")}
    data["fingerprint"] = data_fingerprint(data)
    return data


def data_fingerprint(data: dict) -> str:
    """A short hash of the tokenised train and test pairs and their labels: two runs with the same fingerprint read
    the same data, so a difference between their scores comes from the training (another CPU's rounding), not the
    data."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for column in ("input_ids", "labels"):
            digest.update(json.dumps(list(data[split][column])).encode())
    return digest.hexdigest()[:12]


def _metrics(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and clone-class F1/precision/recall, by the shipped ``evaluate`` module ``clone_detection`` (what
    users load to reproduce our numbers), or by the same formulas in-library when ``evaluate`` cannot load it."""
    module = load_metric("clone_detection")
    if module is not None:
        return module.compute(predictions=np.asarray(predictions).tolist(), references=np.asarray(labels).tolist())
    return _clone_detection_scores(np.asarray(predictions), np.asarray(labels))


def _clone_detection_scores(predictions: np.ndarray, labels: np.ndarray) -> dict:
    true_positive = int(((predictions == 1) & (labels == 1)).sum())
    precision = true_positive / max(int((predictions == 1).sum()), 1)
    recall = true_positive / max(int((labels == 1).sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"accuracy": float((predictions == labels).mean()), "f1": f1, "precision": precision, "recall": recall}


def finetune_trainer(model, train_dataset, tokenizer, config: FinetuneConfig, output_dir: str, callbacks=(),
                     **overrides) -> Trainer:  # fmt: skip
    """The ``Trainer`` every fine-tuning mode uses (``overrides`` replace ``TrainingArguments`` fields).

    Runs unchanged under ``accelerate launch`` (DDP: each process trains on its shard of every batch).

    Example:
        >>> trainer = finetune_trainer(model, data["train"], tokenizer, FinetuneConfig(), "runs/x", max_steps=10)  # doctest: +SKIP
    """
    settings = dict(
        output_dir=output_dir,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        warmup_steps=0.1,  # a float below 1 is a ratio of the total steps
        weight_decay=0.01,
        logging_steps=20,
        save_strategy="steps",
        save_steps=100,
        save_total_limit=1,
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=config.bf16,  # autocast; every mode uses the same precision, so the comparison stays fair
        # the classification heads return the batch-mean loss and ignore `num_items_in_batch`, but take **kwargs, so
        # under DDP the Trainer would multiply their loss (and gradients) by the number of processes
        average_tokens_across_devices=False,
    )
    settings.update(overrides)
    callbacks = [AlpineStatsCallback(), *callbacks]
    if config.track_emissions is not None:
        callbacks.append(EmissionsCallback(config.track_emissions))
    return Trainer(
        model=model,
        args=TrainingArguments(**settings),
        train_dataset=train_dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=callbacks,
    )


def run_dir(config: FinetuneConfig, mode: str, seed: int, schedule: str = "a") -> str:
    """The folder of one run's Trainer checkpoints: ``<output_dir>[/schedule-b]/<mode folder>[/seed-<seed>]``
    (runs of ``config.seed`` sit in the mode folder itself, as before seeds and schedules existed).

    Example:
        >>> config = FinetuneConfig(output_dir="runs", bf16=False)
        >>> run_dir(config, "all", 42), run_dir(config, "layers=0-2", 43, "b")
        ('runs/all', 'runs/schedule-b/layers-0-2/seed-43')
    """
    folder = os.path.join(
        config.output_dir, *(() if schedule == "a" else (f"schedule-{schedule}",)), mode_folder(mode)
    )
    return folder if seed == config.seed else os.path.join(folder, f"seed-{seed}")


def teacher_checkpoint(config: FinetuneConfig, seed: int) -> str:
    """The last Trainer checkpoint of the unpruned (``none``) run of ``seed``: the start and teacher of schedule (b).

    The Trainer saves one when training ends, so a finished ``none`` run always has it.
    """
    checkpoint = _last_checkpoint(run_dir(config, "none", seed))
    if checkpoint is None:
        raise ValueError(
            f"Schedule 'b' starts from the unpruned run of seed {seed}, but {run_dir(config, 'none', seed)!r} holds no "
            "Trainer checkpoint; fine-tune mode 'none' with this seed first (run_finetune does it for schedule 'b')."
        )
    return checkpoint


def finetune_mode(mode: str, data: dict, tokenizer, config: FinetuneConfig, save_to: str | None = None, callbacks=(),
                  overwrite: bool = False, seed: int | None = None, schedule: str = "a", **overrides) -> dict:  # fmt: skip
    """Fine-tune and evaluate one mode; optionally save the fine-tuned model (atomically) to ``save_to``.

    A non-empty ``save_to`` is refused, before training, unless ``overwrite``. ``seed`` (default ``config.seed``)
    seeds the classifier head, dropout and batch order; each run keeps its Trainer checkpoints in :func:`run_dir`.

    ``schedule="a"`` fine-tunes the pretrained weights with pruning from the first step. ``schedule="b"`` starts
    from the fine-tuned unpruned run of the same seed (:func:`teacher_checkpoint`, which must exist) and trains it
    with pruning on for ``config.distill_epochs``, distilling from it.

    ``callbacks`` and ``overrides`` (``TrainingArguments`` fields) go to :func:`finetune_trainer`.
    """
    from compress_utils.embedded import minilm_dir

    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")
    plan = parse_mode(mode)
    seed = config.seed if seed is None else seed
    alpha = config.alpha if plan.alpha is None else plan.alpha
    pruning = {"alpine_layers": plan.layers, "alpine_merge": plan.merge, "alpine_alpha": alpha}
    set_seed(seed)
    if schedule == "a":
        folder = config.model or str(minilm_dir())
        model = _model_class(folder).from_pretrained(folder, num_labels=2, attn_implementation="sdpa", **pruning)
    else:
        if not plan.prunes:
            raise ValueError(
                f"`mode={mode!r}` prunes nothing; schedule 'b' is for pruning modes (its start is 'none')."
            )
        folder = teacher_checkpoint(config, seed)
        teacher = _model_class(folder).from_pretrained(folder, attn_implementation="sdpa", alpine_layers="none")
        model = _model_class(folder).from_pretrained(folder, attn_implementation="sdpa", **pruning)
        distill = AlpineDistillationCallback(teacher, config.distill_temperature, config.distill_kl_weight)
        callbacks = [distill, *callbacks]
        overrides = {
            "num_train_epochs": config.distill_epochs,
            "learning_rate": config.distill_learning_rate or config.learning_rate,
            **overrides,
        }
    overrides = {"seed": seed, "data_seed": seed, **overrides}
    output_dir = run_dir(config, mode, seed, schedule)
    clock = TrainingClockCallback()  # a resumed run's time counts the part before the resume too
    trainer = finetune_trainer(model, data["train"], tokenizer, config, output_dir, [clock, *callbacks], **overrides)
    checkpoint = _last_checkpoint(trainer.args.output_dir)
    allocator_hint(trainer.args.device)
    trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = clock.seconds  # None: resumed from a checkpoint that predates the clock
    encoder = find_alpine_encoder(trainer.model)
    encoder.reset_alpine_stats()
    started = time.perf_counter()
    prediction = trainer.predict(data["test"])  # sharded over processes under accelerate, gathered on every one
    eval_seconds = time.perf_counter() - started
    stats = reduce_alpine_stats(encoder.alpine_stats, trainer.args.device)
    result = _metrics(prediction.predictions.argmax(-1), prediction.label_ids)
    result.update(
        mode=mode,
        schedule=schedule,
        seed=seed,
        layers=plan.layers,
        merge=plan.merge,
        alpha=alpha,
        train_seconds=train_seconds,
        training_clock=True,
        eval_seconds=eval_seconds,
        resumed_from=checkpoint,
        eval_flops_ratio_analytic=stats["flops_stock"] / max(stats["flops_alpine"], 1.0),
        eval_kept_lengths=[round(x / max(stats["sequences"], 1), 2) for x in stats["kept_tokens"].tolist()],
        eval_input_length=stats["input_tokens"] / max(stats["sequences"], 1),
    )
    # fp32 fine-tuning repeats exactly on one machine, not across CPUs (other SIMD kernels round differently): the
    # unpruned run of the same seed retrained on an AVX-512 Xeon scored F1 0.9831 against the stored 0.9880
    result.update(cpu=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                  data_fingerprint=data.get("fingerprint"))  # fmt: skip
    start_scores = os.path.join(run_dir(config, "none", seed), START_SCORES)
    if schedule == "b":
        result["started_from"] = folder
        if os.path.isfile(start_scores):  # the start's own scores, on the machine that trained it
            with open(start_scores, encoding="utf-8") as handle:
                result["start_scores"] = json.load(handle)
    elif not plan.prunes and trainer.is_world_process_zero():
        scores = {key: result[key] for key in ("accuracy", "f1", "cpu", "cpu_capability")}
        atomic_write_text(start_scores, json.dumps(scores, indent=2) + "\n")
    emissions = next(
        (c.emissions for c in trainer.callback_handler.callbacks if isinstance(c, EmissionsCallback)), None
    )
    if emissions is not None:
        result["emissions"] = emissions
    if save_to is not None:
        if trainer.is_world_process_zero():  # one writer: every process holds the same weights
            with atomic_dir(save_to, overwrite=overwrite, argument="save_to") as target:
                trainer.model.save_pretrained(target)
                tokenizer.save_pretrained(target)
        trainer.accelerator.wait_for_everyone()
    logger.info("%s (schedule %s): accuracy %.4f, F1 %.4f, trained for %s s", mode, schedule, result["accuracy"],
                result["f1"], "an unknown number of" if train_seconds is None else f"{train_seconds:.0f}")  # fmt: skip
    return result


def whole_train_seconds(result: dict) -> float | None:
    """A run's whole training time, or None where it is unknown: a run resumed before runs kept a
    :class:`~compress_utils.training_clock.TrainingClockCallback` timed only the part after its resume.

    Example:
        >>> whole_train_seconds({"train_seconds": 900.0, "resumed_from": "runs/x/checkpoint-600"}) is None
        True
    """
    if result.get("resumed_from") and not result.get("training_clock"):
        return None
    return result.get("train_seconds")


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def run_finetune(
    config: FinetuneConfig | None = None,
    save_mode: str | None = None,
    save_to: str | None = None,
    overwrite: bool = False,
    save_schedule: str = "a",
    stored_only: bool = False,
):
    """Run every mode of ``config`` in every schedule and return the comparison (retention and time ratios against
    the unpruned run of the same seed).

    ``save_mode``'s fine-tuned model (of ``save_schedule`` and the first seed) is saved to ``save_to``; a non-empty
    ``save_to`` is refused before any training unless ``overwrite``. Every plan is checked against the model's
    layer count before any training, too.

    A run is resumed from its last Trainer checkpoint if the process was interrupted; schedule (b) reuses the
    unpruned run of the same seed if it is already there. ``stored_only`` trains nothing and reports the runs
    already stored in ``config.results_dir`` (a grid measured so far); the unpruned run must be among them.

    Example:
        >>> results = run_finetune(FinetuneConfig(modes=("none", "all"), schedules=("a", "b")))  # doctest: +SKIP
        >>> results["modes"]["all"]["retention_f1"], results["schedules"]["b"]["all"]["retention_f1"]  # doctest: +SKIP
    """
    from transformers import AutoConfig

    from compress_utils.embedded import minilm_dir

    config = config or FinetuneConfig()
    planned = config.runs()
    if stored_only and (config.results_dir is None or save_mode is not None):
        raise ValueError(
            f"`stored_only` reports the runs stored in `results_dir` and trains nothing; it needs `results_dir` "
            f"(got {config.results_dir!r}) and no `save_mode` (got {save_mode!r})."
        )
    if save_mode is not None and (save_schedule, save_mode) not in planned:
        raise ValueError(
            f"`save_mode={save_mode!r}` with `save_schedule={save_schedule!r}` is not among the runs of this "
            f"comparison {planned}; choose one of them."
        )
    if save_to is not None:
        check_output_dir(save_to, overwrite=overwrite, argument="save_to")
    folder = config.model or str(minilm_dir())
    num_layers = AutoConfig.from_pretrained(folder).num_hidden_layers
    for mode in config.modes:  # minutes of training must not end in a plan that does not fit the model
        parse_mode(mode).check(num_layers, mode)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = prepare_clone_data(tokenizer, config)
    seeds = [config.seed + offset for offset in range(config.seeds)]
    runs = {schedule: {} for schedule in SCHEDULES}  # schedule -> mode -> one result per seed
    for schedule, mode in planned:
        runs[schedule][mode] = []
        for seed in seeds:
            saving = (schedule, mode) == (save_schedule, save_mode) and seed == seeds[0]
            stored = None if saving else _stored_result(config, mode, seed, schedule)
            if stored is not None:
                runs[schedule][mode].append(stored)
                continue
            if stored_only:
                logger.info("%s (schedule %s, seed %d): not stored yet, left out", mode, schedule, seed)
                continue
            if schedule == "b" and _last_checkpoint(run_dir(config, "none", seed)) is None:
                # the unpruned run's result came from results_dir, but its weights (the start and teacher of
                # schedule b) are not on this machine: train it again (the same weights on the same machine; on
                # another CPU they differ a little, so the b runs record the scores of the start they had)
                finetune_mode("none", data, tokenizer, config, seed=seed)
            result = finetune_mode(mode, data, tokenizer, config, save_to=save_to if saving else None,
                                   overwrite=overwrite, seed=seed, schedule=schedule)  # fmt: skip
            _store_result(config, result)
            runs[schedule][mode].append(result)
    if stored_only:  # a mode is reported with the seeds measured so far, or not at all
        runs = {
            schedule: {mode: found for mode, found in by_mode.items() if found} for schedule, by_mode in runs.items()
        }
        if not runs["a"].get("none"):
            raise ValueError(
                f"`stored_only`: the unpruned run (mode 'none', schedule a) of these settings is not in "
                f"{config.results_dir!r}; train it first (without `stored_only`)."
            )
    baseline = runs["a"].get("none")
    if baseline is not None:  # retention against the unpruned run of the same seed
        for by_mode in runs.values():
            for results in by_mode.values():
                for result, base in zip(results, baseline):
                    result["retention_accuracy"] = result["accuracy"] / max(base["accuracy"], 1e-12)
                    result["retention_f1"] = result["f1"] / max(base["f1"], 1e-12)
                    base_seconds, seconds = whole_train_seconds(base), whole_train_seconds(result)
                    if base_seconds is not None and seconds is not None:
                        result["train_time_ratio"] = base_seconds / seconds
                    result["eval_time_ratio"] = base["eval_seconds"] / result["eval_seconds"]
    modes = {mode: _aggregate(results) for mode, results in runs["a"].items()}
    settings = asdict(config)
    settings.update(train_size=len(data["train"]), test_size=len(data["test"]), torch=torch.__version__)
    # where it ran: README tables say so (the CPU decides which dtype "auto" picks)
    output = {"settings": settings, "modes": modes}
    later = {s: {mode: _aggregate(results) for mode, results in runs[s].items()} for s in SCHEDULES[1:] if runs[s]}
    if later:
        output["schedules"] = later
    output["capability"] = probe()
    return output


# settings that do not change a run's numbers (where files go, how many other runs there are, logging)
_NOT_IN_RUN_KEY = ("modes", "schedules", "seeds", "output_dir", "results_dir", "track_emissions")


def run_result_path(config: FinetuneConfig, mode: str, seed: int, schedule: str = "a") -> str | None:
    """The JSON file of one run in ``config.results_dir`` (None when it is off): named by the mode, schedule, seed
    and a hash of every setting that changes the run's numbers (schedule b's settings only for schedule b)."""
    if config.results_dir is None:
        return None
    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_RUN_KEY}
    if schedule == "a":
        settings = {k: v for k, v in settings.items() if not k.startswith("distill_")}
    key = hashlib.sha256(json.dumps([settings, mode, seed, schedule], sort_keys=True).encode()).hexdigest()[:10]
    return os.path.join(config.results_dir, f"{schedule}-{mode_folder(mode)}-seed{seed}-{key}.json")


def _stored_result(config: FinetuneConfig, mode: str, seed: int, schedule: str) -> dict | None:
    path = run_result_path(config, mode, seed, schedule)
    if path is None or not os.path.isfile(path):
        return None
    logger.info("%s (schedule %s, seed %d): read from %s", mode, schedule, seed, path)
    with open(path, encoding="utf-8") as handle:
        return {**json.load(handle), "read_from": os.path.basename(path)}


def _store_result(config: FinetuneConfig, result: dict) -> None:
    path = run_result_path(config, result["mode"], result["seed"], result["schedule"])
    if path is None:
        return
    from accelerate import PartialState

    if PartialState(cpu=not torch.cuda.is_available()).is_main_process:  # every process holds the same result
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def results_by_schedule(results: dict) -> dict[str, dict]:
    """``{schedule: {mode: entry}}`` of a comparison: ``"a"`` is ``results["modes"]`` (with the unpruned baseline),
    then every schedule of ``results["schedules"]``; results written before schedules existed give ``{"a": ...}``.

    Example:
        >>> results_by_schedule({"modes": {"none": {}}, "schedules": {"b": {"all": {}}}})
        {'a': {'none': {}}, 'b': {'all': {}}}
    """
    return {"a": results["modes"], **results.get("schedules", {})}


# per-run numbers whose mean and standard deviation a multi-seed result reports
_SPREAD = ("accuracy", "f1", "precision", "recall", "retention_accuracy", "retention_f1", "eval_flops_ratio_analytic")


def _aggregate(results: list[dict]) -> dict:
    """One mode's runs (one per seed) as the first run's fields with the numbers of ``_SPREAD`` replaced by their mean,
    plus ``<name>_std`` (population standard deviation), ``seeds`` and, for several seeds, every ``runs`` entry."""
    if len(results) == 1:
        return {**results[0], "seeds": [results[0]["seed"]]}
    merged = dict(results[0])
    for name in _SPREAD:
        if name in merged:
            values = np.array([result[name] for result in results], dtype=np.float64)
            merged[name], merged[f"{name}_std"] = float(values.mean()), float(values.std())
    for name in ("train_time_ratio", "eval_time_ratio", "train_seconds", "eval_seconds", "eval_input_length"):
        values = [result.get(name) for result in results]
        merged.pop(name, None)
        if all(value is not None for value in values):  # one unknown (a resumed run's time) makes the mean unknown
            merged[name] = float(np.mean(values))
    merged["eval_kept_lengths"] = np.mean([r["eval_kept_lengths"] for r in results], axis=0).round(2).tolist()
    merged["seeds"] = [result["seed"] for result in results]
    merged["runs"] = results
    return merged


def finetune_markdown(results: dict) -> str:
    """The comparison as Markdown: one table per schedule, (a) first (with the unpruned baseline)."""
    settings = results["settings"]
    by_schedule = results_by_schedule(results)
    spread = any("f1_std" in entry for modes in by_schedule.values() for entry in modes.values())

    def value(entry, name, percent=False, default=1.0):
        number = entry.get(name, default)
        text = f"{number:.2%}" if percent else f"{number:.4f}"
        if spread and f"{name}_std" in entry:
            deviation = entry[f"{name}_std"]
            text += f" ± {deviation:.2%}" if percent else f" ± {deviation:.4f}"
        return text

    def speed(entry) -> str:
        if "train_time_ratio" in entry:
            return f"{entry['train_time_ratio']:.2f}x"
        return "n/a (resumed)" if whole_train_seconds(entry) is None else "n/a"

    def table(modes: dict) -> list[str]:
        rows = [
            "| mode | accuracy | F1 | retention (acc) | retention (F1) | fine-tuning speed vs none | eval FLOPs ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for mode, entry in modes.items():
            rows.append(
                f"| {mode} | {value(entry, 'accuracy')} | {value(entry, 'f1')} | "
                f"{value(entry, 'retention_accuracy', True)} | {value(entry, 'retention_f1', True)} | "
                f"{speed(entry)} | {entry['eval_flops_ratio_analytic']:.2f}x |"
            )
        return rows

    packages = settings.get("packages") or ()
    source = "stdlib" + "".join(f" and `{name}`" for name in packages)
    lines = [
        f"Clone detection ({source} functions, split by file), {settings['train_size']} train / {settings['test_size']} "
        f"test pairs, {settings['max_length']} tokens, {settings['epochs']} epoch(s), alpha {settings['alpha']}",
        "",
        *table(results["modes"]),
    ]
    if "b" in by_schedule:
        lines += ["", f"Schedule (b): the unpruned `none` run above, then {settings.get('distill_epochs')} epoch(s) with "
                  f"pruning on, distilling from it (temperature {settings.get('distill_temperature')}, KL weight "
                  f"{settings.get('distill_kl_weight')}); retention is against the same unpruned runs, the speed "
                  "column compares the pruned phase alone with the unpruned fine-tuning it follows.", "",
                  *table(by_schedule["b"])]  # fmt: skip
    if spread:
        seeds = next(iter(results["modes"].values()))["seeds"]
        lines += ["", f"Mean ± standard deviation over {len(seeds)} training seeds ({', '.join(map(str, seeds))}); "
                  "the data and its split are the same for every seed, retention is against the unpruned run of the "
                  "same seed."]  # fmt: skip
    machines = _machines_line(by_schedule)
    if machines:  # else the results' own capability (one machine ran them all) is what README shows
        lines += ["", machines]
    return "\n".join(lines)


def _machines_line(by_schedule: dict) -> str | None:
    """Where the runs ran, from what each run records (a grid stored over sessions ran on several machines, and the
    table is rendered on yet another); None when no run records it."""
    from collections import Counter

    runs = [run for modes in by_schedule.values() for entry in modes.values() for run in entry.get("runs", [entry])]
    counts = Counter(f"{run['cpu']}, PyTorch CPU capability {run['cpu_capability']}" for run in runs if run.get("cpu"))
    if not counts and not any(run.get("read_from") for run in runs):
        return None  # one run of one machine, whose capability the results hold
    known = "; ".join(f"{machine} ({n} run{'s' if n > 1 else ''})" for machine, n in sorted(counts.items()))
    unknown = len(runs) - sum(counts.values())
    if unknown:
        known += "; " if known else ""
        known += (f"{unknown} run{'s' if unknown > 1 else ''} stored before runs recorded their machine "
                  "(several sessions' CPUs; fp32 fine-tuning repeats on one CPU, not exactly across CPUs)")  # fmt: skip
    return f"_Measured on: {known}._"


# issue 13's retention targets: some plan at >= 2x fewer FLOPs keeps >= 97% of the unpruned F1; `all` at alpha 1 >= 95%
FRONTIER_FLOPS, FRONTIER_RETENTION, ALL_ALPHA1_RETENTION = 2.0, 0.97, 0.95


def frontier_targets(results: dict) -> list[str]:
    """The retention targets as Markdown list lines (met or not, with the runs that decide them), for a comparison
    that ran pruning modes in one or more schedules.

    Example:
        >>> entry = {"layers": "all", "alpha": 1.0, "retention_f1": 0.96, "eval_flops_ratio_analytic": 2.2}
        >>> print("\\n".join(frontier_targets({"modes": {"all": entry}})))
        - NOT met: some plan at >= 2.0x FLOPs keeps >= 97% of the unpruned F1 (best: all (a) 96.00% at 2.20x)
        - met: `all` at alpha 1 keeps >= 95% of the unpruned F1 (all (a) 96.00%)
    """
    runs = [
        (f"{mode} ({schedule})", entry)
        for schedule, modes in results_by_schedule(results).items()
        for mode, entry in modes.items()
        if entry.get("layers", mode) != "none"
    ]
    fast = [(name, entry) for name, entry in runs if entry["eval_flops_ratio_analytic"] >= FRONTIER_FLOPS]
    if fast:
        name, best = max(fast, key=lambda item: item[1]["retention_f1"])
        met = best["retention_f1"] >= FRONTIER_RETENTION
        found = f"best: {name} {best['retention_f1']:.2%} at {best['eval_flops_ratio_analytic']:.2f}x"
    else:
        met, found = False, "no run reaches it"
    lines = [
        f"- {'met' if met else 'NOT met'}: some plan at >= {FRONTIER_FLOPS}x FLOPs keeps >= {FRONTIER_RETENTION:.0%} "
        f"of the unpruned F1 ({found})"
    ]
    everywhere = [(name, entry) for name, entry in runs if entry.get("layers") == "all" and entry.get("alpha") == 1.0]
    met = any(entry["retention_f1"] >= ALL_ALPHA1_RETENTION for _, entry in everywhere)
    found = ", ".join(f"{name} {entry['retention_f1']:.2%}" for name, entry in everywhere) or "not run"
    lines.append(
        f"- {'met' if met else 'NOT met'}: `all` at alpha 1 keeps >= {ALL_ALPHA1_RETENTION:.0%} of the unpruned F1 "
        f"({found})"
    )
    return lines


def frontier_points(results: dict) -> list[dict]:
    """Every run of a comparison as one point of the retention frontier: ``mode``, ``schedule``, ``f1``,
    ``retention_f1`` and ``flops_ratio`` (analytic, on the test pairs), in the order the comparison lists them.

    Example:
        >>> entry = {"f1": 0.95, "retention_f1": 0.96, "eval_flops_ratio_analytic": 2.2}
        >>> frontier_points({"modes": {"all": entry}})
        [{'mode': 'all', 'schedule': 'a', 'f1': 0.95, 'retention_f1': 0.96, 'flops_ratio': 2.2}]
    """
    return [
        {"mode": mode, "schedule": schedule, "f1": entry["f1"], "retention_f1": entry.get("retention_f1", 1.0),
         "flops_ratio": entry["eval_flops_ratio_analytic"]}
        for schedule, modes in results_by_schedule(results).items()
        for mode, entry in modes.items()
    ]  # fmt: skip


def plot_frontier(results: dict, path: str | os.PathLike) -> None:
    """F1 retention against the analytic FLOPs ratio of every mode (and schedule): the mean with a bar of one standard
    deviation over the training seeds, and each seed's run as a small dot, so the spread is seen next to the
    differences. Schedule (b) is drawn with squares and labelled ``<mode> (b)``."""
    from compress_utils.plotting import save_figure

    def draw(figure):
        axis = figure.add_subplot()
        for schedule, modes in results_by_schedule(results).items():
            for mode, entry in modes.items():
                runs = entry.get("runs", [entry])
                x = [run["eval_flops_ratio_analytic"] for run in runs]
                y = [100 * run.get("retention_f1", 1.0) for run in runs]
                line = axis.errorbar(
                    entry["eval_flops_ratio_analytic"], 100 * entry.get("retention_f1", 1.0),
                    yerr=100 * entry.get("retention_f1_std", 0.0), xerr=entry.get("eval_flops_ratio_analytic_std", 0.0),
                    marker="o" if schedule == "a" else "s", capsize=3,
                    label=mode if schedule == "a" else f"{mode} ({schedule})",
                )  # fmt: skip
                axis.scatter(x, y, s=10, color=line[0].get_color(), alpha=0.5)
        seeds = next(iter(results["modes"].values())).get("seeds", [results["settings"]["seed"]])
        axis.axhline(100, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("FLOPs ratio (stock / ALPINE, analytic, test pairs)")
        axis.set_ylabel("F1 retention vs unpruned (%)")
        axis.set_title(f"ALPINE clone detection: retention vs FLOPs ({len(seeds)} seed(s), mean ± std)", fontsize=10)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, ncol=2)

    save_figure(draw, path, (6.5, 4.0))


__all__ = [
    "ALL_ALPHA1_RETENTION",
    "FRONTIER_FLOPS",
    "FRONTIER_RETENTION",
    "SCHEDULES",
    "START_SCORES",
    "FinetuneConfig",
    "data_fingerprint",
    "fast_bf16_available",
    "finetune_markdown",
    "finetune_mode",
    "finetune_trainer",
    "frontier_points",
    "frontier_targets",
    "plot_frontier",
    "results_by_schedule",
    "run_dir",
    "run_finetune",
    "teacher_checkpoint",
]
