"""The calibration-size study on a tiny Llama (the real run prunes SmolLM2: `python -m benchmarks flab-calibration`)."""

import sys
from pathlib import Path

import pytest

import benchmarks.flab_calibration as study
from benchmarks.flab_calibration import CalibrationSettings, calibration_markdown, run_calibration_bench, stability
from flab_hf.pruning import FFN_RULES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flab_hf"))
from flab_testing import tiny_model, tiny_tokenizer  # noqa: E402


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": ("16x256", "16-256")}, r"SAMPLESxLENGTH .*\['16-256'\]"),
        ({"sizes": ("0x256",)}, r"both >= 1 .*\['0x256'\]"),
        ({"sizes": ("16x256", "00x256")}, r"both >= 1 .*\['00x256'\]"),
        ({"sizes": ()}, "SAMPLESxLENGTH"),
        ({"layers_to_prune": 0}, "layers_to_prune"),
        ({"ffn_neurons": -1}, "ffn_neurons"),
    ],
)
def test_settings_name_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CalibrationSettings(**kwargs)


def test_stability_compares_with_the_largest_size():
    rows = {"small": {"calibration_tokens": 10, "removed_layers": [1, 2], "ffn_rule": "top"},
            "large": {"calibration_tokens": 99, "removed_layers": [2, 3], "ffn_rule": "top"}}  # fmt: skip
    assert stability(rows) == {
        "small": {"same_layers": False, "shared_layers": 1, "same_ffn_rule": True},
        "large": {"same_layers": True, "shared_layers": 2, "same_ffn_rule": True},
    }


def test_a_run_prunes_at_every_size_and_scores_on_one_yardstick(monkeypatch):
    monkeypatch.setattr(study, "load_smollm2", lambda: (tiny_model(layers=4), tiny_tokenizer()))
    settings = CalibrationSettings(sizes=("2x32", "6x64"), layers_to_prune=1, ffn_neurons=8, corpus_chars=40_000,
                                   heldout_windows=3, heldout_length=64, threads=1)  # fmt: skip
    result = run_calibration_bench(settings, progress=False)
    assert list(result["sizes"]) == ["2x32", "6x64"]
    for row in result["sizes"].values():
        assert len(row["removed_layers"]) == 1 and row["ffn_rule"] in FFN_RULES
        assert set(row["ffn_rule_kl"]) == set(FFN_RULES)  # auto compares every rule, importance included
        assert row["heldout"]["tokens"] == 3 * 63 and row["heldout"]["kl_to_dense"] > 0
    assert result["stability"]["6x64"] == {"same_layers": True, "shared_layers": 1, "same_ffn_rule": True}
    again = run_calibration_bench(settings, progress=False)  # deterministic
    strip = lambda rows: {k: {n: v for n, v in r.items() if n != "seconds"} for k, r in rows.items()}  # noqa: E731
    assert strip(again["sizes"]) == strip(result["sizes"])
    table = calibration_markdown(result)
    assert "| 6x64 | 384 |" in table and "| yes |" in table
