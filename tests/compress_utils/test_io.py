"""Safe folder writes: nothing of the user's is deleted without overwrite, never the cwd/home, leftovers cleaned."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compress_utils.io import (
    atomic_dir,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    clean_leftovers,
    save_pretrained_atomic,
)


def _user_folder(path: Path) -> Path:
    path.mkdir()
    (path / "thesis.tex").write_text("years of work")
    return path


def test_refuses_non_empty_folder_and_keeps_it(tmp_path):
    folder = _user_folder(tmp_path / "mine")
    with pytest.raises(FileExistsError, match=r"`output`=.*mine.*not empty.*--overwrite"):
        with atomic_dir(folder) as staging:
            Path(staging, "model.bin").write_text("x")
    assert (folder / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left behind


def test_overwrite_replaces_folder(tmp_path):
    folder = _user_folder(tmp_path / "mine")
    with atomic_dir(folder, overwrite=True) as staging:
        Path(staging, "model.bin").write_text("x")
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty") as staging:
        Path(staging, "a").write_text("1")
    assert (tmp_path / "empty" / "a").read_text() == "1"


@pytest.mark.parametrize("which", ["cwd", "parent", "home", "root"])
def test_never_replaces_cwd_parents_home_root_even_with_overwrite(tmp_path, monkeypatch, which):
    work = tmp_path / "project" / "sub"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "project"))
    target = {"cwd": ".", "parent": "..", "home": "~", "root": "/"}[which]
    with pytest.raises(ValueError, match=r"`output`=.*cannot be written.*Choose a new folder"):
        with atomic_dir(target, overwrite=True):
            pass
    assert (work / "keep.txt").read_text() == "keep"


def test_file_destination_is_refused(tmp_path):
    (tmp_path / "f").write_text("data")
    with pytest.raises(FileExistsError, match="is a file"):
        check_output_dir(tmp_path / "f", overwrite=True, argument="save_dir")
    assert (tmp_path / "f").read_text() == "data"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_parent_is_refused_before_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            check_output_dir(locked / "model", argument="output")
        with pytest.raises(PermissionError, match="`json`="):
            check_output_file(locked / "r.json")
    finally:
        locked.chmod(0o700)


def test_error_inside_leaves_previous_content(tmp_path):
    folder = tmp_path / "model"
    with atomic_dir(folder) as staging:
        Path(staging, "v1").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(folder, overwrite=True) as staging:
            Path(staging, "v2").write_text("2")
            raise RuntimeError("crash while saving")
    assert sorted(p.name for p in folder.iterdir()) == ["v1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_folder_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as staging:
            Path(staging, "a").write_text("1")
        atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


def test_killed_save_leftover_is_cleaned_at_next_save(tmp_path):
    folder = tmp_path / "model"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from compress_utils.io import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as staging:\n"
        "    Path(staging, 'half.bin').write_text('x')\n"
        "    os._exit(9)\n"  # killed mid-save: no cleanup runs
    )
    subprocess.run([sys.executable, "-c", script, str(folder)], check=False)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".model.partial-")]
    assert len(leftovers) == 1 and not folder.exists()
    with atomic_dir(folder) as staging:
        Path(staging, "full.bin").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert clean_leftovers(folder) == []


def test_previous_content_caught_mid_swap_is_restored(tmp_path):
    folder = tmp_path / "model"
    old = tmp_path / ".model.old-999999999-abc"  # a pid that cannot be running
    old.mkdir()
    (old / "weights").write_text("old")
    clean_leftovers(folder)
    assert (folder / "weights").read_text() == "old"


def test_save_pretrained_atomic(tmp_path):
    class Savable:
        def __init__(self, name):
            self.name = name

        def save_pretrained(self, folder):
            Path(folder, self.name).write_text(self.name)

    out = save_pretrained_atomic(tmp_path / "m", Savable("model"), Savable("tokenizer"))
    assert sorted(os.listdir(out)) == ["model", "tokenizer"]
    with pytest.raises(FileExistsError, match="`save_dir`="):
        save_pretrained_atomic(tmp_path / "m", Savable("other"))
    assert sorted(os.listdir(out)) == ["model", "tokenizer"]


def test_remove_trainer_checkpoints_keeps_everything_else(tmp_path):
    from compress_utils.io import remove_trainer_checkpoints

    folder = tmp_path / "checkpoints"
    for step in (4, 8):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-notes").mkdir()  # not a Trainer checkpoint: a name alone is not enough
    (folder / "checkpoint-12").mkdir()  # no trainer_state.json: not ours to judge
    (folder / "mine.txt").write_text("a user's file")
    removed = remove_trainer_checkpoints(folder)
    assert [path.name for path in removed] == ["checkpoint-4", "checkpoint-8"]
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoint-12", "checkpoint-notes", "mine.txt"]
    only = tmp_path / "only"
    (only / "checkpoint-1").mkdir(parents=True)
    (only / "checkpoint-1" / "trainer_state.json").write_text("{}")
    assert remove_trainer_checkpoints(only)[-1] == only and not only.exists()
    assert remove_trainer_checkpoints(tmp_path / "missing") == []
