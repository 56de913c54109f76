import json

import pytest
import torch
from transformers import GPT2LMHeadModel

from benchmarks.xtc_bench import count_parameters, disk_bytes
from benchmarks.xtc_eval import (
    code_line_numbers,
    edit_similarity,
    evaluate_line_completion,
    exact_match,
    line_completion_samples,
    line_context,
)
from benchmarks.xtc_teacher import TeacherSettings, train_teacher, train_tokenizer
from xtc_hf import XTCGPT2LMHeadModel
from xtc_hf.cli import build_parser, main
from xtc_hf.data import SPLITS, pack_blocks, split_of, stdlib_code


def test_split_is_stable_and_roughly_80_10_10():
    paths = [f"pkg{i}/module{i}.py" for i in range(2000)]
    splits = [split_of(p) for p in paths]
    assert splits == [split_of(p) for p in paths]
    share = {s: splits.count(s) / len(paths) for s in SPLITS}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["valid"] < 0.13 and 0.07 < share["test"] < 0.13


def test_stdlib_splits_are_disjoint_and_skip_tests(tmp_path):
    for name in ("a.py", "b.py", "c.py", "site-packages/x.py", "test/t.py", "idlelib/i.py", "lib2to3/l.py"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    seen = [f["path"] for split in SPLITS for f in stdlib_code(split, root=str(tmp_path))]
    assert sorted(seen) == ["a.py", "b.py", "c.py"]
    with pytest.raises(ValueError, match="split"):
        stdlib_code("dev")


def test_real_stdlib_has_all_splits():
    sizes = {split: len(stdlib_code(split)) for split in SPLITS}
    assert sizes["train"] > sizes["valid"] > 0 and sizes["test"] > 0


def test_metrics():
    assert exact_match(" return x ", "return x")
    assert not exact_match("return y", "return x")
    assert edit_similarity("abc", "abc") == 100.0
    assert edit_similarity("return x", "return y") == pytest.approx(87.5)
    assert edit_similarity("", "abc") == 0.0


def test_line_completion_samples_are_deterministic():
    files = [{"path": "a.py", "text": "import os\ndef f():\n    return os.sep\n"}]
    samples = line_completion_samples(files, num_samples=2, seed=0)
    assert samples == line_completion_samples(files, num_samples=2, seed=0)
    for sample in samples:
        assert files[0]["text"].startswith(sample["prompt"] + "\n")
        assert sample["target"] in ("def f():", "return os.sep")
    with pytest.raises(ValueError, match="empty"):
        line_completion_samples([], 2)


@pytest.fixture(scope="module")
def tiny_tokenizer():
    texts = [f["text"] for f in stdlib_code("valid", max_files=10)]
    return train_tokenizer(texts, vocab_size=300)


def test_tokenizer_and_packing(tiny_tokenizer):
    text = "def f(x):\n    return x + 1\n"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text  # byte-level BPE is lossless
    blocks = pack_blocks([text] * 10, tiny_tokenizer, block_size=8)
    assert blocks and all(len(block) == 8 for block in blocks)
    assert tiny_tokenizer.eos_token_id in sum(blocks, [])


def test_evaluate_line_completion_runs_on_gpt2_and_xtc(tiny_tokenizer):
    from transformers import GPT2Config

    torch.manual_seed(0)
    eos = tiny_tokenizer.eos_token_id
    config = GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=len(tiny_tokenizer),
        n_positions=128,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    base = GPT2LMHeadModel(config).eval()
    files = [{"path": "m.py", "text": "import os\n\ndef f(path):\n    return os.path.join(path, 'x')\n"}]
    samples = line_completion_samples(files, num_samples=2)
    for model in (base, XTCGPT2LMHeadModel.from_gpt2(base, weight_bits=1).pack_().eval()):
        scores = evaluate_line_completion(
            model, tiny_tokenizer, samples, context_tokens=64, max_new_tokens=8, progress=False
        )
        assert scores["n"] == 2 and 0 <= scores["em"] <= 100 and 0 <= scores["es"] <= 100
        assert all("\n" not in p for p in scores["predictions"])


def test_completion_stays_within_the_trained_positions(tiny_tokenizer, monkeypatch):
    from transformers import GPT2Config

    eos = tiny_tokenizer.eos_token_id
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tiny_tokenizer), n_positions=128,
                        bos_token_id=eos, eos_token_id=eos)  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    lengths = []
    generate = model.generate

    def record(input_ids, **kwargs):
        out = generate(input_ids, **kwargs)
        lengths.append((input_ids.shape[1], out.shape[1]))
        return out

    monkeypatch.setattr(model, "generate", record)
    text = "\n".join(f"value_{i} = compute(value_{i - 1}, {i})" for i in range(1, 40)) + "\n"
    samples = line_completion_samples([{"path": "m.py", "text": text}], num_samples=3)
    # trained on 32-token blocks: a 24-token prompt and 8 new tokens fill them, never position 32 or later
    evaluate_line_completion(model, tiny_tokenizer, samples, context_tokens=64, max_new_tokens=8, progress=False,
                             positions=32)  # fmt: skip
    assert lengths and all(prompt == 24 and total <= 32 for prompt, total in lengths)
    lengths.clear()  # without `positions`: the model's n_positions bounds it
    evaluate_line_completion(model, tiny_tokenizer, samples, context_tokens=64, max_new_tokens=8, progress=False)
    assert all(prompt == 64 for prompt, _ in lengths)
    assert line_context(model, 256, 48, positions=256) == 208 and line_context(model, 64, 8) == 64
    with pytest.raises(ValueError, match="`max_new_tokens`=48 leaves no room for a prompt in 40 positions"):
        line_context(model, 256, 48, positions=40)


def test_count_parameters_is_independent_of_packing(tiny_gpt2, tmp_path):
    model = XTCGPT2LMHeadModel.from_gpt2(tiny_gpt2, weight_bits=1)
    before = count_parameters(model)
    assert before == sum(p.numel() for p in tiny_gpt2.parameters())
    assert count_parameters(model.pack_()) == before
    model.save_pretrained(tmp_path)
    assert disk_bytes(str(tmp_path)) > 0


def test_teacher_settings_reject_bad_values():
    with pytest.raises(ValueError, match="n_embd"):
        TeacherSettings(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="block_size"):
        TeacherSettings(block_size=1024, n_positions=512)
    with pytest.raises(ValueError, match="steps"):
        TeacherSettings(steps=0)
    with pytest.raises(ValueError, match=r"`max_files` must be None or a positive integer, got 0"):
        TeacherSettings(max_files=0)


def test_teacher_cache_key_changes_with_the_corpus_split(monkeypatch):
    import benchmarks.xtc_teacher

    key = TeacherSettings().key()
    assert TeacherSettings(max_files=10).key() != key
    monkeypatch.setattr(benchmarks.xtc_teacher, "CORPUS_VERSION", "another split rule")
    assert TeacherSettings().key() != key  # a teacher trained on another split is never reused


@pytest.mark.slow
def test_tiny_teacher_trains_and_is_cached(tmp_path):
    settings = TeacherSettings(n_layer=2, n_embd=32, n_head=2, vocab_size=300, block_size=64, steps=5, bf16=False,
                               curve_samples=2)  # fmt: skip
    folder = train_teacher(settings, cache_dir=str(tmp_path))
    meta = json.loads(open(f"{folder}/xtc_teacher.json").read())
    assert meta["steps"] == 5
    assert train_teacher(settings, cache_dir=str(tmp_path)) == folder  # cached


def test_cli_parses_every_command():
    parser = build_parser()
    assert parser.parse_args(
        ["compress", "--teacher", "t", "--output-dir", "o", "--layers", "1,3"]
    ).student_layers == [1, 3]
    for moved in ("zoo", "teacher", "eval", "bench"):  # zoo: `zoo build`; the rest: `python -m benchmarks xtc-*`
        with pytest.raises(SystemExit):
            parser.parse_args([moved])
    with pytest.raises(SystemExit):
        main(["compress", "--teacher", "t", "--output-dir", "o", "--weight-bits", "3"])


def test_code_lines_leave_out_comments_docstrings_and_string_continuations():
    text = 'import os\n\ndef f(path):\n    """Join.\n\n    More prose here.\n    """\n    # a comment line\n    x = (\n        "a string line"\n        "another"\n    )\n    return os.path.join(path, x)\n'
    assert code_line_numbers(text) == {0, 2, 8, 11, 12}
    assert code_line_numbers("def broken(:\n    pass\n") is None
    files = [{"path": "m.py", "text": text}]
    code = line_completion_samples(files, num_samples=10, lines="code")
    assert {s["target"] for s in code} == {"def f(path):", "x = (", "return os.path.join(path, x)"}  # >= 4 chars
    every = {s["target"] for s in line_completion_samples(files, num_samples=20, lines="any")}
    assert "# a comment line" in every and "More prose here." in every
    with pytest.raises(ValueError, match="`lines` must be one of"):
        line_completion_samples(files, 2, lines="prose")
