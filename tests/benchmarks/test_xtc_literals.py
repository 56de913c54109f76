"""Code in the form of CodeXGLUE's PY150 (what the XTC paper's CodeGPT read and was scored on)."""

import json
import os

import pytest

from benchmarks.cli import main
from benchmarks.xtc_literals import frequent_literals, normalize_code, normalize_files
from benchmarks.xtc_teacher import LITERALS_FILE, META_FILE, TeacherSettings, teacher_files, train_teacher

SOURCE = '''"""A module docstring."""
import os  # a comment


def greet(name, times=3):
    """Say hello."""
    for _ in range(times):
        print(f"hello {name}", 'x', 0x1F, 2.5)

    return os.sep
'''


def test_comments_indentation_and_rare_literals_are_dropped():
    form = normalize_code(SOURCE, {"str": ["x"], "num": ["3"]})
    assert form.splitlines() == [
        "<STR_LIT>",
        "import os",
        "def greet ( name , times = <NUM_LIT:3> ) :",
        "<STR_LIT>",
        "for _ in range ( times ) :",
        "print ( <STR_LIT> , <STR_LIT:x> , <NUM_LIT> , <NUM_LIT> )",  # an f-string is one literal
        "return os . sep",
    ]
    assert normalize_code("def broken(:\n") is None and normalize_code("# only a comment\n") is None
    assert [item["path"] for item in normalize_files([{"path": "a", "text": SOURCE}, {"path": "b", "text": "("}])] == [
        "a"
    ]


def test_frequent_literals_keep_short_names_only_and_are_deterministic():
    texts = ["a = 'utf-8'\nb = 'utf-8'\nc = 'a long message with spaces'\nd = 'q\"'\ne = 7\nf = 7\ng = 8\n"] * 3
    keep = frequent_literals(texts, top_strings=10, top_numbers=1)
    assert keep == {"str": ["utf-8"], "num": ["7"]}
    assert frequent_literals(list(reversed(texts)), top_strings=10, top_numbers=1) == keep
    templates = ["a = f'{x}'\nb = f'{x}'\nc = 'y'\n"]  # an f-string is a template, never kept by value
    assert frequent_literals(templates, top_strings=10)["str"] == ["y"]
    assert normalize_code("a = f'{x}'\n", {"str": ["{x}"]}) == "a = <STR_LIT>\n"
    with pytest.raises(ValueError, match="`top_strings` must be an int >= 0"):
        frequent_literals(texts, top_strings=-1)


def test_a_py150_teacher_learns_that_form_and_is_scored_in_it(tmp_path, capsys):
    settings = TeacherSettings(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=300, block_size=32,
                               batch_size=2, tokens=4 * 64, max_files=8, curve_samples=2, bf16=False, progress=False,
                               code_form="py150")  # fmt: skip
    assert settings.key() != TeacherSettings(**{**settings.__dict__, "code_form": "source"}).key()
    folder = train_teacher(settings, cache_dir=str(tmp_path))
    keep = json.loads(open(os.path.join(folder, LITERALS_FILE)).read())
    assert sorted(keep) == ["num", "str"] and "0" in keep["num"]
    assert json.loads(open(os.path.join(folder, META_FILE)).read())["settings"]["code_form"] == "py150"
    out = tmp_path / "scores.json"
    assert main(["--quiet", "xtc-eval", "--model", folder, "--samples", "3", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["code_form"] == "py150" and written["lines"] == "any"
    files, lines = teacher_files(folder, "valid")  # what the XTC bench distils on and scores
    assert lines == "any" and not any(
        line.startswith(("#", " ")) for item in files for line in item["text"].split("\n")
    )
    assert teacher_files(tmp_path, "valid")[1] == "code"  # not a py150 teacher: the code as written
    assert all(not row["target"].startswith("#") for row in written["samples"])  # no comment lines
    capsys.readouterr()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"code_form": "py151"}, "`code_form` must be one of"),
        ({"code_form": "py150", "distil_from": "smollm2"}, "cannot be distilled"),
    ],
)
def test_bad_code_forms_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherSettings(**kwargs)
