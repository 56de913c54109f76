"""The teacher's budget in tokens, its learning curve, and resuming an interrupted run to the same weights."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from benchmarks.cli import main
from benchmarks.xtc_teacher import (
    CURVE_FILE,
    META_FILE,
    TeacherSettings,
    plot_teacher_curves,
    store_teacher_result,
    teacher_files,
    train_teacher,
)
from benchmarks.xtc_teacher_callbacks import TeacherCurveCallback, TokenProgressCallback
from xtc_hf.data import stdlib_code


def tiny(**overrides) -> TeacherSettings:
    """A 2-layer teacher on 8 training files: 6 steps of 2 x 32 tokens, a curve point and a checkpoint every 2 steps."""
    settings = dict(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=300, block_size=32, batch_size=2,
                    tokens=6 * 64, max_files=8, checkpoint_every_tokens=128, curve_every_tokens=128, curve_samples=2,
                    bf16=False, progress=False)  # fmt: skip
    return TeacherSettings(**{**settings, **overrides})


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated crash after the step-2 checkpoint")


def _weights(folder) -> dict:
    return load_file(os.path.join(folder, "model.safetensors"))


def test_tokens_set_the_step_count():
    assert TeacherSettings(tokens=4096, block_size=256, batch_size=8).planned_steps() == 2
    assert TeacherSettings(tokens=4097, block_size=256, batch_size=8).planned_steps() == 3  # the budget is covered
    assert TeacherSettings(steps=7).planned_steps() == 7
    assert TeacherSettings(minutes=2.0).planned_steps() is None  # timed at run time


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tokens": 1000, "steps": 3}, r"Give `steps` \(3\) or `tokens` \(1000\), not both"),
        ({"tokens": 0}, r"`tokens` must be None or an int >= 1, got 0"),
        ({"curve_every_tokens": -5}, r"`curve_every_tokens` must be None or an int >= 1, got -5"),
        ({"checkpoint_every_tokens": 1.5}, r"`checkpoint_every_tokens` must be None or an int >= 1, got 1.5"),
        ({"curve_samples": -1}, r"`curve_samples` must be an int >= 0 \(0 = loss-only curve\), got -1"),
        ({"minutes": 0}, r"`minutes` must be > 0 when `steps` and `tokens` are None"),
        ({"packages": ("no_such_package_here",)}, r"packages='no_such_package_here': no installed package"),
    ],
)
def test_teacher_settings_reject_bad_budgets(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherSettings(**kwargs)


def test_cache_key_holds_what_changes_the_weights_only():
    # bf16 explicit: the default resolves by the machine's probe, and bf16 changes the weights (so joins the key)
    key = TeacherSettings(bf16=True).key()
    assert key == "c191cca336a8"  # the default teacher's cache folder (bf16 machine) from before the token budget
    assert TeacherSettings(bf16=False).key() != key
    for unchanged in ({"curve_samples": 0}, {"curve_every_tokens": 10}, {"checkpoint_every_tokens": 10},
                      {"progress": False}):  # fmt: skip
        assert TeacherSettings(bf16=True, **unchanged).key() == key
    assert TeacherSettings(bf16=True, tokens=1000).key() not in (key, TeacherSettings(bf16=True, tokens=2000).key())
    assert TeacherSettings(bf16=True, packages=()).key() == key
    assert TeacherSettings(bf16=True, packages=("json",)).key() not in (key, TeacherSettings(bf16=True).key())


def test_token_budget_trains_and_saves_a_learning_curve(tmp_path):
    folder = train_teacher(tiny(), cache_dir=str(tmp_path))
    meta = json.loads(open(os.path.join(folder, META_FILE)).read())
    assert meta["steps"] == 6 and meta["train_tokens"] == 6 * 64
    curve = json.loads(open(os.path.join(folder, CURVE_FILE)).read())
    assert curve["split"] == "valid" and curve["samples"] == 2 and curve["tokens_per_step"] == 64
    points = curve["points"]
    assert [p["tokens"] for p in points] == [0, 128, 256, 384]
    assert points[0]["train_loss"] is None and all(p["train_loss"] > 0 for p in points[1:])
    assert all(0 <= p["em"] <= 100 and 0 <= p["es"] <= 100 for p in points)
    assert meta["curve_last"] == points[-1]
    # finished: the resumable checkpoints and the plan are gone, the teacher is reused from the cache
    assert sorted(os.listdir(os.path.dirname(folder))) == ["final"]
    assert train_teacher(tiny(), cache_dir=str(tmp_path)) == folder


def test_a_preset_names_a_teacher_and_options_given_change_it(monkeypatch, capsys):
    import benchmarks.xtc_teacher

    seen = []
    monkeypatch.setattr(benchmarks.xtc_teacher, "train_teacher", lambda settings, cache_dir: seen.append(settings))
    main(["--quiet", "xtc-teacher", "--preset", "py150"])
    main(["--quiet", "xtc-teacher", "--preset", "py150", "--tokens", "1000000", "--n-embd", "128"])
    preset = TeacherSettings.preset("py150", progress=False)
    assert seen[0] == preset and seen[0].key() == preset.key()  # what `make xtc-teacher-py150` trains
    assert (seen[1].tokens, seen[1].n_embd, seen[1].code_form, seen[1].packages) == (
        1_000_000, 128, "py150", preset.packages)  # fmt: skip
    with pytest.raises(ValueError, match=r"`preset` must be one of \['py150'\], got 'py151'"):
        TeacherSettings.preset("py151")


def test_a_teacher_curve_is_stored_without_weights_and_plotted(tmp_path, capsys):
    folder = train_teacher(tiny(), cache_dir=str(tmp_path / "cache"))
    path = store_teacher_result(folder, tmp_path / "results")
    assert os.path.basename(path) == f"teacher-2x32-v300-{tiny().key()}.json"
    stored = json.loads(open(path).read())
    assert stored["curve"] == json.loads(open(os.path.join(folder, CURVE_FILE)).read())
    assert stored["meta"]["settings"]["n_embd"] == 32 and stored["key"] == tiny().key()
    assert os.listdir(tmp_path / "results") == [os.path.basename(path)]  # settings and curve only, no weights
    plot_teacher_curves([stored, stored], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SystemExit):  # refused before any training
        main(["xtc-teacher", "--tokens", "64", "--results-dir", str(tmp_path / "a-file")])
    assert "`--results-dir`=" in capsys.readouterr().err


def test_packages_join_the_training_code(tmp_path):
    plain = json.loads(open(os.path.join(train_teacher(tiny(), cache_dir=str(tmp_path)), META_FILE)).read())
    more = json.loads(
        open(os.path.join(train_teacher(tiny(packages=("json",)), cache_dir=str(tmp_path)), META_FILE)).read()
    )
    assert more["data"]["packages"] == ["json"] and more["data"]["texts"] > plain["data"]["texts"]
    assert more["data"]["blocks"] > plain["data"]["blocks"]
    # the students can read all the teacher read: the stdlib train split and the packages' sources
    folder = train_teacher(tiny(packages=("json",)), cache_dir=str(tmp_path))
    stdlib, _ = teacher_files(folder, "train")
    everything, lines = teacher_files(folder, "train", packages=True)
    added = [item["path"] for item in everything[len(stdlib) :]]
    assert everything[: len(stdlib)] == stdlib and added and all(path.startswith("json/") for path in added)
    assert lines == "code"
    with pytest.raises(ValueError, match="`packages=True` adds training code; it needs split='train', got 'test'"):
        teacher_files(folder, "test", packages=True)


def test_interrupted_teacher_resumes_to_the_uninterrupted_weights(tmp_path):
    settings = tiny(curve_samples=0)  # a loss-only curve: the resume is what is tested here
    expected = _weights(train_teacher(settings, cache_dir=str(tmp_path / "whole")))
    with pytest.raises(KeyboardInterrupt):
        train_teacher(settings, cache_dir=str(tmp_path / "cut"), callbacks=[_Crash()])
    root = tmp_path / "cut" / "teacher" / settings.key()
    assert os.listdir(root / "checkpoints") == ["checkpoint-2"] and not (root / "final").exists()
    folder = train_teacher(settings, cache_dir=str(tmp_path / "cut"))
    meta = json.loads(open(os.path.join(folder, META_FILE)).read())
    assert meta["resumed_from"] == "checkpoint-2" and meta["steps"] == 6
    resumed = _weights(folder)
    assert resumed.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)
    curve = json.loads(open(os.path.join(folder, CURVE_FILE)).read())["points"]
    assert [p["tokens"] for p in curve] == [0, 128, 256, 384]  # carried by the checkpoint, continued, no duplicates


def test_curve_reads_points_from_log_history():
    history = [
        {"step": 0, "curve_tokens": 0, "curve_em": 0.0, "curve_es": 10.0},
        {"step": 2, "loss": 5.5},
        {"step": 4, "loss": 4.0, "curve_tokens": 256},
    ]
    assert TeacherCurveCallback.curve(history) == [
        {"tokens": 0, "step": 0, "train_loss": None, "em": 0.0, "es": 10.0},
        {"tokens": 256, "step": 4, "train_loss": 4.0},
    ]


def test_callbacks_reject_bad_intervals():
    with pytest.raises(ValueError, match=r"`every_steps` must be an int >= 1, got 0"):
        TeacherCurveCallback(None, [], every_steps=0, tokens_per_step=64)
    with pytest.raises(ValueError, match=r"`tokens_per_step` must be an int >= 1, got 0"):
        TokenProgressCallback(0)


# ------------------------------------------------------------------------------------- distilled from a stronger model


def _source(folder) -> str:
    """A tiny random Llama with a byte-level BPE tokenizer, saved as a checkpoint folder (the model to distil)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flab_hf"))
    from flab_testing import tiny_model, tiny_tokenizer

    model = tiny_model("llama", layers=2)
    with torch.no_grad():  # peaked next-token distributions, far from what the text alone teaches
        model.get_input_embeddings().weight.normal_(0, 0.3)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def _kl_to_source(teacher_folder, source_folder, texts) -> float:
    """Mean KL(source || teacher) per token on ``texts``, the source's logits restricted to the teacher's ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

    from compress_utils.distillation import kl_divergence

    tokenizer = AutoTokenizer.from_pretrained(teacher_folder)
    source_tokenizer = AutoTokenizer.from_pretrained(source_folder)
    kept = [source_tokenizer.convert_tokens_to_ids(token) for token in tokenizer.convert_ids_to_tokens(
        list(range(len(tokenizer))))]  # fmt: skip
    teacher = GPT2LMHeadModel.from_pretrained(teacher_folder).eval()
    source = AutoModelForCausalLM.from_pretrained(source_folder).eval()
    values = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tokenizer.encode(text)[:64]])
            assert source_tokenizer.encode(text)[:64] == [kept[i] for i in ids[0].tolist()]  # the same tokens
            values.append(float(kl_divergence(teacher(ids).logits, source(torch.tensor(kept)[ids]).logits[..., kept])))
    return sum(values) / len(values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distil_from": "no/such/folder"}, r"`distil_from`='no/such/folder' is neither 'smollm2' nor a checkpoint"),
        ({"distil_min_count": 0}, r"`distil_min_count` must be an int >= 1, got 0"),
        ({"distil_temperature": 0.0}, r"`distil_temperature` must be > 0"),
        ({"distil_kl_weight": 1.5}, r"`distil_kl_weight` must be in \[0, 1\]"),
    ],
)
def test_distillation_settings_are_checked_before_any_work(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherSettings(**kwargs)


def test_distillation_settings_join_the_key_only_when_distilling():
    key = TeacherSettings(bf16=True).key()
    assert TeacherSettings(bf16=True, distil_kl_weight=0.9, distil_min_count=5).key() == key  # not distilling
    distilled = TeacherSettings(bf16=True, distil_from="smollm2")
    assert distilled.key() != key
    assert TeacherSettings(bf16=True, distil_from="smollm2", vocab_size=300).key() == distilled.key()  # unused
    assert TeacherSettings(bf16=True, distil_from="smollm2", distil_kl_weight=1).key() not in (key, distilled.key())


def test_a_distilled_teacher_learns_the_source_distributions(tmp_path):
    source = _source(tmp_path / "source")
    settings = dict(
        tokens=40 * 64,
        learning_rate=3e-3,
        distil_from=source,
        distil_min_count=1,
        curve_every_tokens=1280,
        checkpoint_every_tokens=1280,
    )
    folder = train_teacher(tiny(**settings, distil_kl_weight=1.0), cache_dir=str(tmp_path / "kd"))
    meta = json.loads(open(os.path.join(folder, META_FILE)).read())
    assert meta["distilled_from"] == source and meta["vocabulary"] < 420  # the source's tokenizer, pruned
    points = json.loads(open(os.path.join(folder, CURVE_FILE)).read())["points"]
    assert all(point["train_kl"] > 0 for point in points[1:]) and "train_ce" not in points[-1]  # KL alone
    stored = store_teacher_result(folder, tmp_path / "results")
    key = tiny(**settings, distil_kl_weight=1.0).key()
    assert os.path.basename(stored) == f"teacher-2x32-v{meta['vocabulary']}-kd-{key}.json"
    # the same run on the text alone (same tokenizer, init and data: KL weight 0) stays further from the source
    plain = train_teacher(tiny(**settings, distil_kl_weight=0.0), cache_dir=str(tmp_path / "ce"))
    plain_points = json.loads(open(os.path.join(plain, CURVE_FILE)).read())["points"]
    assert all(point["train_ce"] > 0 for point in plain_points[1:])
    held_out = [item["text"] for item in stdlib_code("valid", max_files=4)]
    distilled_kl, plain_kl = _kl_to_source(folder, source, held_out), _kl_to_source(plain, source, held_out)
    assert distilled_kl < 0.7 * plain_kl, (distilled_kl, plain_kl)
