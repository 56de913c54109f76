"""glibc allocator settings for CPU training: detection, the child environment, the one-time hint, the Makefile."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compress_utils import allocator
from compress_utils.allocator import MALLOC_TUNABLES, allocator_hint, allocator_tuned, tuned_environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def glibc(monkeypatch):
    monkeypatch.setattr(allocator, "is_glibc", lambda: True)
    monkeypatch.setattr(allocator, "_hinted", False)


def test_tuned_means_every_setting_is_there(glibc):
    assert allocator_tuned({"GLIBC_TUNABLES": MALLOC_TUNABLES})
    assert not allocator_tuned({})
    assert not allocator_tuned({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"})  # part of them only


def test_nothing_to_tune_off_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "is_glibc", lambda: False)
    assert allocator_tuned({})


def test_the_child_environment_keeps_other_settings_and_replaces_ours(glibc):
    env = tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0:glibc.cpu.x86_shstk=off", "HOME": "/h"})
    assert env["HOME"] == "/h" and allocator_tuned(env)
    items = env["GLIBC_TUNABLES"].split(":")
    assert "glibc.cpu.x86_shstk=off" in items and "glibc.malloc.hugetlb=0" not in items


def test_the_hint_names_the_setting_once_and_only_for_a_cpu(glibc, monkeypatch, caplog):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with caplog.at_level(logging.WARNING, logger="compress_utils.allocator"):
        assert not allocator_hint("cuda:0")
        assert allocator_hint("cpu")
        assert not allocator_hint("cpu")  # once per process
    assert len(caplog.records) == 1 and MALLOC_TUNABLES in caplog.text
    monkeypatch.setattr(allocator, "_hinted", False)
    monkeypatch.setenv("GLIBC_TUNABLES", MALLOC_TUNABLES)
    assert not allocator_hint("cpu")


def test_make_exports_the_value_spelled_in_the_module():
    # the Makefile reads the value from compress_utils/allocator.py with sed: the line must keep its form
    assert re.search(r'^MALLOC_TUNABLES = "[^"]+"$', (ROOT / "compress_utils" / "allocator.py").read_text(), re.M)
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "MAKEFLAGS", "MAKELEVEL")}
    makefile = 'include Makefile\nshow-tunables:\n\t@echo "$$GLIBC_TUNABLES"\n'
    shown = subprocess.run(["make", "-s", "-f", "-", "show-tunables"], input=makefile, cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert shown.stdout.strip() == MALLOC_TUNABLES


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is Linux's")
def test_a_process_started_with_the_setting_counts_as_tuned():
    code = "from compress_utils.allocator import allocator_tuned; print(allocator_tuned())"
    out = subprocess.run([sys.executable, "-c", code], env=tuned_environment(), capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "True"
