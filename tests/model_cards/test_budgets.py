"""Zoo budgets: recipe configs nested in small dataclasses, overridden by nested dicts, hashed per stage.

Nothing here trains: budgets are built and compared, and the tiny zoo (built once per session) is only read.
"""

import dataclasses
import json
import os
from pathlib import Path

import pytest
from zoo_testing import TINY_FLAB, read_results

from benchmarks.xtc_bench import CONVERGED_STAGE_STEPS
from benchmarks.xtc_teacher import TeacherSettings
from flab_hf.data import VOCAB_PACKAGES
from model_cards import alpine_entry, flab_entry, xtc_entry
from model_cards.common import ZooSettings, apply_overrides, budget_dict, budget_key, entry_budget
from model_cards.zoo import build_zoo


def _flat(data: dict, prefix: str = "") -> dict:
    """``{"prune": {"seed": 0}}`` -> ``{"prune.seed": 0}``."""
    flat = {}
    for name, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _changed(before, after) -> dict:
    """The settings (dotted paths) whose value differs between two budgets, with their new values."""
    old, new = _flat(budget_dict(before)), _flat(budget_dict(after))
    assert set(old) <= set(new)  # a dict setting (xtc's variant_overrides) may gain keys
    return {name: value for name, value in new.items() if old.get(name, dataclasses.MISSING) != value}


def test_nested_override_replaces_only_the_named_settings():
    budget = apply_overrides(flab_entry.DEFAULT, {"humaneval": 20, "prune": {"layers_to_prune": 2}})
    assert _changed(flab_entry.DEFAULT, budget) == {"humaneval": 20, "prune.layers_to_prune": 2}
    assert isinstance(budget.prune, type(flab_entry.DEFAULT.prune))  # still the recipe's own config
    assert flab_entry.DEFAULT.humaneval == 8 and flab_entry.DEFAULT.prune.layers_to_prune == 4  # not mutated
    # under --full the overrides apply on top of the full budget
    settings = ZooSettings(full=True, overrides={"flab": {"distill": {"lora_r": 8}}})
    full = entry_budget(settings, "flab", flab_entry.DEFAULT, flab_entry.FULL)
    assert _changed(flab_entry.FULL, full) == {"distill.lora_r": 8} and full.distill.train_tokens == 1_000_000


def test_unknown_nested_name_names_the_path_the_name_and_the_valid_ones(tmp_path):
    with pytest.raises(ValueError) as error:
        apply_overrides(flab_entry.DEFAULT, {"humaneval": 20, "prune": {"layers": 2}}, "overrides['flab']")
    message = str(error.value)
    assert message.startswith("`overrides['flab']['prune']` has unknown settings ['layers']; valid ones: [")
    assert "'layers_to_prune'" in message and "'calibration_samples'" in message
    # a flat name that belongs to a nested config says where it goes
    with pytest.raises(ValueError, match=r"`layers_to_prune` goes inside `prune`"):
        apply_overrides(flab_entry.DEFAULT, {"layers_to_prune": 2}, "overrides['flab']")
    # the build refuses before writing anything
    settings = ZooSettings(str(tmp_path / "zoo"), str(tmp_path / "work"), overrides={"xtc": {"teacher": {"layer": 2}}})
    with pytest.raises(ValueError, match=r"`overrides\['xtc'\]\['teacher'\]` has unknown settings \['layer'\]"):
        build_zoo(["xtc-gpt2-teacher"], settings)
    assert not os.listdir(tmp_path)


def test_run_fields_and_variant_fields_are_not_budget_settings():
    with pytest.raises(ValueError, match=r"`progress` is set by the build"):
        apply_overrides(flab_entry.DEFAULT, {"prune": {"progress": False}})
    with pytest.raises(ValueError, match=r"`checkpoint_dir` is set by the build"):  # the entry puts it in its work dir
        apply_overrides(flab_entry.DEFAULT, {"distill": {"checkpoint_dir": "elsewhere"}})
    with pytest.raises(ValueError, match=r"\['weight_bits'\], which each variant sets itself"):
        apply_overrides(xtc_entry.DEFAULT, {"recipe": {"weight_bits": 2}})
    with pytest.raises(ValueError, match=r"`variants` has unknown names \['9L'\]"):
        apply_overrides(xtc_entry.DEFAULT, {"variants": ["9L"]})
    with pytest.raises(
        ValueError, match=r"`finetune.modes` must be 'none' and the one plan to publish, got \('all',\)"
    ):
        apply_overrides(alpine_entry.DEFAULT, {"finetune": {"modes": ["all"]}})
    with pytest.raises(ValueError, match=r"`finetune.modes` must be 'none' and the one plan"):
        apply_overrides(alpine_entry.DEFAULT, {"finetune": {"modes": ["none", "all", "even"]}})
    with pytest.raises(ValueError, match=r"`finetune.schedules` must name the one schedule .* got \('a', 'b'\)"):
        apply_overrides(alpine_entry.DEFAULT, {"finetune": {"schedules": ["a", "b"]}})


def test_xtc_variant_overrides_shape_one_student_and_are_checked_before_any_training():
    full = xtc_entry.FULL
    recipes = {name: full.variant_recipe(name) for name in full.variants}
    assert {name: (r.embedding_bits, r.embedding_int8_rows, r.weight_bits) for name, r in recipes.items()} == {
        "6L": (None, None, 32), "1W8A6L": (4, 2048, 1), "1W8A": (8, None, 1)}  # fmt: skip
    assert recipes["1W8A6L"].quantization_learning_rate == full.recipe.quantization_learning_rate
    with pytest.raises(ValueError, match=r"`variant_overrides` has unknown variants \['9L'\]"):
        apply_overrides(xtc_entry.DEFAULT, {"variant_overrides": {"9L": {"embedding_bits": 4}}})
    with pytest.raises(ValueError, match=r"`variant_overrides\['1W8A6L'\]` must be a dict .* got \['weight_bits'\]"):
        apply_overrides(xtc_entry.DEFAULT, {"variant_overrides": {"1W8A6L": {"weight_bits": 2}}})
    # a value the recipe refuses (8-bit rows among 8-bit embeddings) fails on the budget, not after the teacher
    with pytest.raises(ValueError, match=r"`embedding_int8_rows=16` keeps rows at 8 bits"):
        apply_overrides(
            xtc_entry.DEFAULT, {"variant_overrides": {"1W8A6L": {"embedding_bits": 8, "embedding_int8_rows": 16}}}
        )


def test_default_budgets_keep_their_numbers():
    finetune = alpine_entry.DEFAULT.finetune
    assert (finetune.train_pairs, finetune.eval_pairs, finetune.max_length, finetune.epochs, finetune.batch_size,
            finetune.bf16, finetune.seed, finetune.modes, finetune.schedules, finetune.model) == (
        800, 400, 256, 1.0, 16, False, 42, ("none", "layers=1-5;alpha=0.75"), ("b",), None)  # fmt: skip
    flab = flab_entry.DEFAULT
    assert (flab.model, flab.base_model, flab.corpus_chars, flab.eval_windows, flab.eval_length, flab.humaneval,
            flab.humaneval_max_new_tokens, flab.answers, flab.answer_tokens, flab.chat_share, flab.train_chars,
            flab.curve_windows) == (
        None, "HuggingFaceTB/SmolLM2-135M-Instruct", 4_000_000, 8, 256, 8, 256, 64, 256, 0.5, 1_000_000, 4)  # fmt: skip
    prune = flab.prune
    assert (prune.min_token_count, prune.layers_to_prune, prune.ffn_neurons, prune.ffn_rule, prune.calibration_samples,
            prune.calibration_length, flab.vocab_packages) == (3, 4, 128, "auto", 6, 128, VOCAB_PACKAGES)  # fmt: skip
    distill = flab.distill
    assert (distill.train_tokens, distill.curve_every, distill.block_size, distill.batch_size, distill.learning_rate,
            distill.lora_r, distill.kl_weight, distill.checkpoint_dir) == (
        32_768, 16_384, 256, 8, 2e-4, None, 1.0, None)  # fmt: skip
    xtc = xtc_entry.DEFAULT
    assert (xtc.teacher.minutes, xtc.teacher.steps, xtc.recipe.layer_reduction_steps, xtc.recipe.quantization_steps,
            xtc.samples, xtc.variants, xtc.train_files) == (4.0, 200, 60, 60, 100, ("6L", "1W8A6L"), None)  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (alpine_entry, {"finetune.train_pairs": 8000, "finetune.eval_pairs": 1000, "finetune.packages": ("datasets",),
                        "finetune.epochs": 2.0, "finetune.seeds": 1}),
        (flab_entry, {"prune.calibration_samples": 16, "prune.calibration_length": 256,
                      "eval_windows": 64, "humaneval": 164, "distill.train_tokens": 1_000_000,
                      "distill.curve_every": 100_000, "answers": 1024, "train_chars": 6_000_000,
                      "train_package_chars": 6_000_000,
                      "curve_windows": 16}),
        (xtc_entry, {"teacher.steps": None, "teacher.tokens": 20_000_000, "teacher.code_form": "py150",
                     "teacher.packages": ("numpy", "matplotlib", "transformers"),
                     "teacher.checkpoint_every_tokens": 1_000_000, "teacher.curve_every_tokens": 1_000_000,
                     "teacher.curve_samples": 200, "recipe.layer_reduction_steps": CONVERGED_STAGE_STEPS,
                     "recipe.quantization_steps": CONVERGED_STAGE_STEPS, "recipe.until_converged": True,
                     # fp32 distillation: a change only where the default resolved bf16 autocast on (fast bf16)
                     **({"recipe.bf16": False} if xtc_entry.DEFAULT.recipe.bf16 else {}),
                     "recipe.weight_granularity": "row", "recipe.embedding_bits": 8,
                     "recipe.position_embedding_bits": 8, "recipe.quantization_learning_rate": 1e-4, "samples": 1000,
                     "variants": ("6L", "1W8A6L", "1W8A"),
                     "variant_overrides.1W8A6L.embedding_bits": 4,
                     "variant_overrides.1W8A6L.embedding_int8_rows": 2048}),
    ],
)  # fmt: skip
def test_full_budget_differs_from_the_default_as_intended(entry, expected):
    assert _changed(entry.DEFAULT, entry.FULL) == expected
    assert type(entry.FULL) is type(entry.DEFAULT)


def test_full_xtc_teacher_is_the_benchmark_teacher():
    # `make zoo FULL=1` builds (or, in the same cache, reuses) the teacher `make xtc-teacher-py150` trains
    assert xtc_entry.FULL.teacher.key() == TeacherSettings.preset("py150").key()
    assert xtc_entry.FULL.recipe.layer_reduction_steps == CONVERGED_STAGE_STEPS


def test_an_eval_only_change_keeps_the_prune_key():
    keys = flab_entry.stage_keys(flab_entry.DEFAULT)
    assert len(set(keys.values())) == 3

    def changed_keys(**changes) -> set[str]:
        new = flab_entry.stage_keys(dataclasses.replace(flab_entry.DEFAULT, **changes))
        return {stage for stage in keys if new[stage] != keys[stage]}

    prune, distill = flab_entry.DEFAULT.prune, flab_entry.DEFAULT.distill
    assert changed_keys(humaneval=20) == {"eval"}
    assert changed_keys(eval_windows=16, humaneval_max_new_tokens=64) == {"eval"}
    assert changed_keys(distill=dataclasses.replace(distill, train_tokens=1024), answers=4) == {"recovery"}
    for name, value in (("answer_tokens", 64), ("chat_share", 0.7), ("train_chars", 10), ("curve_windows", 2)):
        assert changed_keys(**{name: value}) == {"recovery"}, name
    assert changed_keys(prune=dataclasses.replace(prune, layers_to_prune=2)) == {"prune"}
    assert changed_keys(model="some/folder") == {"prune"}
    # where and how visibly a stage runs changes no result, so no key
    assert changed_keys(prune=dataclasses.replace(prune, progress=False), base_model="a label") == set()
    assert changed_keys(distill=dataclasses.replace(distill, checkpoint_dir="elsewhere", progress=False)) == set()
    finetune = alpine_entry.DEFAULT.finetune
    moved = dataclasses.replace(alpine_entry.DEFAULT, finetune=dataclasses.replace(finetune, output_dir="elsewhere"))
    assert budget_key(moved) == budget_key(alpine_entry.DEFAULT)
    assert (
        "output_dir" not in budget_dict(moved)["finetune"]
        and "progress" not in budget_dict(flab_entry.DEFAULT)["prune"]
    )


@pytest.mark.parametrize("entry", [alpine_entry, flab_entry, xtc_entry])
def test_recorded_budget_is_json_and_reads_back(entry):
    recorded = json.loads(json.dumps(budget_dict(entry.FULL)))
    again = apply_overrides(entry.DEFAULT, recorded, "budget")
    # as JSON: a list read back may stay a list where the config holds a tuple (FlabConfig.auto_rules)
    assert json.loads(json.dumps(budget_dict(again))) == recorded and budget_key(again) == budget_key(entry.FULL)


def test_tiny_zoo_records_its_nested_budgets(tiny_zoo):
    settings, _ = tiny_zoo
    zoo = settings.output_dir
    pruned, recovered = read_results(f"{zoo}/flab-smollm2"), read_results(f"{zoo}/flab-smollm2-recovered")
    assert pruned["budget"]["prune"]["ffn_neurons"] == TINY_FLAB["prune"]["ffn_neurons"]
    assert (
        pruned["budget"]["distill"]["train_tokens"] == TINY_FLAB["distill"]["train_tokens"]
        and pruned["budget"]["model"] == settings.overrides["flab"]["model"]
    )
    assert "checkpoint_dir" not in pruned["budget"]["distill"] and "recovery" not in pruned["budget"]
    assert recovered["budget"] == pruned["budget"]  # same overrides for both: the recovery settings agree too
    assert "progress" not in pruned["budget"]["prune"]
    assert read_results(f"{zoo}/xtc-gpt2-1w8a6l")["budget"]["recipe"]["quantization_steps"] == 2
    alpine = read_results(f"{zoo}/alpine-minilm")["budget"]["finetune"]
    assert alpine["train_pairs"] == 16 and "output_dir" not in alpine
    # the card shows nested settings by their dotted override names
    assert "`finetune.train_pairs=16`" in (Path(zoo) / "alpine-minilm" / "README.md").read_text()
