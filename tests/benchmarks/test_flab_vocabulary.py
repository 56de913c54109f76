"""The vocabulary experiment's settings and table (the run itself loads the real SmolLM2: `python -m benchmarks
flab-vocab`)."""

import pytest

from benchmarks.cli import main
from benchmarks.flab_vocabulary import VocabularySettings, vocabulary_markdown


def _row(passed, same, identical):
    return {"vocabulary": 20000, "answer_token_coverage": 0.9995, "answers_fully_covered": 0.97,
            "humaneval_prompts_identical": identical, "humaneval_prompts": 164, "same_answer_as_dense": same,
            "fenced_answers": 160, "humaneval": {"passed": passed, "problems": 164}}  # fmt: skip


def test_table_reports_every_vocabulary_and_the_targets():
    result = {
        "model": "SmolLM2", "corpus": {"chars": 4_000_000}, "heldout": {"prompts": 64, "answer_tokens": 9000},
        "dtype": "float32", "capability": None,
        "dense": {"vocabulary": 49152, "fenced_answers": 164, "humaneval": {"passed": 9, "problems": 164}},
        "variants": {"code": _row(0, 0.1, 0), "chat": _row(9, 0.95, 160)},
        "targets": {"humaneval_ge_dense_minus_1": True, "same_answer_ge_90%": True},
    }  # fmt: skip
    table = vocabulary_markdown(result)
    assert "| chat | 20,000 | 99.95% | 97% | 160/164 | 9/164 | 95.0% | 160/164 | - | - |" in table
    assert "| code | 20,000 | 99.95% | 97% | 0/164 | 0/164 | 10.0% | 160/164 | - | - |" in table
    assert "Targets (`chat`): humaneval_ge_dense_minus_1 met" in table
    # the broad vocabulary (stdlib plus installed packages) with what its lost tokens cost to read
    result["variants"]["broad"] = {**_row(9, 0.5, 100), "perplexity_ratio": {"stdlib_test": 1.0, "foreign": 1.0007}}
    result["corpus"]["broad"] = {"packages": ["numpy", "torch"], "chars": 50_000_000, "min_count": 3}
    result["targets_variant"] = "broad"
    table = vocabulary_markdown(result)
    assert "| broad | 20,000 | 99.95% | 97% | 100/164 | 9/164 | 50.0% | 160/164 | 1.0x | 1.0007x |" in table
    assert "sources of numpy, torch (50,000,000 characters; tokens used at least 3 times" in table
    assert "Targets (`broad`)" in table
    # the prompts the judged vocabulary tokenizes differently, and what they lack
    result["prompt_gaps"] = {"variant": "broad", "prompts": 64, "distinct_tokens": 81,
                             "tokens": [{"token": " Fib", "prompts": 5}, {"token": " vowels", "prompts": 4}]}  # fmt: skip
    assert ("The 64 HumanEval prompts `broad` tokenizes differently lack 81 tokens that no kept text used; the most "
            "common (prompts each): ` Fib` (5), ` vowels` (4).") in vocabulary_markdown(result)  # fmt: skip


def test_prompt_gaps_name_what_each_differently_tokenized_prompt_lacks():
    import collections
    import sys
    from pathlib import Path

    from benchmarks.flab_vocabulary import prompt_gaps

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flab_hf"))
    from flab_testing import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    prompts = ["def apples(x):", "def f(x):", "apples and pears"]
    tokens = [tokenizer.tokenize(p) for p in prompts]
    kept = tokenizer.convert_tokens_to_ids(sorted(set(tokens[1])))
    gaps = prompt_gaps(tokenizer, tokens, kept)
    # the second prompt uses only kept tokens; each other lacks at least one, counted once per prompt
    expected = collections.Counter(t for ts in (tokens[0], tokens[2]) for t in set(ts) - set(tokens[1]))
    assert gaps["prompts"] == 2 and gaps["distinct_tokens"] == len(expected) > 0
    assert {row["token"]: row["prompts"] for row in gaps["tokens"]} == {
        tokenizer.convert_tokens_to_string([t]): n for t, n in expected.items()}  # fmt: skip
    assert prompt_gaps(tokenizer, tokens, tokenizer.convert_tokens_to_ids(sorted({t for ts in tokens for t in ts}))) == {
        "prompts": 0, "distinct_tokens": 0, "tokens": []}  # fmt: skip


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"humaneval": 165}, r"`humaneval` must be <= 164"),
        ({"threads": 0}, r"`threads` must be an int >= 1, got 0"),
        ({"vocab_min_count": 0}, r"`vocab_min_count` must be an int >= 1, got 0"),
        ({"vocab_packages": ("accelerate",)}, r"`vocab_packages` holds 'accelerate'"),
        ({"vocab_packages": ("no_such_package_here",)}, r"vocab_packages='no_such_package_here': no installed"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        VocabularySettings(**settings)


def test_cli_refuses_bad_settings_before_loading_anything(capsys):
    with pytest.raises(SystemExit) as error:
        main(["flab-vocab", "--humaneval", "200", "--json", "/tmp/never.json"])
    assert error.value.code == 2 and "`humaneval` must be <= 164" in capsys.readouterr().err


def test_a_run_on_a_tiny_model_reads_finished_vocabularies_back(monkeypatch, tmp_path):
    import sys
    from pathlib import Path

    import benchmarks.flab_vocabulary as bench

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flab_hf"))
    from flab_testing import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    monkeypatch.setattr(bench, "load_smollm2", lambda: (tiny_model(layers=2, max_position_embeddings=4096), tokenizer))
    calls = []

    def humaneval_pass(model, tok, problems, max_new_tokens, batch_size, progress, keep_answers=False):
        calls.append(len(tok))
        return {"pass@1": 0.0, "passed": 0, "problems": len(problems), "passed_tasks": [],
                "answers": ["```python\npass\n```"] * len(problems)}  # fmt: skip

    monkeypatch.setattr(bench, "humaneval_pass", humaneval_pass)
    settings = VocabularySettings(
        corpus_chars=20_000, answer_prompts=2, answer_tokens=2, heldout_prompts=2, humaneval=2, humaneval_tokens=2,
        vocab_packages=("_pytest",), ppl_chunks=2, frontier_merges=[0, 50], work_dir=str(tmp_path),
    )  # fmt: skip
    result = bench.run_vocabulary_bench(settings, progress=False)
    assert list(result["variants"]) == ["code", "chat", "broad"] and len(calls) == 4  # dense, then each vocabulary
    assert result["variants"]["chat"]["vocabulary"] >= result["variants"]["code"]["vocabulary"]
    assert [row["keep_merges"] for row in result["merge_frontier"]] == [0, 50]
    broad = result["variants"]["broad"]
    assert result["prompt_gaps"]["prompts"] == broad["humaneval_prompts"] - broad["humaneval_prompts_identical"]
    # the dense model's answers to each chat-keeping vocabulary's building prompts are cached (resumable)
    assert len(list(tmp_path.glob("*/building_answers_*.jsonl"))) == 2
    monkeypatch.setattr(bench, "prune_vocabulary", lambda *a, **k: pytest.fail("a finished vocabulary is read back"))
    again = bench.run_vocabulary_bench(settings, progress=False)
    assert again["variants"] == result["variants"] and len(calls) == 4
