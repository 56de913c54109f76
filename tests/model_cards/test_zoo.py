"""``zoo build`` with a tiny budget: every entry folder, measured results, resume by skipping, index, bad names."""

import json
import os
import shutil
from pathlib import Path

import pytest
from zoo_testing import TINY_ALPINE, TINY_FLAB, TINY_PLAN, read_results

from model_cards import alpine_entry
from model_cards.cli import main
from model_cards.zoo import ENTRIES, ZooSettings, build_entry, build_zoo, is_complete


def test_every_entry_is_complete_with_card_and_index(tiny_zoo):
    settings, results = tiny_zoo
    zoo = Path(settings.output_dir)
    assert set(results) == set(ENTRIES)
    for name in ENTRIES:
        assert is_complete(zoo / name), name
        assert (zoo / name / "README.md").read_text().startswith("---\n")
        assert read_results(zoo / name) == json.loads(json.dumps(results[name], default=str))
        assert read_results(zoo / name)["command"].startswith(f"zoo build {name} --overrides '")
    assert not [name for name in os.listdir(zoo) if name.startswith(".")]  # nothing half-written
    index = (zoo / "README.md").read_text()
    for name in ENTRIES:
        assert f"| [{name}]({name}/README.md) |" in index and f"`codecompress-hf/{name}`" in index
    assert "| clone detection | F1 |" in index and "| line completion | ES |" in index


def test_alpine_entry_holds_the_plan_trained_after_the_unpruned_run(tiny_zoo):
    settings, _ = tiny_zoo
    folder = Path(settings.output_dir) / "alpine-minilm"
    assert {"modeling_alpine.py", "configuration_alpine.py", "tokenizer.json", "alpine_kept_tokens.png"} <= set(
        os.listdir(folder)
    )
    results = read_results(folder)
    assert (results["variant"], results["schedule"]) == (TINY_PLAN, "b")
    assert set(results["modes"]) == {"none"} and set(results["schedules"]["b"]) == {TINY_PLAN}
    assert results["settings"]["train_size"] == TINY_ALPINE["finetune"]["train_pairs"]
    config = json.loads((folder / "config.json").read_text())
    assert (config["alpine_layers"], config["alpine_alpha"]) == ([1], 0.75)
    # the summary is the published checkpoint's (first seed's) run; the seeds' spread comes beside it
    published = results["schedules"]["b"][TINY_PLAN]
    assert results["summary"]["compressed"] == published["runs"][0]["f1"] and published["seeds"] == [42, 43]
    assert results["summary"]["retention_std"] == published["retention_f1_std"]
    assert "(2 seeds: " in (folder.parent / "README.md").read_text()
    assert published["eval_flops_ratio_analytic"] > 1  # tokens were really dropped
    # the frontier it was chosen from comes with it (read from the repository's results)
    points = {(point["mode"], point["schedule"]) for point in results["frontier"]["points"]}
    assert (alpine_entry.PLAN, alpine_entry.SCHEDULE) in points


def test_flab_entries_measure_pruned_and_recovered_models(tiny_zoo):
    settings, _ = tiny_zoo
    zoo = Path(settings.output_dir)
    pruned, recovered = read_results(zoo / "flab-smollm2"), read_results(zoo / "flab-smollm2-recovered")
    config = json.loads((zoo / "flab-smollm2" / "config.json").read_text())
    assert config["model_type"] == "flab_llama" and config["intermediate_sizes"] == [56, 48, 40]
    assert {"modeling_flab.py", "configuration_flab.py", "kept_token_ids.json"} <= set(
        os.listdir(zoo / "flab-smollm2")
    )
    assert pruned["params"]["after"]["total"] < pruned["params"]["before"]["total"]
    assert pruned["removed_layers"] and [s["stage"] for s in pruned["kl_steps"]][0] == "vocab"
    assert pruned["quality"]["dense"]["kl_to_dense"] == pytest.approx(0, abs=1e-6)
    assert pruned["quality"]["pruned"]["kl_to_dense"] > 0
    assert pruned["humaneval"]["dense"]["problems"] == 1 and "pass@1" in pruned["humaneval"]["pruned"]
    # recovery starts from the pruned entry: same size, same reference rows, its own measurement
    assert recovered["params"] == pruned["params"] and recovered["base_entry"] == "flab-smollm2"
    assert recovered["quality"]["dense"] == pruned["quality"]["dense"]
    assert recovered["quality"]["pruned"] == pruned["quality"]["pruned"]
    assert recovered["quality"]["recovered"] != pruned["quality"]["pruned"]
    # perplexity per dense-tokenizer token on the same held-out text for every row (the dense model's own is its
    # ordinary perplexity on that text)
    for row in (pruned["quality"]["dense"], pruned["quality"]["pruned"], recovered["quality"]["recovered"]):
        assert row["text_perplexity"] > 1 and row["text_perplexity_tokens"] > 0
    assert len({row["text_perplexity_tokens"] for row in recovered["quality"].values()}) == 1
    assert pruned["summary"]["base"] == pruned["quality"]["dense"]["text_perplexity"]
    assert recovered["summary"]["compressed"] == recovered["quality"]["recovered"]["text_perplexity"]
    kept = json.loads((zoo / "flab-smollm2-recovered" / "kept_token_ids.json").read_text())
    assert (
        kept == sorted(kept)
        and len(kept) == json.loads((zoo / "flab-smollm2" / "config.json").read_text())["vocab_size"]
    )


def test_recovered_entry_distils_records_the_curve_and_lowers_kl(tiny_zoo):
    settings, _ = tiny_zoo
    zoo = Path(settings.output_dir)
    pruned, recovered = read_results(zoo / "flab-smollm2"), read_results(zoo / "flab-smollm2-recovered")
    recovery, distill = recovered["recovery"], TINY_FLAB["distill"]
    assert recovered["recovery_method"] == "distillation" and "recovery_data" not in recovered
    tokens_per_step = distill["block_size"] * distill["batch_size"]
    assert (
        recovery["tokens"] == distill["train_tokens"]
        and recovery["steps"] == distill["train_tokens"] // tokens_per_step
    )
    assert recovery["bf16"] is False and recovery["kl"]
    # the data mix: code windows and the dense model's answers, the budget's chat share, in whole blocks
    data = recovery["data"]
    assert data["answers"] == TINY_FLAB["answers"] and data["chat_tokens"] > 0 and data["code_tokens"] > 0
    assert data["code_source"] == "stdlib train split and json sources"  # the tiny budget's package code joins
    assert data["code_tokens"] + data["chat_tokens"] >= distill["train_tokens"]
    share = recovered["budget"]["chat_share"]
    assert data["chat_tokens"] == pytest.approx(share * distill["train_tokens"], abs=distill["block_size"])
    # the curve: a point before training and every `curve_every` tokens, each with the dense reference
    curve = recovery["curve"]
    assert [p["tokens"] for p in curve] == list(range(0, distill["train_tokens"] + 1, distill["curve_every"]))
    assert [p["step"] for p in curve] == [p["tokens"] // tokens_per_step for p in curve]
    assert {"perplexity", "dense_perplexity", "kl_to_dense", "next_token_agreement"} <= set(curve[0])
    assert len({p["dense_perplexity"] for p in curve}) == 1  # the same validation windows at every point
    assert recovery["curve_windows"]["windows"] == TINY_FLAB["curve_windows"]
    # distillation lowers the KL to dense on the validation curve and on the held-out evaluation windows (the tiny
    # model's numbers, TINY_DISTILL: about -8% and -14%); the margins leave room for other CPUs' float rounding
    assert curve[-1]["kl_to_dense"] < 0.97 * curve[0]["kl_to_dense"], curve
    before, after = recovered["quality"]["pruned"]["kl_to_dense"], recovered["quality"]["recovered"]["kl_to_dense"]
    assert before == pruned["quality"]["pruned"]["kl_to_dense"] and after < 0.95 * before, (before, after)
    # the stage's work: answers cached beside the pruned model, one file for the vocabulary's prompts (from the
    # stdlib and package code) and one for the training prompts (the whole stdlib train split, as the benchmark), and
    # checkpoints removed once the model and log are saved
    work = Path(settings.work_dir) / "flab"
    answers = sorted(work.glob("*/answers-*.jsonl"))
    assert [p.name.split("-")[1] for p in answers] == [f"{TINY_FLAB['answers']}x{TINY_FLAB['answer_tokens']}"] * 2
    for path in answers:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(records) == TINY_FLAB["answers"] and all(r["ids"] for r in records)
    assert list(work.glob("*/recovered-*/recovery_log.json")) and not list(work.glob("*/recovered-*/checkpoints"))
    # the card states the distillation and its curve
    card = (zoo / "flab-smollm2-recovered" / "README.md").read_text()
    assert "### Recovery by distillation" in card and f"{recovery['tokens']:,} training tokens" in card
    assert f"from {curve[0]['kl_to_dense']:.4f} before to {curve[-1]['kl_to_dense']:.4f}" in card
    assert "`flab_hf.lora_recover`" in card and "recovered by distillation from the dense model" in card


def test_an_entry_recovered_with_lora_by_an_older_zoo_is_rebuilt(tiny_zoo, tmp_path):
    from model_cards.card import build_card

    settings, _ = tiny_zoo
    folder = tmp_path / "flab-smollm2-recovered"
    shutil.copytree(Path(settings.output_dir) / "flab-smollm2-recovered", folder)
    assert is_complete(folder)
    results = read_results(folder)
    results["recovery"] = {"steps": 8, "kl_before": 0.5, "kl_history": [{"epoch": 1, "kl": 0.4}]}  # the old log
    (folder / "results.json").write_text(json.dumps(results))
    assert not is_complete(folder)  # so `zoo build` replaces it instead of keeping a LoRA model under this name
    with pytest.raises(ValueError, match=r"recovered with LoRA by an older version.*zoo build flab-smollm2-recovered"):
        build_card(folder)


def test_xtc_entries_measure_every_built_variant(tiny_zoo):
    settings, _ = tiny_zoo
    zoo = Path(settings.output_dir)
    student = read_results(zoo / "xtc-gpt2-1w8a6l")
    assert {"modeling_xtc.py", "configuration_xtc.py"} <= set(os.listdir(zoo / "xtc-gpt2-1w8a6l"))
    assert set(student["variants"]) == {"base", "6L", "1W8A6L"}
    assert student["disk_ratio"] > 10  # packed 1-bit weights, measured on the files
    assert student["variants"]["6L"]["layers"] == 6 and student["variants"]["1W8A6L"]["weight_bits"] == 1
    teacher = read_results(zoo / "xtc-gpt2-teacher")
    assert teacher["variants"] == student["variants"]  # one shared, cached evaluation
    assert teacher["summary"]["compressed"] is None and "modeling_xtc.py" not in os.listdir(zoo / "xtc-gpt2-teacher")


def test_complete_entry_is_skipped_and_incomplete_results_are_rebuilt(tiny_zoo, tmp_path):
    settings, _ = tiny_zoo
    folder = Path(settings.output_dir) / "xtc-gpt2-teacher"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_entry("xtc-gpt2-teacher", settings) == read_results(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    # an entry written before results recorded what cards need is not complete: the build redoes it
    old = read_results(folder)
    (folder / "results.json").write_text(json.dumps({"summary": old["summary"]}))
    assert not is_complete(folder)
    assert build_entry("xtc-gpt2-teacher", settings)["family"] == "xtc" and is_complete(folder)


def test_unknown_entry_lists_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["build", "bert-xxl", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    # the message lists every entry by name (written out here: a constant compared with itself proves nothing)
    for name in ("alpine-minilm", "flab-smollm2", "flab-smollm2-recovered", "xtc-gpt2-1w8a6l", "xtc-gpt2-teacher"):
        assert name in err
    assert "valid entries:" in err and not os.listdir(tmp_path)


def test_unknown_override_names_the_valid_settings(tmp_path, capsys):
    settings = ZooSettings(output_dir=str(tmp_path), overrides={"flab": {"layers": 2}}, progress=False)
    with pytest.raises(
        ValueError, match=r"unknown settings \['layers'\].*'prune'.*`prune` takes a dict of FlabConfig"
    ):
        build_zoo(["flab-smollm2"], settings)
    with pytest.raises(SystemExit):
        main(["build", "--output-dir", str(tmp_path), "--overrides", '{"flab-smollm2": {"humaneval": 5}}'])
    assert "unknown budget key 'flab-smollm2'; valid keys: alpine-minilm, flab, xtc" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_build_times_cover_every_entry_and_its_stages(tiny_zoo):
    import json
    from pathlib import Path

    from benchmarks.render_results import build_times_markdown
    from model_cards.zoo import ENTRIES

    settings, _ = tiny_zoo
    data = json.loads((Path(settings.output_dir) / "build.json").read_text())
    assert list(data["entries"]) == list(ENTRIES)
    assert data["capability"]["cpu_capability"] and data["total_seconds"] > 0
    built = {name: entry for name, entry in data["entries"].items() if not entry["reused"]}
    assert "flab-smollm2-recovered" in built and "distillation" in built["flab-smollm2-recovered"]["stages"]
    # the entries' wall times add up to at most the whole build's
    assert sum(entry["seconds"] for entry in data["entries"].values()) <= data["total_seconds"] + 1
    table = build_times_markdown(data)
    assert all(f"| {name} |" in table for name in ENTRIES)
