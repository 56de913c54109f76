"""``bf16=None`` (the default) of the XTC recipe and teacher resolves by the capability probe and is recorded."""

import dataclasses

import pytest

from benchmarks.xtc_teacher import TeacherSettings
from compress_utils import capability
from xtc_hf.recipe import XTCRecipeConfig


@pytest.fixture
def machine(monkeypatch):
    """Pretend the probe measured the given seconds per product (fp32, bf16)."""

    def set_machine(fp32, bf16):
        monkeypatch.setattr(capability, "_CACHE", {})
        monkeypatch.setattr(capability, "_time_products", lambda device: {"fp32": fp32, "bf16": bf16, "int8": None})

    return set_machine


@pytest.mark.parametrize(("bf16_seconds", "expected"), [(3.9, False), (0.007, True)])
def test_recipe_and_teacher_default_to_the_probe(machine, bf16_seconds, expected):
    machine(fp32=0.05, bf16=bf16_seconds)  # AVX2: bf16 80x slower; AVX-512 BF16: 7x faster
    recipe, teacher = XTCRecipeConfig(), TeacherSettings(steps=5)
    assert recipe.bf16 is expected and teacher.bf16 is expected
    # the resolved value (not "auto") is what the stage reports, cache keys and xtc_teacher.json record
    assert dataclasses.asdict(teacher)["bf16"] is expected


def test_explicit_bf16_is_kept_and_changes_the_teacher_key(machine):
    machine(fp32=0.05, bf16=3.9)
    assert XTCRecipeConfig(bf16=True).bf16 is True
    assert TeacherSettings(steps=5, bf16=True).key() != TeacherSettings(steps=5).key()


def test_bad_bf16_is_refused(machine):
    machine(fp32=0.05, bf16=3.9)
    with pytest.raises(ValueError, match="`bf16` must be True, False, None or 'auto', got 'on'"):
        XTCRecipeConfig(bf16="on")
