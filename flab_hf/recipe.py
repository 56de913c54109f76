"""The Flab-Pruner recipe: a dataclass of settings plus one function (vocabulary -> layers -> FFN, paper Fig. 1)."""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import torch

from compress_utils.io import atomic_dir

from .pruning import (
    FFN_RULES,
    PAPER_FFN_RULES,
    CalibrationRunner,
    allocate_ffn_budget,
    check_layer_count,
    check_model,
    count_parameters,
    ffn_importance,
    ffn_plan,
    iter_corpus_texts,
    prune_ffn_,
    prune_vocabulary,
    remove_layers_,
    resolve_ffn_neurons,
    select_ffn_rule,
    select_layers_block,
    select_layers_cosine,
    select_layers_kl,
    to_saveable,
    tokenizer_state,
)

logger = logging.getLogger(__name__)

LAYER_METHODS = ("kl", "cosine", "block")
FFN_ALLOCATIONS = ("uniform", "importance")


@dataclass
class FlabConfig:
    """Flab-Pruner settings (paper Sec. 3, 4.5); see :func:`flab_prune`.

    Example:
        >>> FlabConfig(layers_to_prune=2, ffn_neurons=16, ffn_rule="auto").layer_method
        'kl'
    """

    vocab: bool = field(default=True, metadata={"help": "Prune the vocabulary to the tokens the corpus uses."})
    min_token_count: int = field(default=1, metadata={"help": "Keep tokens used at least this often (Eq. 7)."})
    keep_chat: bool | None = field(
        default=None,
        metadata={
            "help": "Also keep the chat template's tokens and the model's own answers to instruction prompts built "
            "from the corpus (an instruct model keeps its markdown and English); None = when the tokenizer has a "
            "chat template."
        },
    )
    answer_prompts: int = field(
        default=64, metadata={"help": "Instruction prompts whose greedy answers are kept (with `keep_chat`)."}
    )
    answer_tokens: int = field(default=256, metadata={"help": "Longest kept answer, in tokens."})
    answers_cache: str | None = field(
        default=None,
        metadata={
            "help": "JSON-lines file the model's answers are cached in (resumable; recovery can reuse them as "
            "self-distillation data, see flab_hf.distillation_data.self_answers); None = not cached."
        },
    )
    keep_merges: int = field(
        default=0,
        metadata={"help": "Also keep the tokens of the tokenizer's first N BPE merges (its most frequent pieces)."},
    )
    keep_whitespace: bool = field(
        default=True,
        metadata={"help": "Also keep every whitespace-only token (indentation and trailing-space runs prompts use)."},
    )
    layers_to_prune: int = field(default=4, metadata={"help": "Decoder layers to remove (paper: 4)."})
    layer_method: str = field(
        default="kl",
        metadata={
            "help": f"One of {LAYER_METHODS}: greedy iterative KL, ShortGPT's one-shot cosine, or the contiguous block "
            "with the lowest KL."
        },
    )
    ffn_neurons: int | list[int] = field(
        default=256, metadata={"help": "Intermediate neurons removed per layer: an int or one count per kept layer."}
    )
    ffn_rule: str = field(default="auto", metadata={"help": f"One of {FFN_RULES} or 'auto' (lowest KL)."})
    auto_rules: tuple[str, ...] = field(
        default=FFN_RULES,
        metadata={
            "help": "Rules `ffn_rule='auto'` chooses from (others are only reported); the paper's four are "
            f"{PAPER_FFN_RULES}."
        },
    )
    ffn_allocation: str = field(
        default="uniform",
        metadata={
            "help": f"One of {FFN_ALLOCATIONS}: remove `ffn_neurons` from every layer, or remove as many in all but "
            "split over the layers by neuron importance (at most half of a layer)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the `random` FFN rule."})
    # 16 x 256 is the smallest size measured to make the choices of 32 x 256 on SmolLM2 (6 x 128 swapped a layer):
    # benchmarks/results/flab_calibration.json
    calibration_samples: int = field(default=16, metadata={"help": "Calibration sequences for the KL objective."})
    calibration_length: int = field(default=256, metadata={"help": "Tokens per calibration sequence."})
    batch_size: int = field(default=4, metadata={"help": "Calibration sequences per forward pass."})
    text_column: str | None = field(default=None, metadata={"help": "Text column when the corpus is a Dataset."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self):
        for name in ("min_token_count", "calibration_samples", "calibration_length", "batch_size", "answer_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if not isinstance(self.keep_whitespace, bool):
            raise ValueError(f"`keep_whitespace` must be True or False, got {self.keep_whitespace!r}.")
        for name in ("answer_prompts", "keep_merges"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an int >= 0, got {value!r}.")
        if (
            isinstance(self.layers_to_prune, bool)
            or not isinstance(self.layers_to_prune, int)
            or self.layers_to_prune < 0
        ):
            raise ValueError(f"`layers_to_prune` must be an int >= 0, got {self.layers_to_prune!r}.")
        if self.layer_method not in LAYER_METHODS:
            raise ValueError(f"`layer_method` must be one of {LAYER_METHODS}, got {self.layer_method!r}.")
        if self.ffn_rule != "auto" and self.ffn_rule not in FFN_RULES:
            raise ValueError(f"`ffn_rule` must be 'auto' or one of {FFN_RULES}, got {self.ffn_rule!r}.")
        if self.ffn_allocation not in FFN_ALLOCATIONS:
            raise ValueError(f"`ffn_allocation` must be one of {FFN_ALLOCATIONS}, got {self.ffn_allocation!r}.")
        if self.ffn_allocation == "importance" and isinstance(self.ffn_neurons, (list, tuple)):
            raise ValueError(
                "`ffn_allocation='importance'` splits one budget over the layers itself; give `ffn_neurons` as one int "
                f"(neurons per layer on average), not the list {self.ffn_neurons!r}."
            )
        self.auto_rules = tuple(self.auto_rules)
        if not self.auto_rules or any(rule not in FFN_RULES for rule in self.auto_rules):
            raise ValueError(f"`auto_rules` must be a non-empty subset of {FFN_RULES}, got {self.auto_rules!r}.")
        neurons = self.ffn_neurons
        values = neurons if isinstance(neurons, (list, tuple)) else [neurons]
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
            raise ValueError(f"`ffn_neurons` must be an int >= 0 or a list of them, got {neurons!r}.")


def calibration_ids(tokenizer, texts: list[str], samples: int, length: int, max_positions: int | None) -> torch.Tensor:
    """``samples`` windows of ``length`` tokens taken evenly from the concatenated corpus (deterministic)."""
    if max_positions is not None and length > max_positions:
        raise ValueError(
            f"`calibration_length={length}` exceeds the model's context ({max_positions} positions, "
            "`max_position_embeddings`); use a calibration length <= the context."
        )
    ids: list[int] = []
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"] + separator)
        if len(ids) >= samples * length * 4:  # enough to spread the windows over several files
            break
    windows = len(ids) // length
    if windows < 1:
        raise ValueError(
            f"The corpus holds {len(ids)} tokens, fewer than one calibration window of {length}; give more text "
            "or a smaller `calibration_length`."
        )
    starts = torch.linspace(0, windows - 1, steps=min(samples, windows)).round().long().tolist()
    return torch.tensor([ids[s * length : (s + 1) * length] for s in starts], dtype=torch.long)


def check_ffn_neurons_range(ffn_neurons, widths: list[int]):
    """Refuse ``ffn_neurons`` that would empty an FFN, before the vocabulary pruning and layer search start.

    Which layers survive the layer search is known only after it, so a per-layer list is checked against the widest
    layer (and against every layer when all widths are equal, the usual case).

    Example:
        >>> check_ffn_neurons_range(64, [64, 64])
        Traceback (most recent call last):
        ...
        ValueError: `ffn_neurons=64` but the narrowest FFN has 64 neurons; remove fewer (at most 63).
    """
    if isinstance(ffn_neurons, (list, tuple)):
        limit = max(widths) if len(set(widths)) > 1 else widths[0]
        for index, count in enumerate(ffn_neurons):
            if count >= limit:
                raise ValueError(
                    f"`ffn_neurons[{index}]={count}` but the FFN layers have at most {limit} neurons; remove fewer "
                    f"(at most {limit - 1}, at least one neuron must remain)."
                )
    elif ffn_neurons >= min(widths):
        raise ValueError(
            f"`ffn_neurons={ffn_neurons}` but the narrowest FFN has {min(widths)} neurons; remove fewer "
            f"(at most {min(widths) - 1})."
        )


def flab_prune(model, tokenizer, corpus, config: FlabConfig | None = None, calibration: torch.Tensor | None = None):
    """Prune vocabulary, then layers, then FFN neurons (paper Fig. 1); returns ``(model, tokenizer, report)``.

    ``model`` is not changed: the pruned model is a copy (stock class if FFN widths are uniform, else a
    ``Flab*ForCausalLM``). ``corpus`` (a ``datasets.Dataset``, an iterable of strings or a directory of source files)
    decides the kept tokens and provides the calibration set unless ``calibration`` (token ids of the *original*
    tokenizer, shape ``(n, length)``) is given. The report holds parameters per component before/after, the KL to the
    dense model after each step, removed layers (original indices), rule KLs, the chosen rule and seconds per stage.

    Example:
        >>> pruned, tok, report = flab_prune(model, tokenizer, "/usr/lib/python3.11",
        ...                                   FlabConfig(layers_to_prune=4, ffn_neurons=256))  # doctest: +SKIP
    """
    config = config or FlabConfig()
    check_model(model)
    check_layer_count(model, config.layers_to_prune)
    if config.vocab:
        tokenizer_state(tokenizer)
    texts = iter_corpus_texts(corpus, text_column=config.text_column)
    total_layers = len(model.model.layers)
    if (
        isinstance(config.ffn_neurons, (list, tuple))
        and len(config.ffn_neurons) != total_layers - config.layers_to_prune
    ):
        raise ValueError(
            f"`ffn_neurons` lists {len(config.ffn_neurons)} values but {total_layers - config.layers_to_prune} layers "
            f"remain after removing {config.layers_to_prune} of {total_layers}; give one count per remaining layer."
        )
    check_ffn_neurons_range(config.ffn_neurons, [layer.mlp.down_proj.in_features for layer in model.model.layers])
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if calibration is not None and max_positions is not None and calibration.shape[-1] > max_positions:
        raise ValueError(
            f"the calibration sequences have {calibration.shape[-1]} tokens but the model's context is "
            f"{max_positions} (`max_position_embeddings`); use shorter calibration sequences."
        )
    if calibration is None:
        calibration = calibration_ids(
            tokenizer, texts, config.calibration_samples, config.calibration_length, max_positions
        )

    report = {"config": asdict(config), "times": {}, "steps": []}
    dense_params = count_parameters(model)
    report["params_before"] = dense_params
    pruned = copy.deepcopy(model).eval()
    pruned_tokenizer = tokenizer

    start = time.perf_counter()
    if config.vocab:
        pruned, pruned_tokenizer, kept = prune_vocabulary(
            pruned, tokenizer, texts, min_count=config.min_token_count, progress=config.progress,
            keep_chat=config.keep_chat, answer_prompts=config.answer_prompts, answer_tokens=config.answer_tokens,
            keep_merges=config.keep_merges, answers_cache=config.answers_cache,
            keep_whitespace=config.keep_whitespace,
        )  # fmt: skip
        new_id = {old: new for new, old in enumerate(kept)}
        # calibration windows made of removed tokens cannot be fed to the pruned model: map them to unk/eos
        fallback = pruned.config.eos_token_id if isinstance(pruned.config.eos_token_id, int) else 0
        calibration = torch.tensor(
            [[new_id.get(i, fallback) for i in row] for row in calibration.tolist()], dtype=torch.long
        )
        report["vocab"] = {"before": model.get_input_embeddings().weight.shape[0], "after": len(kept)}
        report["kept_token_ids"] = kept
    report["times"]["vocab_s"] = round(time.perf_counter() - start, 3)
    report["params_after_vocab"] = count_parameters(pruned)

    # the reference distribution is the dense model's restricted to kept ids: vocabulary pruning leaves those
    # logits unchanged, so the vocabulary-pruned model gives exactly it
    runner = CalibrationRunner(pruned, calibration, batch_size=config.batch_size)
    references = runner.full_log_probs()
    report["steps"].append({"stage": "vocab", "kl": 0.0})

    start = time.perf_counter()
    removed: list[int] = []
    if config.layers_to_prune:
        if config.layer_method == "kl":
            search = select_layers_kl(pruned, runner, references, config.layers_to_prune, progress=config.progress)
            removed = search["removed"]
            for index, kl in zip(removed, search["kl"]):
                report["steps"].append({"stage": "layer", "removed": index, "kl": kl})
            report["layer_scores"] = [{str(k): v for k, v in step.items()} for step in search["scores"]]
        elif config.layer_method == "block":
            search = select_layers_block(pruned, runner, references, config.layers_to_prune, progress=config.progress)
            removed = search["removed"]
            report["layer_scores"] = [{str(k): v for k, v in search["scores"].items()}]  # by the block's first layer
        else:
            search = select_layers_cosine(pruned, runner, config.layers_to_prune)
            removed = search["removed"]
            report["layer_scores"] = [{str(k): v for k, v in search["scores"].items()}]
        remove_layers_(pruned, removed)
        kl = runner.mean_kl(references)  # over the whole calibration set, also when sharded
        report["steps"].append(
            {"stage": "layers", "method": config.layer_method, "removed": sorted(removed), "kl": kl}
        )
    report["removed_layers"] = sorted(removed)
    report["times"]["layers_s"] = round(time.perf_counter() - start, 3)
    report["params_after_layers"] = count_parameters(pruned)

    start = time.perf_counter()
    ffn_counts = resolve_ffn_neurons(pruned, config.ffn_neurons)
    if any(ffn_counts):
        rules = tuple(dict.fromkeys((*config.auto_rules, *FFN_RULES)))
        importance = None
        if config.ffn_allocation == "importance" or config.ffn_rule == "importance":
            importance = ffn_importance(pruned, runner)
        if config.ffn_allocation == "importance":
            ffn_counts = allocate_ffn_budget(importance, sum(ffn_counts))
            report["ffn_counts"] = ffn_counts
        if config.ffn_rule == "auto":
            selection = select_ffn_rule(
                pruned, runner, references, ffn_counts, rules=rules, auto_rules=config.auto_rules,
                seed=config.seed, progress=config.progress, importance=importance,
            )  # fmt: skip
            rule, importance = selection["chosen"], selection["importance"]
            report["ffn_rule_kl"] = selection["kl"]
        else:
            rule = config.ffn_rule
        prune_ffn_(pruned, ffn_plan(pruned, rule, ffn_counts, config.seed, importance))
        kl = runner.mean_kl(references)  # over the whole calibration set, also when sharded
        report["ffn_rule"] = rule
        report["steps"].append({"stage": "ffn", "rule": rule, "kl": kl})
    report["times"]["ffn_s"] = round(time.perf_counter() - start, 3)

    pruned = to_saveable(pruned)
    after = count_parameters(pruned)
    report["params_after"] = after
    report["params"] = {
        "dense": dense_params["total"],
        "pruned": after["total"],
        "ratio": round(after["total"] / dense_params["total"], 4),
        "reduction": round(1 - after["total"] / dense_params["total"], 4),
    }
    report["kl_final"] = report["steps"][-1]["kl"]
    logger.info("Flab-Pruner: %d -> %d parameters", dense_params["total"], after["total"])
    return pruned, pruned_tokenizer, report


def save_pruned(model, tokenizer, folder, report: dict | None = None, overwrite: bool = False) -> str:
    """Save model, tokenizer (and report) to ``folder`` atomically: written to a temporary folder, then renamed.

    Stock-shaped models are stock checkpoints; ``Flab*`` models also get their code and ``auto_map`` for
    ``trust_remote_code=True``. Nothing is written if saving fails.
    """
    with atomic_dir(folder, overwrite=overwrite, argument="folder") as temporary:
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        if report is not None:
            slim = {key: value for key, value in report.items() if key != "kept_token_ids"}
            with open(os.path.join(temporary, "flab_report.json"), "w", encoding="utf-8") as handle:
                json.dump(slim, handle, indent=2, default=str)
    return os.path.abspath(os.fspath(folder))


__all__ = [
    "FFN_ALLOCATIONS",
    "FlabConfig",
    "LAYER_METHODS",
    "calibration_ids",
    "check_ffn_neurons_range",
    "flab_prune",
    "save_pruned",
]
