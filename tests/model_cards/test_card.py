"""Model cards: Hub metadata per entry, model-index values copied from results.json, byte-identical rebuilds."""

import json
import re
import shutil
import struct
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from zoo_testing import read_results

from model_cards.alpine_entry import PLAN, SCHEDULE, alpine_published, alpine_runs
from model_cards.card import build_card, write_card
from model_cards.cli import main
from model_cards.plots import PLOT_FILES, plot_flab
from model_cards.publish import content_revision
from model_cards.zoo import ENTRIES

# (base_model, base_model_relation, pipeline_tag, custom code) each entry must declare
EXPECTED = {
    "alpine-minilm": ("sentence-transformers/all-MiniLM-L6-v2", "finetune", "text-classification", True),
    "flab-smollm2": ("test-org/tiny-llama", "finetune", "text-generation", True),
    "flab-smollm2-recovered": ("codecompress-hf/flab-smollm2", "finetune", "text-generation", True),
    "xtc-gpt2-1w8a6l": ("codecompress-hf/xtc-gpt2-teacher", "quantized", "text-generation", True),
    "xtc-gpt2-teacher": (None, None, "text-generation", False),
}
CITED = {"alpine": "Mootez Saad", "flab": "Less is More", "xtc": "Aral de Moor"}


def _card(settings, name) -> ModelCard:
    return ModelCard((Path(settings.output_dir) / name / "README.md").read_text())


def _expected_metrics(results: dict) -> dict:
    """metric type -> value, read straight from results.json the way a reader would."""
    name = results["entry"]
    if name.startswith("alpine"):
        pruned = results["schedules"]["b"][results["variant"]]["runs"][0]  # the published checkpoint: first seed
        return {"accuracy": pruned["accuracy"], "f1": pruned["f1"], "f1_retention": pruned["retention_f1"]}
    if name.startswith("flab"):
        variant = "recovered" if name.endswith("recovered") else "pruned"
        quality = results["quality"][variant]
        return {
            "pass@1": results["humaneval"][variant]["pass@1"],
            "perplexity": quality["text_perplexity"],  # per dense-tokenizer token: comparable across vocabularies
            "kl_divergence": quality["kl_to_dense"],
            "next_token_agreement": quality["next_token_agreement"],
        }
    row = results["variants"]["base" if name.endswith("teacher") else "1W8A6L"]
    return {"exact_match": row["em"], "edit_similarity": row["es"]}


@pytest.mark.parametrize("name", list(ENTRIES))
def test_card_metadata_and_model_index_come_from_results(tiny_zoo, name):
    settings, _ = tiny_zoo
    card, results = _card(settings, name), read_results(Path(settings.output_dir) / name)
    base_model, relation, pipeline, custom = EXPECTED[name]
    data = card.data.to_dict()
    assert data.get("base_model") == base_model and data.get("base_model_relation") == relation
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == pipeline and "codecompress-hf" in data["tags"]
    assert ("custom_code" in data["tags"]) == custom
    assert data["datasets"] and "model-index" in data
    measured = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert measured == _expected_metrics(results)  # exact: copied, never rounded or typed in


@pytest.mark.parametrize("name", list(ENTRIES))
def test_card_body_has_usage_results_command_plot_and_limits(tiny_zoo, name):
    settings, _ = tiny_zoo
    folder = Path(settings.output_dir) / name
    text, results = (folder / "README.md").read_text(), read_results(folder)
    family = results["family"]
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert f'repo, revision = "codecompress-hf/{name}", "{content_revision(folder)}"' in snippet
    assert "trust_remote_code=True" in snippet and "revision=revision" in snippet
    compile(snippet, "snippet", "exec")  # valid Python
    assert f"```bash\n{results['command']}\n```" in text
    assert f"![{family} plot]({PLOT_FILES[family]})" in text and (folder / PLOT_FILES[family]).is_file()
    for section in ("## Method", "## Usage", "## Results", "## How it was produced", "## Limitations"):
        assert section in text
    assert CITED[family] in text


def test_limitations_state_the_measured_shortfalls(tiny_zoo):
    settings, _ = tiny_zoo
    zoo = Path(settings.output_dir)
    alpine = read_results(zoo / "alpine-minilm")
    assert (
        f"F1 retention is {alpine_published(alpine)['retention_f1']:.1%}"
        in (zoo / "alpine-minilm/README.md").read_text()
    )
    flab = read_results(zoo / "flab-smollm2")
    dense = flab["humaneval"]["dense"]
    assert (
        f"solves {dense['passed']}/{dense['problems']} of the HumanEval"
        in (zoo / "flab-smollm2/README.md").read_text()
    )
    # the vocabulary's source as this build counted it (the tiny budget adds the `json` package's sources)
    assert "the tokens the standard-library corpus and the sources of `json` uses at least 3 times" in (
        zoo / "flab-smollm2/README.md"
    ).read_text().replace("\n", " ")
    assert flab["flab_report"]["corpus"]["vocab_packages"] == ["json"]


def test_the_xtc_card_says_where_its_teacher_learnt(tiny_zoo):
    settings, _ = tiny_zoo
    results = read_results(Path(settings.output_dir) / "xtc-gpt2-1w8a6l")
    assert "trained from scratch on standard-library code" in build_card(results).content
    distilled = json.loads(json.dumps(results))
    distilled["teacher_training"]["settings"]["distil_from"] = "smollm2"
    text = build_card(distilled).content
    assert "learning SmolLM2-135M-Instruct's next-token distributions besides the text" in text
    assert "from scratch" not in text


def test_the_xtc_card_shows_both_retentions_of_each_student(tiny_zoo):
    # the targets are EM and ES retention: both columns, each against the teacher's row
    settings, _ = tiny_zoo
    results = json.loads(json.dumps(read_results(Path(settings.output_dir) / "xtc-gpt2-1w8a6l")))
    results["variants"]["base"].update(em=20.0, es=50.0)
    results["variants"]["1W8A6L"].update(em=18.0, es=49.0)
    text = build_card(results).content
    assert "| EM % | EM retention | ES | ES retention |" in text
    assert "| 18.0 | 90.0% | 49.00 | 98.0% |" in text


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


@pytest.mark.parametrize("name", ["alpine-minilm", "flab-smollm2-recovered", "xtc-gpt2-1w8a6l"])
def test_rebuilding_a_card_is_byte_identical(tiny_zoo, tmp_path, name):
    settings, _ = tiny_zoo
    folder = tmp_path / name
    shutil.copytree(Path(settings.output_dir) / name, folder)
    plot = folder / PLOT_FILES[read_results(folder)["family"]]
    readme, png = (folder / "README.md").read_bytes(), plot.read_bytes()
    (folder / "README.md").unlink()
    plot.unlink()
    assert main(["card", str(folder)]) == 0
    assert (folder / "README.md").read_bytes() == readme and plot.read_bytes() == png
    write_card(folder)
    assert (folder / "README.md").read_bytes() == readme and plot.read_bytes() == png
    assert not {b"tIME", b"tEXt", b"iTXt", b"zTXt"} & set(_png_chunks(png))  # no timestamp or version stamp


def test_card_follows_results_json_not_typed_numbers(tiny_zoo, tmp_path):
    settings, _ = tiny_zoo
    folder = tmp_path / "xtc-gpt2-1w8a6l"
    shutil.copytree(Path(settings.output_dir) / "xtc-gpt2-1w8a6l", folder)
    results = read_results(folder)
    results["variants"]["1W8A6L"]["es"] = 42.125
    (folder / "results.json").write_text(json.dumps(results))
    card = write_card(folder)
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["edit_similarity"] == 42.125
    assert "| 42.12 |" in card.content or "| 42.13 |" in card.content
    # the folder changed, so the pinned revision changed with it
    assert content_revision(folder) in card.content
    assert content_revision(folder) != content_revision(Path(settings.output_dir) / "xtc-gpt2-1w8a6l")


def test_card_from_results_dict_matches_folder_card(tiny_zoo):
    settings, _ = tiny_zoo
    folder = Path(settings.output_dir) / "xtc-gpt2-1w8a6l"
    from_dict = build_card(read_results(folder), revision=content_revision(folder))
    assert from_dict.content == (folder / "README.md").read_text()
    unpinned = build_card(read_results(folder))
    assert '"main"  # pin a commit hash' in unpinned.content


def test_card_of_folder_without_results_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["card", str(tmp_path)])
    assert "has no results.json; build the entry with `zoo build` first" in capsys.readouterr().err


def test_alpine_card_shows_the_seed_spread_and_describes_its_own_run(tiny_zoo):
    settings, _ = tiny_zoo
    results = read_results(Path(settings.output_dir) / "alpine-minilm")
    for mode, entry in alpine_runs(results).items():
        runs = [dict(entry, seed=42, f1=0.5, retention_f1=0.625), dict(entry, seed=43, f1=0.7, retention_f1=0.875)]
        if mode == "none":
            runs = [dict(entry, seed=42, f1=0.8, retention_f1=1.0), dict(entry, seed=43, f1=0.8, retention_f1=1.0)]
        entry.update(runs=runs, seeds=[42, 43], f1=sum(r["f1"] for r in runs) / 2,
                     f1_std=abs(runs[0]["f1"] - runs[1]["f1"]) / 2,
                     retention_f1=sum(r["retention_f1"] for r in runs) / 2,
                     retention_f1_std=abs(runs[0]["retention_f1"] - runs[1]["retention_f1"]) / 2)  # fmt: skip
    card = build_card(results)
    assert "| 0.6000 ± 0.1000 | 75.0% ± 12.5% |" in card.content
    assert "over 2 training seeds (42, 43" in card.content and "seed-42 run: F1 0.5000" in card.content
    assert "75.0% (± 12.5% over 2 seeds)" in card.content
    # the model-index describes the published checkpoint (the first seed), not the mean
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics["f1"] == 0.5 and metrics["f1_retention"] == 0.625


def test_alpine_card_places_its_plan_on_the_frontier(tiny_zoo):
    settings, _ = tiny_zoo
    results = read_results(Path(settings.output_dir) / "alpine-minilm")
    frontier = results["frontier"]
    # the tiny entry's own plan is not on the real frontier: the card names the frontier's best plan instead
    best = max((p for p in frontier["points"] if p["flops_ratio"] >= 2.0), key=lambda p: p["retention_f1"])
    text = build_card(results).content
    assert f"The plan that keeps the most F1 at >= 2.0x fewer FLOPs there is `{best['mode']}`" in text
    assert "frontier's budget differs from this entry's" in text
    # an entry built on the frontier's best plan is marked in the table and said to be it
    run = {best["mode"]: alpine_published(results)}
    on_frontier = dict(results, variant=best["mode"], schedule=best["schedule"])
    if best["schedule"] == "a":  # schedule (a) runs are the entry's `modes`, the others are under `schedules`
        on_frontier["modes"] = dict(results["modes"], **run)
    else:
        on_frontier["schedules"] = {best["schedule"]: run}
    text = build_card(on_frontier).content
    assert f"**{best['mode']} (this model's plan)**" in text and "This plan keeps the most F1" in text
    # the zoo's plan meets the targets in both schedules (it is not the single best run: the card says why)
    mine = [p for p in frontier["points"] if p["mode"] == PLAN]
    assert {p["schedule"] for p in mine} >= {SCHEDULE, "a"}
    assert all(p["flops_ratio"] >= 2.0 and p["retention_f1"] >= 0.98 for p in mine)
    if (best["mode"], best["schedule"]) != (PLAN, SCHEDULE):
        assert frontier["reason"] in build_card(results).content
    # no frontier recorded (an installed package has no benchmark results): the section is left out
    assert "retention frontier" not in build_card(dict(results, frontier=None)).content


def test_flab_cards_show_the_recovery_frontier(tiny_zoo, tmp_path):
    settings, _ = tiny_zoo
    results = read_results(Path(settings.output_dir) / "flab-smollm2-recovered")
    frontier = results["frontier"]  # the benchmark's committed results (benchmarks/results/flab_recovery.json)
    text = build_card(results).content
    assert "### Frontier" in text
    for point in frontier["points"]:
        assert f"| {point['param_ratio']:.4f} | {point['perplexity_ratio']:.3f}x |" in text
        b1, b8 = point["speedup_float32"]  # the committed frontier measured every level's speed
        assert f"/{frontier['dense_humaneval']['problems']} | {b1:.3f}x / {b8:.3f}x |" in text
    # the card says whether this entry's level is the frontier's pick, from the points alone
    picked = dict(results, level=frontier["points"][0]["level"])
    picked["frontier"] = dict(frontier, choice=picked["level"])
    text = build_card(picked).content
    assert f"**{picked['level']} (this model's level)**" in text
    assert "This model's level is the smallest that meets every target." in text
    none = build_card(dict(results, frontier=dict(frontier, choice=None))).content
    assert "No level measured there meets every target" in none
    # no frontier recorded (an installed package has no benchmark results): the section is left out
    assert "### Frontier" not in build_card(dict(results, frontier=None)).content
    # the figure draws the frontier as one more panel, left out with the section (PNG width: IHDR's first field)
    widths = []
    for name, recorded in (("with.png", results), ("without.png", dict(results, frontier=None))):
        plot_flab(recorded, tmp_path / name)
        widths.append(struct.unpack(">I", (tmp_path / name).read_bytes()[16:20])[0])
    assert widths[0] > widths[1]
