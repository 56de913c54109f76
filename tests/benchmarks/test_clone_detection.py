"""Tests for benchmarks.clone_detection: source discovery, splitting, extraction, rewrites and the clone dataset."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import clone_detection as data
from benchmarks.clone_detection import (
    SPLITS,
    build_clone_dataset,
    extract_functions,
    iter_source_files,
    make_clone,
    reformat,
    rename_function,
    rename_identifiers,
    split_of,
    stdlib_source_dir,
)

SEEDS = range(12)

# Hand-written functions that exercise scoping corner cases, with the positional calls used to
# compare behaviour before and after a rewrite. COUNTER and OFFSET are module globals.
BEHAVIOUR_CASES = {
    "loop": (
        '''
        def total_above(values, limit):
            """Sum the values above limit."""
            total = 0  # running sum
            for value in values:
                if value > limit:
                    total += value
                else:
                    total -= 1
            return total
        ''',
        [([1, 5, 7], 4), ([], 0), ([3, 3], 3)],
    ),
    "closure_nonlocal": (
        """
        def make_counter(start, step):
            count = start

            def bump():
                nonlocal count
                count += step
                return count
            return [bump(), bump(), bump()]
        """,
        [(0, 1), (10, -3)],
    ),
    "global_declared": (
        """
        def bump_global(amount):
            global COUNTER
            before = COUNTER
            COUNTER = COUNTER + amount
            return before, COUNTER, OFFSET
        """,
        [(2,), (5,)],
    ),
    "comprehension_walrus": (
        """
        def squares(items, x):
            doubled = [x * 2 for x in items]
            kept = [y for v in items if (y := v * x) > 2]
            pairs = {k: v for k, v in zip(items, doubled)}
            return doubled, kept, pairs, x, y if kept else None
        """,
        [([1, 2, 3], 2), ([0], 1)],
    ),
    "keywords_and_kwonly": (
        """
        def scaled(data, factor, *, step=1):
            def inner(value, factor=2, *, shift=0):
                return value * factor + step + shift
            result = [inner(item, factor=factor, shift=data[0]) for item in data]
            return sorted(result, key=lambda item: -item, reverse=False)
        """,
        [([3, 1, 2], 2), ([5], -1)],
    ),
    "try_except_with": (
        """
        def safe_ratio(numerator, denominator):
            import contextlib
            try:
                ratio = numerator / denominator
            except ZeroDivisionError as error:
                ratio = type(error).__name__
            finally:
                done = True
            with contextlib.suppress(KeyError) as ctx:
                table = {}
                table[numerator]
            return ratio, done, ctx is None
        """,
        [(1, 2), (3, 0)],
    ),
    "nested_class": (
        """
        def make_box(size, label):
            tag = label.upper()

            class Box:
                size = 3
                def describe(self):
                    return f'{tag}:{self.size}'
            box = Box()
            box.size = size
            return box.describe(), Box.size
        """,
        [(7, "a"), (0, "Zz")],
    ),
    "generator_varargs": (
        """
        def chunks(*parts, **options):
            width = options.get('width', 2)
            for part in parts:
                if not part:
                    return
                yield part[:width]
        """,
        [("abc", "de", "", "fg"), ("xyz",)],
    ),
    "ternary_quotes": (
        """
        def classify(number, name):
            kind = 'even' if number % 2 == 0 else 'odd'
            if number < 0:
                sign = "negative"
            elif number == 0:
                sign = 'zero'
            else:
                sign = 'positive'
            return f"{name}: {kind} {sign}", 'it\\'s', "say \\"hi\\"", r'\\d+', b'raw'
        """,
        [(3, "n"), (-4, "m"), (0, "z")],
    ),
    "introspection": (
        """
        def report(first, second):
            local_total = first + second
            return sorted(locals())
        """,
        [(1, 2)],
    ),
    "shadowed_builtin_and_del": (
        """
        def collect(dir, limit):
            names = [dir + str(i) for i in range(limit)]
            extra = names.pop() if names else None
            del extra
            try:
                return names, extra
            except UnboundLocalError:
                return names, dir
        """,
        [("d", 3), ("x", 0)],
    ),
    "match_statement": (
        """
        def describe(point, scale):
            match point:
                case (0, y):
                    result = ('axis', y * scale)
                case [x, y, *rest]:
                    result = ('many', x, y, rest)
                case {'x': x, **others}:
                    result = ('map', x, others)
                case _:
                    result = None
            return result
        """,
        [((0, 5), 2), ((1, 2, 3), 1), ({"x": 1, "y": 2}, 3), ("other", 1)],
    ),
    "recursion": (
        """
        def fact(n):
            if n < 2:
                return 1
            return n * fact(n - 1)
        """,
        [(0,), (5,)],
    ),
}

TRANSFORMS = {
    "rename_identifiers": rename_identifiers,
    "reformat": reformat,
    "rename_function": rename_function,
    "make_clone": make_clone,
}


def _function_name(code: str) -> str:
    return next(node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef))


def _outcomes(code: str, calls: list[tuple]) -> list:
    """Run the function defined by ``code`` on each call; record results, global state and errors."""
    namespace = {"COUNTER": 10, "OFFSET": 1}
    exec(compile(code, "<snippet>", "exec"), namespace)
    function = namespace[_function_name(code)]
    outcomes = []
    for args in calls:
        try:
            result = function(*args)
            if hasattr(result, "__next__"):
                result = list(result)
            outcomes.append(("ok", result, namespace["COUNTER"]))
        except Exception as error:  # the rewrite must fail the same way, too
            outcomes.append(("error", type(error).__name__))
    return outcomes


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("case", sorted(BEHAVIOUR_CASES))
def test_transforms_preserve_behaviour(case, transform):
    source, calls = BEHAVIOUR_CASES[case]
    code = textwrap.dedent(source).strip()
    expected = _outcomes(code, calls)
    for seed in SEEDS:
        rewritten = TRANSFORMS[transform](code, random.Random(seed))
        ast.parse(rewritten)
        assert _outcomes(rewritten, calls) == expected, (seed, rewritten)


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_transforms_are_deterministic(transform):
    code = textwrap.dedent(BEHAVIOUR_CASES["loop"][0]).strip()
    first = [TRANSFORMS[transform](code, random.Random(seed)) for seed in SEEDS]
    second = [TRANSFORMS[transform](code, random.Random(seed)) for seed in SEEDS]
    assert first == second
    assert len(set(first)) > 1  # the rng actually matters


def test_rename_identifiers_renames_locals_only():
    code = textwrap.dedent(
        """
        def update(record, items, *, strict=False):
            global REGISTRY
            size = len(items)
            record.size = size
            REGISTRY = sorted(items, key=str, reverse=strict)
            return record.size + size
        """
    ).strip()
    renamed = rename_identifiers(code, random.Random(0))
    tree = ast.parse(renamed)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    params = {arg.arg for arg in ast.walk(tree) if isinstance(arg, ast.arg)}
    assert not {"record", "items", "size"} & (names | params)  # locals and parameters renamed
    assert {"REGISTRY", "len", "sorted", "str"} <= names  # globals and builtins kept
    assert "strict" in params  # keyword-only parameters are part of the interface
    assert {"size"} == {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert {"key", "reverse"} == {node.arg for node in ast.walk(tree) if isinstance(node, ast.keyword)}
    assert renamed.startswith("def update(")


def test_rename_identifiers_keeps_self_and_introspective_functions():
    method = "def get(self, key):\n    value = self.table[key]\n    return value"
    assert rename_identifiers(method, random.Random(0)).startswith("def get(self, ")
    introspective = textwrap.dedent(BEHAVIOUR_CASES["introspection"][0]).strip()
    assert "local_total" in rename_identifiers(introspective, random.Random(0))


def test_rename_function_follows_self_references_but_not_super():
    code = textwrap.dedent(
        """
        def walk(self, node):
            for child in node.children:
                self.walk(child)
            return super().walk(node)
        """
    ).strip()
    renamed = rename_function(code, random.Random(0))
    new_name = _function_name(renamed)
    assert new_name != "walk"
    assert f"self.{new_name}(child)" in renamed
    assert "super().walk(node)" in renamed


def test_reformat_changes_layout_only():
    code = textwrap.dedent(BEHAVIOUR_CASES["loop"][0]).strip()
    outputs = [reformat(code, random.Random(seed)) for seed in range(30)]
    assert all("#" not in output for output in outputs)  # comments always go
    assert any('"""' not in output for output in outputs)  # docstring sometimes dropped
    assert any("if not value > limit" in output for output in outputs)  # if/else sometimes inverted
    assert any(output.rstrip().endswith("return total") for output in outputs)
    quotes = textwrap.dedent(BEHAVIOUR_CASES["ternary_quotes"][0]).strip()
    assert any('"even"' in reformat(quotes, random.Random(seed)) for seed in range(10))


def test_stdlib_source_dir_holds_the_stdlib():
    root = stdlib_source_dir()
    assert (root / "os.py").is_file()
    assert root / "os.py" in iter_source_files(root)


def test_iter_source_files_skips_tests_packages_and_non_utf8(tmp_path):
    for relative in [
        "b.py",
        "a.py",
        "pkg/c.py",
        "test/t.py",
        "pkg/tests/t.py",
        "site-packages/s.py",
        "idlelib/i.py",
        "lib2to3/l.py",
        "notes.txt",
    ]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "latin.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    found = [path.relative_to(tmp_path).as_posix() for path in iter_source_files(tmp_path)]
    assert found == ["a.py", "b.py", "pkg/c.py"]
    assert [path.name for path in iter_source_files(tmp_path, suffix=".txt")] == ["notes.txt"]


def test_iter_source_files_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="root="):
        iter_source_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="suffix="):
        iter_source_files(tmp_path, suffix="py")


def test_split_of_is_stable_and_roughly_80_10_10():
    # Pinned values: a change of hash or bounds would silently reshuffle every split.
    assert split_of("/r/os.py", "/r") == "test"
    assert split_of("/r/mod_0.py", "/r") == "train"
    assert split_of(Path("/a/os.py"), Path("/a")) == split_of("/b/os.py", "/b")
    counts = Counter(split_of(f"/r/pkg{i // 50}/m{i}.py", "/r") for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.8) < 0.015
    assert abs(counts["valid"] / 20000 - 0.1) < 0.015
    assert abs(counts["test"] / 20000 - 0.1) < 0.015
    with pytest.raises(ValueError, match="path="):
        split_of("/elsewhere/x.py", "/r")


def test_extract_functions_returns_top_level_functions_and_methods():
    source = textwrap.dedent(
        '''
        import os

        def short(x):
            return x

        def outer(a, b):
            """Docstring."""
            def nested(c):
                return c + 1
            return nested(a) + b

        class Thing:
            @property
            def area(self):
                width = self.width
                height = self.height
                return width * height

            class Inner:
                async def fetch(self, url):
                    data = await get(url)
                    # comment
                    return data

        if os.name:
            def conditional(value):
                value += 1
                value *= 2
                return value
        '''
    )
    functions = extract_functions(source)
    assert [_function_name(code) if code.startswith("def") else code.split("(")[0] for code in functions] == [
        "outer",
        "area",
        "async def fetch",
        "conditional",
    ]
    assert (
        functions[1] == "def area(self):\n    width = self.width\n    height = self.height\n    return width * height"
    )
    assert all(ast.parse(code) for code in functions)
    assert extract_functions(source, min_lines=1, max_lines=2) == ["def short(x):\n    return x"]


def test_extract_functions_handles_crlf_and_non_ascii():
    source = "class K:\r\n    def f(self):\r\n        s = 'é'\r\n        return s + 'ü'  # trailing\r\n"
    assert extract_functions(source, min_lines=3) == ["def f(self):\n    s = 'é'\n    return s + 'ü'"]


def test_extract_functions_rejects_bad_bounds():
    with pytest.raises(ValueError, match="min_lines=0"):
        extract_functions("", min_lines=0)
    with pytest.raises(ValueError, match="max_lines=2"):
        extract_functions("", min_lines=3, max_lines=2)


# Self-contained functions with one shared signature, so dataset positives can be executed.
TEMPLATES = [
    """
    def {name}(values, limit):
        total = {k}
        for value in values:
            if value > limit:
                total += value
        return total
    """,
    """
    def {name}(values, limit):
        '''Keep the small values.'''
        kept = []
        for value in values:
            if value <= limit + {k}:
                kept.append(value)
        return kept
    """,
    """
    def {name}(values, limit):
        counts = {{}}
        for value in values:
            key = value % (limit + {k})
            counts[key] = counts.get(key, 0) + 1
        return sorted(counts.items())
    """,
    """
    def {name}(values, limit):
        best = None
        for index, value in enumerate(values):
            if best is None or value * {k} > best[1]:
                best = (index, value * {k})
        return best if best and best[1] > limit else None
    """,
    """
    def {name}(values, limit):
        text = ','.join(str(value) for value in values)
        if len(text) > limit:
            text = text[:limit] + '...'
        return text + '{k}'
    """,
    """
    def {name}(values, limit):
        window = []
        means = []
        for value in values:
            window.append(value)
            if len(window) > {k}:
                window.pop(0)
            means.append(sum(window) / len(window))
        return [mean for mean in means if mean < limit]
    """,
]
CALLS = [([1, 5, 9, 2], 3), ([], 0), ([4, 4, 8], 10)]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A small source tree with at least three files in each split."""
    root = tmp_path_factory.mktemp("tiny_src")
    per_split: Counter[str] = Counter()
    index = 0
    while min(per_split[split] for split in SPLITS) < 3:
        relative = f"pkg{index % 3}/mod_{index}.py"
        split = split_of(root / relative, root)
        if per_split[split] < 6:
            per_split[split] += 1
            body = "\n".join(
                textwrap.dedent(template).format(name=f"f{number}_{index}", k=index * 10 + number)
                for number, template in enumerate(TEMPLATES)
            )
            (root / relative).parent.mkdir(exist_ok=True)
            (root / relative).write_text(f"# generated\nLIMIT = {index}\n{body}", encoding="utf-8")
        index += 1
    (root / "test").mkdir()
    (root / "test" / "ignored.py").write_text(textwrap.dedent(TEMPLATES[0]).format(name="t", k=0))
    return root


TINY_LIMITS = {"train": 24, "valid": 8, "test": 9}


@pytest.fixture(scope="module")
def tiny_dataset(tiny_root):
    return build_clone_dataset(tiny_root, seed=0, max_pairs_per_split=TINY_LIMITS)


def test_tiny_dataset_shape_and_balance(tiny_dataset):
    assert list(tiny_dataset) == list(SPLITS)
    for split in SPLITS:
        ds = tiny_dataset[split]
        assert ds.column_names == ["code1", "code2", "label", "source"]
        assert ds.features["label"].names == ["not_clone", "clone"]
        expected = TINY_LIMITS[split] // 2 * 2  # odd caps round down to stay balanced
        assert ds.num_rows == expected
        assert Counter(ds["label"]) == {0: expected // 2, 1: expected // 2}
        assert all(type(label) is int for label in ds["label"])


def test_tiny_dataset_rows_are_valid_pairs(tiny_root, tiny_dataset):
    for split in SPLITS:
        for row in tiny_dataset[split]:
            assert split_of(tiny_root / row["source"], tiny_root) == split
            assert not row["source"].startswith("test/")
            code1, code2 = row["code1"], row["code2"]
            assert code1 != code2
            assert code1.startswith("def ") and ast.parse(code2)
            assert _function_name(code1) != _function_name(code2)  # names are hidden
            if row["label"] == 1:
                assert _outcomes(code1, CALLS) == _outcomes(code2, CALLS)
            else:
                assert data._fingerprint(ast.parse(code1)) != data._fingerprint(ast.parse(code2))


def test_tiny_dataset_splits_share_no_sources_or_functions(tiny_dataset):
    sources = {split: set(tiny_dataset[split]["source"]) for split in SPLITS}
    anchors = {split: set(tiny_dataset[split]["code1"]) for split in SPLITS}
    for first, second in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not sources[first] & sources[second]
        assert not anchors[first] & anchors[second]
    # every function is code1 at most once, so clones and non-clones never share an anchor
    assert all(len(anchors[split]) == tiny_dataset[split].num_rows for split in SPLITS)


def test_tiny_dataset_is_deterministic(tiny_root, tiny_dataset):
    again = build_clone_dataset(tiny_root, seed=0, max_pairs_per_split=TINY_LIMITS)
    other = build_clone_dataset(tiny_root, seed=1, max_pairs_per_split=TINY_LIMITS)
    for split in SPLITS:
        assert again[split].to_dict() == tiny_dataset[split].to_dict()
    assert other["train"].to_dict() != tiny_dataset["train"].to_dict()


def test_tiny_dataset_is_identical_across_processes(tiny_root, tiny_dataset):
    # Different hash seeds catch any reliance on set or dict-of-str iteration order.
    script = (
        "import hashlib, json, sys\n"
        "from benchmarks.clone_detection import build_clone_dataset\n"
        f"ds = build_clone_dataset(sys.argv[1], seed=0, max_pairs_per_split={TINY_LIMITS!r})\n"
        "rows = {split: ds[split].to_dict() for split in ds}\n"
        "print(hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest())\n"
    )
    rows = {split: tiny_dataset[split].to_dict() for split in tiny_dataset}
    expected = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    # This process runs with a random hash seed, the child with a fixed one.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tiny_root)], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected


def test_code_repeated_across_files_stays_in_the_earliest_split(tmp_path):
    # The same function (up to local names) in a train file and in a test file: the test copy
    # must go, or a model could score by memorising training code.
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    index = 0
    while not by_split["train"] or not by_split["test"]:
        by_split[split_of(tmp_path / f"m{index}.py", tmp_path)].append(f"m{index}.py")
        index += 1
    train_file, test_file = by_split["train"][0], by_split["test"][0]
    functions = [textwrap.dedent(template).format(name=f"f{i}", k=i) for i, template in enumerate(TEMPLATES)]
    (tmp_path / train_file).write_text("\n".join(functions), encoding="utf-8")
    copy = rename_identifiers(functions[0].replace("def f0(", "def copied("), random.Random(0))
    others = [textwrap.dedent(template).format(name=f"g{i}", k=i + 50) for i, template in enumerate(TEMPLATES)]
    (tmp_path / test_file).write_text("\n\n".join([copy, *others]), encoding="utf-8")
    ds = build_clone_dataset(tmp_path, max_pairs_per_split={"train": 100, "valid": 0, "test": 100})
    test_names = {_function_name(code) for code in ds["test"]["code1"]}
    assert test_names and "copied" not in test_names
    assert {_function_name(code) for code in ds["train"]["code1"]} == {f"f{i}" for i in range(len(TEMPLATES))}


def test_build_clone_dataset_options_and_logging(tiny_root, caplog):
    with caplog.at_level(logging.INFO, logger="benchmarks.clone_detection"):
        ds = build_clone_dataset(
            tiny_root, max_pairs_per_split={"train": 7, "valid": 0, "test": 2}, rename_functions=False
        )
    assert [ds[split].num_rows for split in SPLITS] == [6, 0, 2]
    assert ds["valid"].column_names == ["code1", "code2", "label", "source"]
    assert "train: 6 pairs (3 clones, 3 non-clones)" in caplog.text
    for row in ds["train"]:
        same_name = _function_name(row["code1"]) == _function_name(row["code2"])
        assert same_name == (row["label"] == 1)


def test_build_clone_dataset_rejects_bad_arguments(tmp_path, tiny_root):
    with pytest.raises(ValueError, match=r"max_pairs_per_split has unknown split name\(s\) \['validation'\]"):
        build_clone_dataset(tiny_root, max_pairs_per_split={"validation": 10})
    with pytest.raises(ValueError, match=r"max_pairs_per_split\['test'\]=-1"):
        build_clone_dataset(tiny_root, max_pairs_per_split={"test": -1})
    with pytest.raises(ValueError, match=r"max_pairs_per_split\['train'\]=2.5"):
        build_clone_dataset(tiny_root, max_pairs_per_split={"train": 2.5})
    (tmp_path / "readme.txt").write_text("no code here")
    with pytest.raises(ValueError, match="holds no .py files"):
        build_clone_dataset(tmp_path)
    (tmp_path / "tiny.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="has no functions of 4-60 lines"):
        build_clone_dataset(tmp_path)
    with pytest.raises(ValueError, match="is not a directory"):
        build_clone_dataset(tmp_path / "missing")


def test_build_clone_dataset_on_the_real_stdlib():
    limits = dict.fromkeys(SPLITS, 50)
    first = build_clone_dataset(seed=3, max_pairs_per_split=limits)
    second = build_clone_dataset(seed=3, max_pairs_per_split=limits)
    fingerprints = {}
    for split in SPLITS:
        assert first[split].to_dict() == second[split].to_dict()
        assert Counter(first[split]["label"]) == {0: 25, 1: 25}
        fingerprints[split] = {data._fingerprint(ast.parse(code))[1] for code in first[split]["code1"]}
    sources = {split: set(first[split]["source"]) for split in SPLITS}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not sources[a] & sources[b]
        assert not fingerprints[a] & fingerprints[b]


def test_installed_packages_add_functions_split_by_their_path(tmp_path):
    from compress_utils.corpus import split_of

    (tmp_path / "one.py").write_text("def only(a):\n    b = a + 1\n    c = b * 2\n    return c\n")
    ds = build_clone_dataset(tmp_path, max_pairs_per_split={"train": 40, "valid": 10, "test": 10}, packages=("json",))
    sources = {source for split in ds.values() for source in split["source"]}
    assert sources and all(source == "one.py" or source.startswith("json/") for source in sources)
    for split, rows in ds.items():  # a package's files keep the split they have in the standard library
        assert all(split_of(source) == split for source in rows["source"] if source.startswith("json/"))
    with pytest.raises(ValueError, match="no_such_package"):
        build_clone_dataset(tmp_path, packages=("no_such_package",))
