"""Published checkpoints load by repo id in a fresh virtual environment that has only torch and transformers.

For each family a tiny model is built in code, saved, written into a temporary Hugging Face cache with
``zoo publish --to-cache``, then loaded with ``AutoModel*.from_pretrained("codecompress-hf/...",
trust_remote_code=True)`` under ``HF_HUB_OFFLINE=1`` by the fresh environment's Python, whose logits must match.

The environment is created once (about 1.5 minutes: pip installs torch from the local wheel and transformers) and
reused by later sessions from ``.cache/`` in the repository (git-ignored), keyed by the versions; it is part of
``make test`` (``make test-fresh-venv`` runs it alone). ``CODECOMPRESS_FRESH_VENV_CACHE`` moves the cache folder.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import zoo_testing

from model_cards.cli import main

TORCH = importlib.metadata.version("torch").split("+")[0]
TRANSFORMERS = importlib.metadata.version("transformers")
OUR_PACKAGES = ("alpine_hf", "flab_hf", "xtc_hf", "model_cards")


def _clean_env(**extra) -> dict:
    """The environment of a user's shell: no PYTHONPATH or virtualenv of ours, offline, one thread."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


@pytest.fixture(scope="session")
def fresh_python() -> Path:
    """Python of a venv with only torch and transformers (and what they pull in), created once and cached."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}-torch{TORCH}-transformers{TRANSFORMERS}"
    cache = Path(os.environ.get("CODECOMPRESS_FRESH_VENV_CACHE", Path(__file__).resolve().parents[2] / ".cache"))
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"fresh-venv-{version}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").is_file():
        staging = venv.with_name(f"{venv.name}.{os.getpid()}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(staging)], check=True, timeout=600)
        # `--clear` of a venv made from inside a venv still uses the base interpreter; pip finds torch in the local
        # wheel folder (PIP_FIND_LINKS) or on PyPI
        install = subprocess.run(
            [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", f"torch=={TORCH}",
             f"transformers=={TRANSFORMERS}"],
            capture_output=True, text=True, timeout=1800, env=_clean_env(),
        )  # fmt: skip
        assert install.returncode == 0, install.stderr[-3000:]
        if venv.exists():
            import shutil

            shutil.rmtree(venv)
        staging.rename(venv)  # scripts' shebangs keep the old path; only `bin/python -m ...` is used
        (venv / ".complete").write_text(f"{TORCH} {TRANSFORMERS}\n")
    return python


def test_fresh_venv_has_only_torch_and_transformers(fresh_python, tmp_path):
    probe = (
        "import importlib.util, json, torch, transformers; print(json.dumps([torch.__version__, "
        f"transformers.__version__, [importlib.util.find_spec(n) is not None for n in {OUR_PACKAGES!r}]]))"
    )
    result = subprocess.run([str(fresh_python), "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=_clean_env(), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    torch_version, transformers_version, found = json.loads(result.stdout)
    assert torch_version.split("+")[0] == TORCH and transformers_version == TRANSFORMERS
    assert found == [False] * len(OUR_PACKAGES)
    fails = subprocess.run([str(fresh_python), "-c", "import alpine_hf"], capture_output=True, text=True,
                           cwd=tmp_path, env=_clean_env(), timeout=300)  # fmt: skip
    assert fails.returncode != 0 and "No module named 'alpine_hf'" in fails.stderr


LOADER = """
import json, sys, torch
import transformers
cases = json.load(open(sys.argv[1]))
report = {}
for family, case in cases.items():
    model = getattr(transformers, case["auto"]).from_pretrained(case["repo_id"], trust_remote_code=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(case["repo_id"])
    ids = torch.tensor(case["ids"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    expected = torch.load(case["expected"])
    report[family] = {
        "module": type(model).__module__, "class": type(model).__name__,
        "max_abs_diff": float((logits - expected).abs().max()), "shape": list(logits.shape),
        "ids_match": tokenizer(case["text"])["input_ids"] == case["text_ids"],
    }
json.dump(report, open(sys.argv[2], "w"))  # a file: library output on stdout cannot corrupt it
"""
FAMILIES = {
    "alpine": (lambda: (zoo_testing.alpine_classifier(), zoo_testing.roberta_tokenizer()),
               "AutoModelForSequenceClassification"),
    "flab": (zoo_testing.flab_non_uniform, "AutoModelForCausalLM"),
    "xtc": (zoo_testing.xtc_student, "AutoModelForCausalLM"),
}  # fmt: skip


def test_published_tiny_models_load_by_repo_id_in_fresh_venv(fresh_python, tmp_path, capsys):
    hub, cases = tmp_path / "hub", {}
    text = "def add(a, b):\n    return a + b\n"
    for family, (build, auto) in FAMILIES.items():
        model, tokenizer = build()
        folder = tmp_path / family
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        repo_id = f"codecompress-hf/tiny-{family}"
        assert main(["publish", str(folder), "--repo-id", repo_id, "--to-cache", "--cache-dir", str(hub)]) == 0
        ids = tokenizer(text)["input_ids"][:12]
        with torch.no_grad():
            torch.save(model(input_ids=torch.tensor([ids])).logits, tmp_path / f"{family}.pt")
        cases[family] = {
            "repo_id": repo_id, "auto": auto, "ids": [ids], "expected": str(tmp_path / f"{family}.pt"), "text": text,
            "text_ids": tokenizer(text)["input_ids"], "class": type(model).__name__,
        }  # fmt: skip
    capsys.readouterr()
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = _clean_env(HF_HUB_CACHE=str(hub), HF_MODULES_CACHE=str(tmp_path / "modules"))
    command = [str(fresh_python), "-c", LOADER, str(tmp_path / "cases.json"), str(tmp_path / "report.json")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    for family, case in cases.items():
        loaded = report[family]
        assert loaded["module"].startswith("transformers_modules"), loaded  # the published remote code, not ours
        assert loaded["class"] == case["class"] and loaded["ids_match"]
        assert loaded["max_abs_diff"] < 1e-4, (family, loaded)
