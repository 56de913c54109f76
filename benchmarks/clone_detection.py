"""Clone-detection data (CodeXGLUE BigCloneBench style) built from the standard library.

Each example is a pair of Python functions and a binary label: ``1`` when ``code2`` is a
semantics-preserving rewrite of ``code1`` (locals renamed, layout changed), ``0`` when it
is a different function of similar length. Everything is derived from the ``.py`` files of
the running interpreter, so the task needs no download and is identical on every machine
with the same Python version.

Example:
    >>> from benchmarks.clone_detection import build_clone_dataset
    >>> ds = build_clone_dataset(max_pairs_per_split={"train": 100, "valid": 20, "test": 20})
    >>> sorted(ds)
    ['test', 'train', 'valid']
    >>> ds["train"].column_names
    ['code1', 'code2', 'label', 'source']
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import hashlib
import io
import keyword
import logging
import math
import os
import random
import textwrap
import time
import tokenize
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import datasets

from compress_utils.corpus import SPLITS, package_source_dir, split_of, stdlib_source_dir
from compress_utils.corpus import source_files as iter_source_files

__all__ = [
    "DEFAULT_MAX_PAIRS",
    "SPLITS",
    "build_clone_dataset",
    "extract_functions",
    "iter_source_files",
    "make_clone",
    "reformat",
    "rename_function",
    "rename_identifiers",
    "split_of",
    "stdlib_source_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAIRS: Mapping[str, int] = MappingProxyType({"train": 4000, "valid": 500, "test": 1000})

# Negatives must be this close in line count so that length alone does not give the label away.
_LENGTH_TOLERANCE = 0.25

_FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSION_TYPES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# Code that can observe local names by string; renaming would change what it sees.
_INTROSPECTIVE_NAMES = frozenset({"locals", "vars", "eval", "exec", "dir"})
_INTROSPECTIVE_ATTRS = frozenset({"f_locals", "_getframe", "currentframe"})
# Renaming these is legal but makes the rewrite look machine-made.
_CONVENTIONAL_NAMES = frozenset({"self", "cls"})
_RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)

_VARIABLE_WORDS = (
    "acc", "arg", "buf", "chunk", "count", "current", "data", "elem", "entry", "field", "flag",
    "idx", "info", "item", "key", "label", "line", "node", "obj", "offset", "out", "part", "pos",
    "record", "res", "result", "size", "src", "state", "target", "temp", "text", "tmp", "token",
    "val", "value", "width",
)  # fmt: skip
_VERB_WORDS = (
    "build", "check", "collect", "compute", "convert", "emit", "fetch", "handle", "load", "make",
    "parse", "process", "read", "render", "resolve", "run", "scan", "update", "visit", "write",
)  # fmt: skip
_NOUN_WORDS = (
    "block", "buffer", "chunk", "config", "data", "entry", "event", "field", "header", "item",
    "list", "message", "node", "options", "record", "request", "result", "state", "table", "value",
)  # fmt: skip

_FEATURES = datasets.Features(
    {
        "code1": datasets.Value("string"),
        "code2": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["not_clone", "clone"]),
        "source": datasets.Value("string"),
    }
)


def extract_functions(source: str, min_lines: int = 4, max_lines: int = 60) -> list[str]:
    """Return the module-level functions and methods of ``source`` as dedented source text.

    Functions nested inside other functions stay part of their parent. Functions shorter
    than ``min_lines`` or longer than ``max_lines`` (decorators not counted) are skipped.

    Example:
        >>> src = "class A:\\n    def f(self, x):\\n        y = x + 1\\n        return y\\n"
        >>> extract_functions(src, min_lines=3)
        ['def f(self, x):\\n    y = x + 1\\n    return y']
    """
    return [code for code, _ in _extract(source, min_lines, max_lines)]


def rename_identifiers(code: str, rng: random.Random) -> str:
    """Consistently rename the local variables and parameters of every function in ``code``.

    Left alone: attributes, globals and builtins, names declared ``global``/``nonlocal``,
    keyword-argument names at call sites, keyword-only parameters, imports, nested function
    and class names, names used inside nested classes, and ``self``/``cls``. Functions that
    call ``locals()``, ``eval`` and similar are not renamed at all. The result (via
    :func:`ast.unparse`) behaves identically when called with positional arguments.

    Example:
        >>> code = "def f(a, b):\\n    total = a + b\\n    return total"
        >>> renamed = rename_identifiers(code, random.Random(0))
        >>> renamed.startswith("def f("), "total" in renamed
        (True, False)
        >>> namespace = {}
        >>> exec(renamed, namespace)
        >>> namespace["f"](2, 3)
        5
    """
    tree = ast.parse(code)
    _rename_locals(tree, rng, _identifiers(tree) | _RESERVED)
    return ast.unparse(tree)


def rename_function(code: str, rng: random.Random) -> str:
    """Give every module-level function in ``code`` a fresh name, updating references to it.

    Recursive calls (``f(...)``) and self-references through the first parameter
    (``self.f(...)``) follow the rename; ``super().f(...)`` does not, since it names the
    parent's method. Used so that a model cannot detect clones by comparing function names.

    Example:
        >>> code = "def fact(n):\\n    return 1 if n < 2 else n * fact(n - 1)"
        >>> renamed = rename_function(code, random.Random(0))
        >>> "fact" in renamed
        False
        >>> namespace = {}
        >>> exec(renamed, namespace)
        >>> [function(5) for name, function in namespace.items() if name != "__builtins__"]
        [120]
    """
    tree = ast.parse(code)
    _rename_functions(tree, rng, _identifiers(tree) | _RESERVED)
    return ast.unparse(tree)


def reformat(code: str, rng: random.Random) -> str:
    """Change the layout of ``code`` without changing what it does.

    Always normalises through :func:`ast.unparse` (comments and original line breaks go);
    then, each at random: drops docstrings, inverts ``if``/``else`` and ``x if c else y``
    (``if c: A else: B`` becomes ``if not c: B else: A``), adds or drops a redundant trailing
    ``return``, and switches string quotes to double quotes where no escaping is involved.
    Augmented assignments are deliberately kept: ``x += y`` mutates lists in place while
    ``x = x + y`` rebinds, so swapping them is not semantics-preserving.

    Example:
        >>> code = "def f(x):\\n    'Doc.'\\n    return 'a' if x else 'b'  # pick"
        >>> [reformat(code, random.Random(seed)).count("#") for seed in range(3)]
        [0, 0, 0]
    """
    return _reformat_tree(ast.parse(code), rng)


def make_clone(code: str, rng: random.Random, rename_functions: bool = True) -> str:
    """Return a semantics-preserving rewrite of ``code``: renamed locals, then :func:`reformat`.

    With ``rename_functions`` the function itself also gets a fresh name (see
    :func:`rename_function`). Equivalent to chaining the public functions, but parses once.

    Example:
        >>> clone = make_clone("def add(a, b):\\n    # sum\\n    return a + b", random.Random(0))
        >>> clone != "def add(a, b):\\n    # sum\\n    return a + b"
        True
    """
    tree = ast.parse(code)
    taken = _identifiers(tree) | _RESERVED
    _rename_locals(tree, rng, taken)
    if rename_functions:
        _rename_functions(tree, rng, taken)
    return _reformat_tree(tree, rng)


def build_clone_dataset(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    max_pairs_per_split: Mapping[str, int] = DEFAULT_MAX_PAIRS,
    *,
    min_lines: int = 4,
    max_lines: int = 60,
    rename_functions: bool = True,
    packages: Iterable[str] = (),
) -> datasets.DatasetDict:
    """Build a balanced clone-detection :class:`datasets.DatasetDict` from the sources under ``root``.

    ``packages`` adds the ``.py`` sources of installed packages (by import name, e.g. ``"transformers"``) as a second
    source when ``root`` gives too few functions; their files are named and split by their path from the folder that
    holds the package (``transformers/...``), so the standard library's split does not change.

    Columns: ``code1`` (an original function), ``code2``, ``label`` (1 = clone, 0 = not) and
    ``source`` (``code1``'s file, relative to ``root``, or ``<package>/...``). Positives pair a function with
    :func:`make_clone` of itself; negatives pair it with :func:`make_clone` of another function
    of the same split with a different name, a different body (up to renaming) and within
    ±25% of its line count. ``code2`` goes through the same rewrite in both classes, so style
    does not reveal the label, and with ``rename_functions`` (default) neither does the name.

    Files are split 80/10/10 with :func:`split_of`; functions that also occur (up to renaming)
    in an earlier split are dropped, so no code is shared between splits. Every function is
    ``code1`` at most once. ``max_pairs_per_split`` caps the number of pairs per split (odd
    caps are rounded down so the classes stay balanced); splits not named there use
    :data:`DEFAULT_MAX_PAIRS`. The same ``root``, ``seed`` and caps give an identical dataset.

    Example:
        >>> ds = build_clone_dataset(seed=0, max_pairs_per_split={"train": 40, "valid": 10, "test": 10})
        >>> ds["train"].num_rows, sum(ds["train"]["label"])
        (40, 20)
    """
    root = stdlib_source_dir() if root is None else Path(root)
    limits = _check_limits(max_pairs_per_split)
    started = time.perf_counter()
    files = iter_source_files(root)
    if not files:
        raise ValueError(f"root={str(root)!r} holds no .py files; pass a directory of Python sources")
    sources = [(root, files)] + [_package_files(package) for package in packages]
    with _gc_paused():
        functions = _collect_functions(sources, min_lines, max_lines)
    if not any(functions.values()):
        raise ValueError(
            f"root={str(root)!r} has no functions of {min_lines}-{max_lines} lines; "
            "pass a directory with more code or widen min_lines/max_lines"
        )
    splits = {}
    for split in SPLITS:
        with _gc_paused():
            rows = _make_pairs(functions[split], limits[split], random.Random(f"{seed}:{split}"), rename_functions)
        splits[split] = datasets.Dataset.from_dict(rows, features=_FEATURES)
        positives = sum(rows["label"])
        logger.info(
            "%s: %d pairs (%d clones, %d non-clones) from %d functions",
            split,
            len(rows["label"]),
            positives,
            len(rows["label"]) - positives,
            len(functions[split]),
        )
    logger.info(
        "built clone dataset from %d files in %.1fs", sum(len(f) for _, f in sources), time.perf_counter() - started
    )
    return datasets.DatasetDict(splits)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector.

    Parsing creates millions of short-lived AST nodes, which keep triggering collections of an
    already large heap (extraction from the stdlib ran about 3x slower); AST nodes hold no
    reference cycles, so reference counting alone frees them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class _Function:
    code: str
    name: str
    lines: int
    source: str
    fingerprint: str


def _check_limits(max_pairs_per_split: Mapping[str, int]) -> dict[str, int]:
    unknown = sorted(set(max_pairs_per_split) - set(SPLITS))
    if unknown:
        raise ValueError(f"max_pairs_per_split has unknown split name(s) {unknown}; use only {list(SPLITS)}")
    limits = {**DEFAULT_MAX_PAIRS, **max_pairs_per_split}
    for split, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"max_pairs_per_split[{split!r}]={value!r} must be a non-negative int")
    return limits


def _package_files(package: str) -> tuple[Path, list[Path]]:
    """``(the folder holding the installed package, its .py files)``; a clear error if it is not installed."""
    folder = package_source_dir(package)
    return folder.parent, iter_source_files(folder)


def _collect_functions(
    sources: list[tuple[Path, list[Path]]], min_lines: int, max_lines: int
) -> dict[str, list[_Function]]:
    functions: dict[str, list[_Function]] = {split: [] for split in SPLITS}
    for root, files in sources:
        for path in files:
            source = path.relative_to(root).as_posix()
            try:
                snippets = _extract(path.read_text(encoding="utf-8"), min_lines, max_lines)
            except (SyntaxError, ValueError, UnicodeDecodeError) as error:  # ValueError: null bytes (Python < 3.12)
                logger.debug("skipping %s: %s", source, error)
                continue
            split = split_of(path, root)
            for code, tree in snippets:
                name, fingerprint = _fingerprint(tree)
                functions[split].append(_Function(code, name, code.count("\n") + 1, source, fingerprint))
    # The stdlib repeats code across files (e.g. the charmap codecs). Keep the first copy per
    # split and drop copies from later splits, so that valid/test never contain train code.
    seen: set[str] = set()
    for split in SPLITS:
        kept = []
        for function in functions[split]:
            if function.fingerprint not in seen:
                seen.add(function.fingerprint)
                kept.append(function)
        functions[split] = kept
    return functions


def _make_pairs(
    functions: list[_Function], max_pairs: int, rng: random.Random, rename_functions: bool
) -> dict[str, list]:
    target = max_pairs // 2
    anchors = list(functions)
    rng.shuffle(anchors)
    by_length = sorted(functions, key=lambda function: (function.lines, function.source, function.code))
    lengths = [function.lines for function in by_length]
    positives: list[tuple[str, str, int, str]] = []
    negatives: list[tuple[str, str, int, str]] = []
    for index, anchor in enumerate(anchors):
        if len(positives) >= target and len(negatives) >= target:
            break
        # Alternate so that neither class gets the anchors that happen to come first.
        positive = len(negatives) >= target or (len(positives) < target and index % 2 == 0)
        if positive:
            clone = make_clone(anchor.code, rng, rename_functions)
            if clone.strip() != anchor.code.strip():
                positives.append((anchor.code, clone, 1, anchor.source))
        else:
            partner = _pick_partner(anchor, by_length, lengths, rng)
            if partner is not None:
                negatives.append((anchor.code, make_clone(partner.code, rng, rename_functions), 0, anchor.source))
    count = min(len(positives), len(negatives))
    if count < target:
        logger.warning("only %d of %d requested pairs per class could be built", count, target)
    rows = positives[:count] + negatives[:count]
    rng.shuffle(rows)
    columns = ("code1", "code2", "label", "source")
    return {column: [row[i] for row in rows] for i, column in enumerate(columns)}


def _pick_partner(
    anchor: _Function, by_length: list[_Function], lengths: list[int], rng: random.Random, attempts: int = 30
) -> _Function | None:
    low = bisect_left(lengths, math.ceil(anchor.lines * (1 - _LENGTH_TOLERANCE)))
    high = bisect_right(lengths, math.floor(anchor.lines * (1 + _LENGTH_TOLERANCE)))
    if high <= low:
        return None
    for _ in range(attempts):
        partner = by_length[rng.randrange(low, high)]
        if partner.name != anchor.name and partner.fingerprint != anchor.fingerprint:
            return partner
    return None


def _extract(source: str, min_lines: int, max_lines: int) -> list[tuple[str, ast.Module]]:
    """Like :func:`extract_functions`, also returning each snippet's parse (callers reuse it)."""
    if min_lines < 1:
        raise ValueError(f"min_lines={min_lines!r} must be at least 1")
    if max_lines < min_lines:
        raise ValueError(f"max_lines={max_lines!r} is below min_lines={min_lines!r}; raise max_lines")
    # Python reads \r\n and \r as \n (even inside strings), so normalising keeps line numbers
    # and meaning while letting a plain split("\n") match the parser's line numbering.
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    tree = ast.parse(source)
    lines = source.split("\n")
    found = []
    for node in _outermost_functions(tree):
        if not min_lines <= node.end_lineno - node.lineno + 1 <= max_lines:
            continue
        # Dedent needs the first line's indentation, hence the padding (as get_source_segment's
        # padded=True, which is avoided because it re-splits the whole file on every call).
        first = lines[node.lineno - 1].encode("utf-8")
        last = lines[node.end_lineno - 1].encode("utf-8")
        padding = "".join(char if char in "\t\f" else " " for char in first[: node.col_offset].decode("utf-8"))
        if node.lineno == node.end_lineno:
            body = [first[node.col_offset : node.end_col_offset].decode("utf-8")]
        else:
            body = [
                first[node.col_offset :].decode("utf-8"),
                *lines[node.lineno : node.end_lineno - 1],
                last[: node.end_col_offset].decode("utf-8"),
            ]
        segment = textwrap.dedent(padding + "\n".join(body))
        try:
            found.append((segment, ast.parse(segment)))
        except SyntaxError:
            # e.g. a multi-line string flush with column 0 prevents dedenting the method.
            continue
    return found


def _fingerprint(tree: ast.Module) -> tuple[str, str]:
    """Return the function's name and a hash of its body that ignores docstring, layout and local names.

    Mutates ``tree``.
    """
    function = tree.body[0]
    name = function.name
    function.name = "_"
    function.body = _without_docstring(function.body) or [ast.Pass()]
    bound = {arg.arg for arg in _all_args(function.args)}
    bound |= {
        node.id for node in ast.walk(function) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)
    }
    numbering: dict[str, str] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and node.id in bound:
            node.id = numbering.setdefault(node.id, f"v{len(numbering)}")
        elif isinstance(node, ast.arg):
            node.arg = numbering.setdefault(node.arg, f"v{len(numbering)}")
    return name, hashlib.sha1(ast.dump(function).encode("utf-8")).hexdigest()


def _rename_locals(tree: ast.AST, rng: random.Random, taken: set[str]) -> None:
    for function in _outermost_functions(tree):
        mapping = {}
        for name in sorted(_renameable_locals(function)):
            mapping[name] = _fresh_name(rng, taken, _variable_name)
        if not mapping:
            continue
        positional = function.args.posonlyargs + function.args.args
        for arg in [*positional, function.args.vararg, function.args.kwarg]:
            if arg is not None and arg.arg in mapping:
                arg.arg = mapping[arg.arg]
        # Everything in the body, nested scopes included, sees the same bindings, so a uniform
        # rename is safe; the function's own defaults and annotations live in the outer scope.
        for statement in function.body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and node.id in mapping:
                    node.id = mapping[node.id]
                elif isinstance(node, ast.arg) and node.arg in mapping:
                    node.arg = mapping[node.arg]
                elif isinstance(node, ast.ExceptHandler) and node.name in mapping:
                    node.name = mapping[node.name]


def _rename_functions(tree: ast.Module, rng: random.Random, taken: set[str]) -> None:
    for function in [node for node in tree.body if isinstance(node, _FUNCTION_TYPES)]:
        if _is_introspective(function):
            continue
        old, new = function.name, _fresh_name(rng, taken, _function_name)
        positional = function.args.posonlyargs + function.args.args
        receiver = positional[0].arg if positional else None
        function.name = new
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == old:
                node.id = new
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == old
                and isinstance(node.value, ast.Name)
                and node.value.id == receiver
            ):
                node.attr = new


def _reformat_tree(tree: ast.Module, rng: random.Random) -> str:
    drop_docstrings = rng.random() < 0.5
    for node in list(ast.walk(tree)):
        if drop_docstrings and isinstance(node, _FUNCTION_TYPES + (ast.ClassDef, ast.Module)):
            node.body = _without_docstring(node.body) or [ast.Pass()]
        if isinstance(node, ast.If | ast.IfExp) and rng.random() < 0.5:
            _invert_branch(node)
        elif isinstance(node, _FUNCTION_TYPES) and rng.random() < 0.5:
            _toggle_trailing_return(node)
    text = ast.unparse(ast.fix_missing_locations(tree))
    if rng.random() < 0.5:
        text = _double_quotes(text)
    return text


def _outermost_functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Functions not nested in another function: module-level ones and methods, in source order."""
    found = []
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCTION_TYPES):
                found.append(child)
            elif not isinstance(child, ast.Lambda):
                stack.append(child)
    return sorted(found, key=lambda node: (node.lineno, node.col_offset))


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [arg for arg in (args.vararg, args.kwarg) if arg is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _identifiers(tree: ast.AST) -> set[str]:
    """Every identifier spelled anywhere in ``tree``; fresh names must avoid all of them."""
    names = set()
    for node in ast.walk(tree):
        for field in ("id", "arg", "attr", "name", "asname", "rest"):
            value = getattr(node, field, None)
            if isinstance(value, str):
                names.add(value.split(".")[0])
        if isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
    return names


def _is_introspective(function: ast.AST, bound: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether ``function`` may look up its local names by string (``locals()``, ``eval(s)``...).

    Names in ``bound`` are local variables that merely shadow those builtins.
    """
    nodes = list(ast.walk(function))
    # eval/exec given explicit globals run in those, so they cannot see the function's locals.
    explicit = {
        id(node.func)
        for node in nodes
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("eval", "exec")
        and len(node.args) >= 2
        and not any(isinstance(arg, ast.Starred) for arg in node.args)
    }
    for node in nodes:
        if isinstance(node, ast.Name) and node.id in _INTROSPECTIVE_NAMES:
            if node.id not in bound and id(node) not in explicit:
                return True
        elif isinstance(node, ast.Attribute) and node.attr in _INTROSPECTIVE_ATTRS:
            return True
    return False


def _renameable_locals(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    bound = _direct_bindings(function)
    if _is_introspective(function, bound):
        return set()
    return bound - _unrenameable(function)


def _direct_bindings(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names bound in ``function``'s own scope (not in nested functions, classes or comprehensions)."""
    positional = function.args.posonlyargs + function.args.args
    names = {arg.arg for arg in [*positional, function.args.vararg, function.args.kwarg] if arg is not None}
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        # For nested scopes, only the parts evaluated in this scope count.
        if isinstance(node, _FUNCTION_TYPES + (ast.Lambda,)):
            args = node.args
            stack.extend([*args.defaults, *(d for d in args.kw_defaults if d is not None)])
            if not isinstance(node, ast.Lambda):
                stack.extend(node.decorator_list)
        elif isinstance(node, ast.ClassDef):
            stack.extend([*node.decorator_list, *node.bases, *node.keywords])
        elif isinstance(node, _COMPREHENSION_TYPES):
            stack.append(node.generators[0].iter)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return names


def _unrenameable(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set(_CONVENTIONAL_NAMES)
    for node in ast.walk(function):
        if isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, ast.keyword) and node.arg:
            # f(x=x) elsewhere may target a parameter we would otherwise rename.
            names.add(node.arg)
        elif isinstance(node, _FUNCTION_TYPES + (ast.Lambda,)):
            # Keyword-only parameters are part of the call interface.
            names.update(arg.arg for arg in node.args.kwonlyargs)
            if node is not function and not isinstance(node, ast.Lambda):
                names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            # Class bodies turn assignments into attributes; leave anything they mention alone.
            names.add(node.name)
            names.update(_identifiers(node))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.Name) and node.id.startswith("__") and node.id.endswith("__"):
            names.add(node.id)
    return names


def _variable_name(rng: random.Random) -> str:
    word = rng.choice(_VARIABLE_WORDS)
    style = rng.randrange(3)
    return word if style == 0 else f"{word}{rng.randint(1, 9)}" if style == 1 else f"{word}_{rng.randint(1, 9)}"


def _function_name(rng: random.Random) -> str:
    return f"{rng.choice(_VERB_WORDS)}_{rng.choice(_NOUN_WORDS)}"


def _fresh_name(rng: random.Random, taken: set[str], propose) -> str:
    """Draw a plausible name not in ``taken`` (and reserve it), so no binding can be captured."""
    for _ in range(50):
        name = propose(rng)
        if name not in taken:
            break
    else:
        base, counter = propose(rng), 0
        while f"{base}_{counter}" in taken:
            counter += 1
        name = f"{base}_{counter}"
    taken.add(name)
    return name


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


def _invert_branch(node: ast.If | ast.IfExp) -> None:
    # Only two-armed branches: `if not c: pass else: A` would be a pointless rewrite.
    if isinstance(node, ast.If) and not node.orelse:
        return
    test = node.test
    # `not c` and `c` both call bool(c) exactly once, so negating the test is exact.
    node.test = (
        test.operand
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        else ast.UnaryOp(ast.Not(), test)
    )
    node.body, node.orelse = node.orelse, node.body


def _toggle_trailing_return(function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    last = function.body[-1]
    if isinstance(last, ast.Return) and (
        last.value is None or (isinstance(last.value, ast.Constant) and last.value.value is None)
    ):
        function.body = function.body[:-1] or [ast.Pass()]
    elif not isinstance(last, ast.Return | ast.Raise):
        # A bare `return` (not `return None`) is also legal in async generators.
        function.body.append(ast.Return(value=None))


def _double_quotes(text: str) -> str:
    """Rewrite simple single-quoted literals ('abc', b'x', r'y') with double quotes; same length, same value."""
    lines = text.splitlines(keepends=True)
    for token in _tokens(text):
        if token.type != tokenize.STRING or token.start[0] != token.end[0]:
            continue
        literal = token.string
        prefix = literal[: len(literal) - len(literal.lstrip("rRbBuUfF"))]
        body = literal[len(prefix) :]
        # f-strings may hold nested quotes in their expressions; escapes would need rewriting.
        if "f" in prefix.lower() or len(body) < 2 or body[0] != "'" or body[-1] != "'" or body.startswith("'''"):
            continue
        inner = body[1:-1]
        if any(char in inner for char in "'\"\\"):
            continue
        row, col = token.start
        line = lines[row - 1]
        lines[row - 1] = line[:col] + f'{prefix}"{inner}"' + line[token.end[1] :]
    return "".join(lines)


def _tokens(text: str) -> Iterable[tokenize.TokenInfo]:
    return tokenize.generate_tokens(io.StringIO(text).readline)
