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
