"""README tables are rendered from benchmark JSON, never typed in."""

import json

import pytest

from benchmarks.render_results import render_readme


def test_render_fills_marked_block_from_json(tmp_path):
    results = {
        "settings": {"train_size": 10, "test_size": 4, "max_length": 64, "epochs": 1, "alpha": 1.0},
        "modes": {
            "none": {"accuracy": 0.75, "f1": 0.8, "eval_flops_ratio_analytic": 1.0},
            "all": {
                "accuracy": 0.5,
                "f1": 0.6,
                "retention_accuracy": 0.5 / 0.75,
                "retention_f1": 0.75,
                "train_time_ratio": 1.7,
                "eval_flops_ratio_analytic": 2.2,
            },
        },
    }
    (tmp_path / "alpine_finetune_minilm.json").write_text(json.dumps(results))
    readme = "intro\n<!-- results:alpine_finetune_minilm -->\nold\n<!-- /results:alpine_finetune_minilm -->\nend\n"
    rendered = render_readme(readme, tmp_path)
    assert "old" not in rendered and "| all | 0.5000 | 0.6000 | 66.67% | 75.00% | 1.70x | 2.20x |" in rendered
    assert render_readme(rendered, tmp_path) == rendered  # idempotent
    missing = render_readme("<!-- results:alpine_minilm -->\n<!-- /results:alpine_minilm -->", tmp_path)
    assert "Not measured yet" in missing


def test_a_run_resumed_without_a_training_clock_has_no_speed_ratio(tmp_path):
    # it timed only the part after its resume, so a ratio would make it look several times faster
    resumed = {"accuracy": 0.7, "f1": 0.7, "retention_accuracy": 1.0, "retention_f1": 1.0, "train_seconds": 40.0,
               "resumed_from": "runs/x/checkpoint-800", "eval_flops_ratio_analytic": 1.1}  # fmt: skip
    results = {
        "settings": {"train_size": 10, "test_size": 4, "max_length": 64, "epochs": 1, "alpha": 1.0},
        "modes": {
            "none": {"accuracy": 0.7, "f1": 0.7, "train_time_ratio": 1.0, "eval_flops_ratio_analytic": 1.0},
            "odd": resumed,
        },  # fmt: skip
    }
    (tmp_path / "alpine_finetune_minilm.json").write_text(json.dumps(results))
    rendered = render_readme(
        "<!-- results:alpine_finetune_minilm -->\n<!-- /results:alpine_finetune_minilm -->", tmp_path
    )
    assert "| odd | 0.7000 | 0.7000 | 100.00% | 100.00% | n/a (resumed) | 1.10x |" in rendered


def test_unknown_marker_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="results:nope"):
        render_readme("<!-- results:nope -->x<!-- /results:nope -->", tmp_path)


def test_tables_say_on_which_machine_they_were_measured(tmp_path):
    results = {
        "settings": {"train_size": 10, "test_size": 4, "max_length": 64, "epochs": 1, "alpha": 1.0},
        "modes": {"none": {"accuracy": 0.75, "f1": 0.8, "eval_flops_ratio_analytic": 1.0}},
    }
    readme = "<!-- results:alpine_finetune_minilm -->\n<!-- /results:alpine_finetune_minilm -->"
    (tmp_path / "alpine_finetune_minilm.json").write_text(json.dumps(results))
    assert "unknown machine" in render_readme(readme, tmp_path)  # written before the probe was recorded
    capability = {
        "cpu_model": "AMD EPYC 9B14",
        "cpu_capability": "AVX2",
        "isa_env": {"ATEN_CPU_CAPABILITY": "avx2"},
        "fast": {"fp32": True, "bf16": False, "int8": False},
    }
    (tmp_path / "alpine_finetune_minilm.json").write_text(json.dumps({**results, "capability": capability}))
    rendered = render_readme(readme, tmp_path)
    assert "_Measured on: AMD EPYC 9B14, PyTorch CPU capability AVX2 (capped by ATEN_CPU_CAPABILITY=avx2)" in rendered
    assert render_readme(rendered, tmp_path) == rendered


def test_figures_are_drawn_from_json_byte_identically(tmp_path):
    from benchmarks.render_results import render_figures

    runs = [{"seed": s, "f1": f, "retention_f1": r, "eval_flops_ratio_analytic": x}
            for s, f, r, x in ((42, 0.6, 0.7, 2.2), (43, 0.7, 0.8, 2.4))]  # fmt: skip
    results = {
        "settings": {"seed": 42},
        "modes": {
            "none": {"f1": 0.9, "retention_f1": 1.0, "eval_flops_ratio_analytic": 1.0, "seeds": [42, 43]},
            "all": {"f1": 0.65, "retention_f1": 0.75, "retention_f1_std": 0.05, "eval_flops_ratio_analytic": 2.3,
                    "eval_flops_ratio_analytic_std": 0.1, "seeds": [42, 43], "runs": runs},
        },
    }  # fmt: skip
    (tmp_path / "alpine_finetune_minilm.json").write_text(json.dumps(results))
    (figure,) = render_figures(tmp_path)
    first = figure.read_bytes()
    assert figure.name == "alpine_finetune_minilm.png" and first.startswith(b"\x89PNG")
    render_figures(tmp_path)
    assert figure.read_bytes() == first


def test_teacher_curves_render_from_a_folder_with_their_yardstick(tmp_path):
    folder = tmp_path / "xtc_teacher_curves"
    folder.mkdir()
    settings = {"n_layer": 12, "n_embd": 256, "vocab_size": 8192, "distil_from": None}
    meta = {
        "settings": settings,
        "train_tokens": 1_000_000,
        "train_seconds": 400.0,
        "cpu": "Xeon",
        "cpu_capability": "AVX512",
    }
    curve = {"split": "valid", "samples": 200, "points": [{"tokens": 0, "em": 0.0, "es": 0.1},
                                                          {"tokens": 1_000_000, "em": 1.5, "es": 21.25}]}  # fmt: skip
    (folder / "teacher-12x256-v8192-abc.json").write_text(json.dumps({"meta": meta, "curve": curve}))
    reference = {"model": "smollm2", "em": 10.0, "es": 46.76, "n": 1000, "lines": "code", "split": "test",
                 "cpu": "Xeon", "cpu_capability": "AVX512"}  # fmt: skip
    (folder / "reference-smollm2.json").write_text(json.dumps(reference))
    readme = "<!-- results:xtc_teacher_curves -->\n<!-- /results:xtc_teacher_curves -->"
    rendered = render_readme(readme, tmp_path)
    assert "| 12x256, vocab 8192, text | 2500 | 1.00M: 1.5 / 21.2 | Xeon (AVX512) |" in rendered
    assert "0.00M" not in rendered  # the untrained point is not a curve point
    assert "`smollm2` scores EM 10.0% / ES 46.8 on 1000 code lines of the test split" in rendered
