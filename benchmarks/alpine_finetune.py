"""Accuracy retention: fine-tune an encoder on clone detection with and without ALPINE, with a stock ``Trainer``.

Each mode (no pruning; ALPINE all/even/odd, with and without merging) fine-tunes the same pretrained weights on the
same data with the same seed, prunes during fine-tuning and evaluation (as the paper does), and reports accuracy, F1,
retention against the unpruned run and the fine-tuning wall-time ratio.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from alpine_hf.callbacks import (
    AlpineStatsCallback,
    EmissionsCallback,
    check_emissions_country,
    find_alpine_encoder,
    reduce_alpine_stats,
)
from alpine_hf.modeling_alpine import AlpineBertForSequenceClassification, AlpineRobertaForSequenceClassification
from compress_utils.capability import probe, resolve_bf16
from compress_utils.io import atomic_dir, check_output_dir
from compress_utils.metric_loading import load_metric

from .clone_detection import build_clone_dataset

logger = logging.getLogger(__name__)

ALL_MODES = ("none", "all", "all-nomerge", "even", "even-nomerge", "odd", "odd-nomerge")


def parse_mode(mode: str) -> tuple[str, bool]:
    """``"even-nomerge"`` -> ``("even", False)``; ``"all"`` -> ``("all", True)``."""
    layers, _, suffix = mode.partition("-")
    if layers not in ("none", "all", "even", "odd") or suffix not in ("", "nomerge"):
        raise ValueError(f"`mode={mode!r}` is not one of {ALL_MODES}.")
    return layers, suffix != "nomerge"


@dataclass
class FinetuneConfig:
    """Settings of the clone-detection fine-tuning comparison."""

    model: str | None = field(default=None, metadata={"help": "Checkpoint folder; None = embedded all-MiniLM-L6-v2."})
    modes: tuple[str, ...] = field(default=ALL_MODES, metadata={"help": f"Modes to run, from {ALL_MODES}."})
    alpha: float = field(default=1.0, metadata={"help": "ALPINE keep-window width."})
    train_pairs: int = field(default=1200, metadata={"help": "Training pairs (balanced)."})
    eval_pairs: int = field(default=400, metadata={"help": "Test pairs (balanced, files unseen in training)."})
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
    output_dir: str = field(default="runs/alpine_finetune", metadata={"help": "Where Trainer checkpoints go."})
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 autocast for every mode; None = where the hardware has fast bf16."}
    )
    track_emissions: str | None = field(
        default=None,
        metadata={"help": "ISO country code of the grid (e.g. 'FRA') to record CO2 with codecarbon; None = off."},
    )

    def __post_init__(self):
        self.modes = tuple(self.modes)
        for mode in self.modes:
            parse_mode(mode)
        for name in ("train_pairs", "eval_pairs", "max_length", "batch_size", "seeds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")
        if not self.alpha > 0:
            raise ValueError(f"`alpha` must be > 0, got {self.alpha}.")
        if self.bf16 is None:
            self.bf16 = fast_bf16_available()
        if self.track_emissions is not None:
            self.track_emissions = check_emissions_country(self.track_emissions)


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
    )

    def encode(batch):
        encoded = tokenizer(batch["code1"], batch["code2"], truncation="longest_first", max_length=config.max_length)
        encoded["labels"] = batch["label"]
        return encoded

    columns = dataset["train"].column_names
    return {split: dataset[split].map(encode, batched=True, remove_columns=columns) for split in ("train", "test")}


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


def finetune_mode(mode: str, data: dict, tokenizer, config: FinetuneConfig, save_to: str | None = None, callbacks=(),
                  overwrite: bool = False, seed: int | None = None, **overrides) -> dict:  # fmt: skip
    """Fine-tune and evaluate one mode; optionally save the fine-tuned model (atomically) to ``save_to``.

    A non-empty ``save_to`` is refused, before training, unless ``overwrite``. ``seed`` (default ``config.seed``)
    seeds the classifier head, dropout and batch order; runs with another seed than ``config.seed`` keep their
    Trainer checkpoints in ``<output_dir>/<mode>/seed-<seed>``.

    ``callbacks`` and ``overrides`` (``TrainingArguments`` fields) go to :func:`finetune_trainer`.
    """
    from compress_utils.embedded import minilm_dir

    layers, merge = parse_mode(mode)
    folder = config.model or str(minilm_dir())
    seed = config.seed if seed is None else seed
    set_seed(seed)
    model = _model_class(folder).from_pretrained(
        folder,
        num_labels=2,
        alpine_layers=layers,
        alpine_merge=merge,
        alpine_alpha=config.alpha,
        attn_implementation="sdpa",
    )
    output_dir = os.path.join(config.output_dir, mode)
    if seed != config.seed:
        output_dir = os.path.join(output_dir, f"seed-{seed}")
    overrides = {"seed": seed, "data_seed": seed, **overrides}
    trainer = finetune_trainer(model, data["train"], tokenizer, config, output_dir, callbacks, **overrides)
    checkpoint = _last_checkpoint(trainer.args.output_dir)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.perf_counter() - started
    encoder = find_alpine_encoder(trainer.model)
    encoder.reset_alpine_stats()
    started = time.perf_counter()
    prediction = trainer.predict(data["test"])  # sharded over processes under accelerate, gathered on every one
    eval_seconds = time.perf_counter() - started
    stats = reduce_alpine_stats(encoder.alpine_stats, trainer.args.device)
    result = _metrics(prediction.predictions.argmax(-1), prediction.label_ids)
    result.update(
        mode=mode,
        seed=seed,
        layers=layers,
        merge=merge,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        resumed_from=checkpoint,
        eval_flops_ratio_analytic=stats["flops_stock"] / max(stats["flops_alpine"], 1.0),
        eval_kept_lengths=[round(x / max(stats["sequences"], 1), 2) for x in stats["kept_tokens"].tolist()],
        eval_input_length=stats["input_tokens"] / max(stats["sequences"], 1),
    )
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
    logger.info("%s: accuracy %.4f, F1 %.4f, %.0f s", mode, result["accuracy"], result["f1"], train_seconds)
    return result


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def run_finetune(
    config: FinetuneConfig | None = None,
    save_mode: str | None = None,
    save_to: str | None = None,
    overwrite: bool = False,
):
    """Run every mode of ``config`` and return the comparison (retention and time ratios against ``none``).

    ``save_mode``'s fine-tuned model is saved to ``save_to``; a non-empty ``save_to`` is refused before any
    training unless ``overwrite``.

    A finished mode's Trainer run is resumed from its last checkpoint if the process was interrupted.

    Example:
        >>> results = run_finetune(FinetuneConfig(modes=("none", "all")))  # doctest: +SKIP
        >>> results["modes"]["all"]["retention_f1"]  # doctest: +SKIP
    """
    from compress_utils.embedded import minilm_dir

    if save_to is not None:
        check_output_dir(save_to, overwrite=overwrite, argument="save_to")
    config = config or FinetuneConfig()
    tokenizer = AutoTokenizer.from_pretrained(config.model or minilm_dir())
    data = prepare_clone_data(tokenizer, config)
    seeds = [config.seed + offset for offset in range(config.seeds)]
    runs = {}  # mode -> one result per seed
    for mode in config.modes:
        runs[mode] = [
            finetune_mode(
                mode,
                data,
                tokenizer,
                config,
                save_to=save_to if mode == save_mode and seed == seeds[0] else None,
                overwrite=overwrite,
                seed=seed,
            )  # fmt: skip
            for seed in seeds
        ]
    baseline = runs.get("none")
    if baseline is not None:  # retention against the unpruned run of the same seed
        for results in runs.values():
            for result, base in zip(results, baseline):
                result["retention_accuracy"] = result["accuracy"] / max(base["accuracy"], 1e-12)
                result["retention_f1"] = result["f1"] / max(base["f1"], 1e-12)
                result["train_time_ratio"] = base["train_seconds"] / result["train_seconds"]
                result["eval_time_ratio"] = base["eval_seconds"] / result["eval_seconds"]
    modes = {mode: _aggregate(results) for mode, results in runs.items()}
    settings = asdict(config)
    settings.update(train_size=len(data["train"]), test_size=len(data["test"]), torch=torch.__version__)
    # where it ran: README tables say so (the CPU decides which dtype "auto" picks)
    return {"settings": settings, "modes": modes, "capability": probe()}


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
        if name in merged:
            merged[name] = float(np.mean([result[name] for result in results]))
    merged["eval_kept_lengths"] = np.mean([r["eval_kept_lengths"] for r in results], axis=0).round(2).tolist()
    merged["seeds"] = [result["seed"] for result in results]
    merged["runs"] = results
    return merged


def finetune_markdown(results: dict) -> str:
    """The comparison as a Markdown table."""
    settings = results["settings"]
    lines = [
        f"Clone detection (stdlib functions, split by file), {settings['train_size']} train / {settings['test_size']} "
        f"test pairs, {settings['max_length']} tokens, {settings['epochs']} epoch(s), alpha {settings['alpha']}",
        "",
        "| mode | accuracy | F1 | retention (acc) | retention (F1) | fine-tuning speed vs none | eval FLOPs ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    spread = any("f1_std" in entry for entry in results["modes"].values())

    def value(entry, name, percent=False, default=1.0):
        number = entry.get(name, default)
        text = f"{number:.2%}" if percent else f"{number:.4f}"
        if spread and f"{name}_std" in entry:
            deviation = entry[f"{name}_std"]
            text += f" ± {deviation:.2%}" if percent else f" ± {deviation:.4f}"
        return text

    for mode, entry in results["modes"].items():
        lines.append(
            f"| {mode} | {value(entry, 'accuracy')} | {value(entry, 'f1')} | "
            f"{value(entry, 'retention_accuracy', True)} | {value(entry, 'retention_f1', True)} | "
            f"{entry.get('train_time_ratio', 1):.2f}x | {entry['eval_flops_ratio_analytic']:.2f}x |"
        )
    if spread:
        seeds = next(iter(results["modes"].values()))["seeds"]
        lines += ["", f"Mean ± standard deviation over {len(seeds)} training seeds ({', '.join(map(str, seeds))}); "
                  "the data and its split are the same for every seed, retention is against the unpruned run of the "
                  "same seed."]  # fmt: skip
    return "\n".join(lines)


def plot_frontier(results: dict, path: str | os.PathLike) -> None:
    """F1 retention against the analytic FLOPs ratio of every mode: the mean with a bar of one standard deviation
    over the training seeds, and each seed's run as a small dot, so the spread is seen next to the differences."""
    from compress_utils.plotting import save_figure

    def draw(figure):
        axis = figure.add_subplot()
        for mode, entry in results["modes"].items():
            runs = entry.get("runs", [entry])
            x = [run["eval_flops_ratio_analytic"] for run in runs]
            y = [100 * run.get("retention_f1", 1.0) for run in runs]
            line = axis.errorbar(
                entry["eval_flops_ratio_analytic"], 100 * entry.get("retention_f1", 1.0),
                yerr=100 * entry.get("retention_f1_std", 0.0), xerr=entry.get("eval_flops_ratio_analytic_std", 0.0),
                marker="o", capsize=3, label=mode,
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
    "ALL_MODES",
    "FinetuneConfig",
    "finetune_markdown",
    "finetune_mode",
    "finetune_trainer",
    "fast_bf16_available",
    "parse_mode",
    "plot_frontier",
    "run_finetune",
]
