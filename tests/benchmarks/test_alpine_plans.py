"""ALPINE plans by name: the named modes and explicit plans of layers and per-layer alphas, as the fine-tuning and
inference benchmarks read them."""

import pytest

from benchmarks.alpine_plans import ALL_MODES, PLAN_EXAMPLE, AlpinePlan, mode_folder, parse_mode

# -- plan strings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "plan"),
    [
        ("all", AlpinePlan("all", True, None)),
        ("odd-nomerge", AlpinePlan("odd", False, None)),
        ("layers=1,2,3,4,5", AlpinePlan([1, 2, 3, 4, 5])),
        ("layers=1-5", AlpinePlan([1, 2, 3, 4, 5])),
        ("layers=0,2,4-5;merge=off", AlpinePlan([0, 2, 4, 5], merge=False)),
        ("layers=1-5;alpha=1.5,1.5,1,1,0.5,0.5", AlpinePlan([1, 2, 3, 4, 5], alpha=[1.5, 1.5, 1.0, 1.0, 0.5, 0.5])),
        ("layers=3;alpha=0.5", AlpinePlan([3], alpha=0.5)),
        (" layers = even ; merge = on ", AlpinePlan("even", True)),
        ("layers=none", AlpinePlan("none")),
    ],
)
def test_parse_mode_reads_named_modes_and_plans(mode, plan):
    assert parse_mode(mode) == plan


def test_named_modes_are_unchanged():
    layers = {"none": "none", "all": "all", "even": "even", "odd": "odd"}
    for mode in ALL_MODES:
        name, _, suffix = mode.partition("-")
        assert parse_mode(mode) == AlpinePlan(layers[name], suffix != "nomerge", None)
        assert mode_folder(mode) == mode  # checkpoints of earlier runs are found again


BAD_PLANS = {
    "unknown name": ("middle", r"`mode='middle'` is not one of .*none.* nor a plan; write a plan as"),
    "named mode, bad suffix": ("all-merge", r"`mode='all-merge'` is not one of"),
    "no layers": ("alpha=0.5", r"does not say which layers prune \(layers=\.\.\.\); write a plan as"),
    "reversed range": ("layers=5-1", r"has the empty range '5-1' in layers='5-1'; write it as 1-5"),
    "repeated layer": (
        "layers=1-3,2",
        r"names layer\(s\) \[2\] more than once in layers='1-3,2'; list each layer once",
    ),
    "not an index": ("layers=1,x", r"'x' is neither a layer index nor a range a-b"),
    "negative index": ("layers=-1", r"'-1' is neither a layer index nor a range a-b"),
    "alpha zero": ("layers=1;alpha=1,0", r"alpha='1,0': `alpha` holds 0.0 for layer 1.*number > 0"),
    "alpha negative": ("layers=1;alpha=-2", r"alpha='-2': `alpha` must be a number > 0"),
    "alpha not numbers": ("layers=1;alpha=wide", r"has alpha='wide', which is not comma-separated numbers"),
    "merge word": ("layers=1;merge=maybe", r"has merge='maybe'; use merge=on or merge=off"),
    "key twice": ("layers=1;layers=2", r"sets `layers` twice"),
    "unknown key": ("layers=1;depth=2", r"has 'depth=2', which is not a setting key=value with a key of"),
    "empty value": ("layers=", r"has 'layers=', which is not a setting key=value"),
}


@pytest.mark.parametrize("case", list(BAD_PLANS))
def test_bad_plans_name_the_value_and_the_syntax(case):
    mode, message = BAD_PLANS[case]
    with pytest.raises(ValueError, match=message) as error:
        parse_mode(mode)
    assert f"e.g. {PLAN_EXAMPLE!r}" in str(error.value)  # every error shows the syntax by example


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("layers=1-6", r"`mode='layers=1-6'` does not fit the 6-layer model: `alpine_layers` holds 6.*\[0, 5\]"),
        ("layers=1;alpha=1,1", r"`mode='layers=1;alpha=1,1'` does not fit .*`alpha` needs one .* \(6 values .*got 2"),
    ],
)
def test_plans_are_checked_against_the_model(mode, message):
    with pytest.raises(ValueError, match=message):
        parse_mode(mode).check(6, mode)
    parse_mode("layers=0-5;alpha=1,1,1,1,1,0.5").check(6, "ok")
