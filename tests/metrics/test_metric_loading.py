"""The documented usage: ``evaluate.load("compress_utils/metrics/<name>")`` from the repository root, offline."""

from pathlib import Path

from fresh_process import run_fresh_python

REPO = Path(__file__).resolve().parents[2]
NAMES = ("clone_detection", "code_completion", "pass_at_k")

FRESH = """
import json, sys
import evaluate
out = {}
for name in sys.argv[1:]:
    module = evaluate.load(f"compress_utils/metrics/{name}")
    info = module.info
    out[name] = {"citation": info.citation, "description": info.description, "inputs": info.inputs_description,
                 "features": sorted(info.features), "doc": type(module).__doc__ or ""}
out["pass_at_k"]["example"] = evaluate.load("compress_utils/metrics/pass_at_k").compute(n=[2, 2], c=[1, 0], k=[1, 2])
out["code_completion"]["example"] = evaluate.load("compress_utils/metrics/code_completion").compute(
    predictions=["return x", "return y "], references=[" return x", "return x"])
out["clone_detection"]["example"] = evaluate.load("compress_utils/metrics/clone_detection").compute(
    predictions=[1, 1, 0, 0], references=[1, 0, 1, 0])
print(json.dumps(out))
"""


def test_modules_load_by_relative_path_offline_without_the_library(tmp_path):
    env = {"HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_CACHE": str(tmp_path / "e")}
    out, _ = run_fresh_python(FRESH, *NAMES, cwd=REPO, modules_dir=tmp_path / "m", env=env)
    for name in NAMES:
        assert "@" in out[name]["citation"] and len(out[name]["description"]) > 100
        assert "Returns:" in out[name]["inputs"] and "Examples:" in out[name]["inputs"]
        assert (REPO / "compress_utils" / "metrics" / name / "README.md").is_file()
    assert out["pass_at_k"]["features"] == ["c", "n"]
    assert out["code_completion"]["features"] == out["clone_detection"]["features"] == ["predictions", "references"]
    # the numbers the docstring examples promise
    assert out["pass_at_k"]["example"] == {"pass@1": 0.25, "pass@2": 0.5}
    assert out["code_completion"]["example"] == {"exact_match": 50.0, "edit_similarity": 93.75}
    assert out["clone_detection"]["example"] == {"accuracy": 0.5, "f1": 0.5, "precision": 0.5, "recall": 0.5}
