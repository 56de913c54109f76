"""Bad input to Flab-Pruner's front doors: a clear error naming the argument, refused before the long work, and
nothing written or deleted."""

import os

import pytest
from cli_errors import cli_error
from flab_testing import CODE, tiny_model, tiny_tokenizer

import flab_hf.cli
import flab_hf.recipe
from flab_hf.cli import main
from flab_hf.recipe import FlabConfig, flab_prune


@pytest.fixture
def no_pruning(monkeypatch):
    """Any call to the pruning itself fails the test: bad options must be refused before it."""

    def pruned(*args, **kwargs):
        raise AssertionError("bad options must be refused before pruning starts")

    monkeypatch.setattr(flab_hf.recipe, "prune_vocabulary", pruned)
    monkeypatch.setattr(flab_hf.recipe, "select_layers_kl", pruned)


def _listing(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


PRUNE_CASES = {
    "ffn neurons not integers": (["--ffn-neurons", "abc"], "--ffn-neurons"),
    "ffn neurons list with text": (["--ffn-neurons", "8,x"], "--ffn-neurons"),
    "ffn neurons negative": (["--ffn-neurons", "-3"], "`ffn_neurons`"),
    "ffn neurons whole width": (["--layers", "1", "--ffn-neurons", "64"], "`ffn_neurons=64`"),
    "ffn neurons list too wide": (["--layers", "1", "--ffn-neurons", "8,64,8"], "`ffn_neurons[1]=64`"),
    "ffn neurons list too short": (["--layers", "1", "--ffn-neurons", "8,8"], "`ffn_neurons` lists 2 values"),
    "layers not an integer": (["--layers", "two"], "--layers"),
    "too many layers": (["--layers", "9"], "layers_to_prune"),
    "layer method": (["--layer-method", "magic"], "`layer_method`"),
    "ffn rule": (["--ffn-rule", "magic"], "`ffn_rule`"),
    "calibration samples zero": (["--calibration-samples", "0"], "`calibration_samples`"),
    "threads zero": (["--threads", "0"], "--threads"),
}


@pytest.mark.parametrize("case", list(PRUNE_CASES))
def test_prune_bad_option_names_it_and_writes_nothing(folders, capsys, no_pruning, case):
    model_dir, corpus_dir, output = folders
    extra, named = PRUNE_CASES[case]
    before = _listing(output.parent)
    err = cli_error(capsys, main, ["--quiet", "prune", "--model", str(model_dir), "--corpus", str(corpus_dir),
                             "--output", str(output), *extra])  # fmt: skip
    assert named in err
    assert _listing(output.parent) == before and not output.exists()


@pytest.mark.parametrize(("option", "named"), [("--model", "`--model`="), ("--corpus", "`--corpus`=")])
def test_prune_missing_model_or_corpus_folder_is_named(folders, capsys, monkeypatch, option, named):
    model_dir, corpus_dir, output = folders
    monkeypatch.setattr(flab_hf.cli, "_load", lambda path: pytest.fail("nothing is loaded for a missing folder"))
    values = {"--model": str(model_dir), "--corpus": str(corpus_dir), option: str(output.parent / "missing")}
    argv = ["--quiet", "prune", "--output", str(output)] + [item for pair in values.items() for item in pair]
    assert named in cli_error(capsys, main, argv)
    assert not output.exists()


def test_prune_into_a_non_empty_folder_is_refused_before_loading(folders, capsys, monkeypatch):
    model_dir, corpus_dir, output = folders
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    monkeypatch.setattr(flab_hf.cli, "_load", lambda path: pytest.fail("refused before loading the model"))
    err = cli_error(capsys, main, ["--quiet", "prune", "--model", str(model_dir), "--corpus", str(corpus_dir),
                             "--output", str(output)])  # fmt: skip
    assert "`--output`=" in err and "--overwrite" in err
    assert os.listdir(output) == ["notes.txt"]


def test_recover_into_a_non_empty_folder_is_refused_before_loading(folders, capsys, monkeypatch):
    model_dir, _, output = folders
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    monkeypatch.setattr(flab_hf.cli, "_load", lambda path: pytest.fail("refused before loading the models"))
    err = cli_error(capsys, main, ["--quiet", "recover", "--model", str(model_dir), "--output", str(output)])
    assert "`--output`=" in err
    assert os.listdir(output) == ["notes.txt"]


def test_library_checks_ffn_neurons_before_vocabulary_pruning(no_pruning):
    model = tiny_model("qwen2", layers=4)
    with pytest.raises(ValueError, match=r"`ffn_neurons\[0\]=64` but the FFN layers have at most 64 neurons"):
        flab_prune(model, tiny_tokenizer(), CODE * 3, FlabConfig(layers_to_prune=1, ffn_neurons=[64, 8, 8]))


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"ffn_neurons": -1}, "`ffn_neurons`"), ({"ffn_neurons": [8, "a"]}, "`ffn_neurons`"),
     ({"layers_to_prune": -1}, "`layers_to_prune`"), ({"auto_rules": ()}, "`auto_rules`")],
)  # fmt: skip
def test_config_names_the_bad_field(settings, named):
    with pytest.raises(ValueError, match=named):
        FlabConfig(**settings)
