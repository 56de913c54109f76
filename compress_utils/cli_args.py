"""Command-line options derived from recipe dataclasses, so that each setting is spelled once.

A recipe config is a ``@dataclass`` whose fields carry ``metadata={"help": ...}`` and whose ``__post_init__``
checks the values (naming the field). :func:`add_dataclass_arguments` turns its fields into ``argparse`` options
(``--field-name``, ``--no-field`` for booleans that default to true, both for ``bool | None``) whose types name the option when a value does
not parse; :func:`dataclass_from_args` builds the config back from the parsed namespace. :func:`run_main` turns the
library's ``ValueError``/``OSError`` into ``prog: error: message`` and exit code 2, like argparse's own errors.
(``transformers.HfArgumentParser`` does the first half but rejects ``str | list[int]`` fields, which our recipes
use for layer selections.)

Example:
    >>> import argparse
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Recipe:
    ...     alpha: float = field(default=1.0, metadata={"help": "Keep-window width."})
    ...     layers: str | list[int] = field(default="all", metadata={"help": "A mode or indices."})
    ...     merge: bool = field(default=True, metadata={"help": "Merge pruned rows."})
    >>> parser = add_dataclass_arguments(argparse.ArgumentParser(), Recipe)
    >>> dataclass_from_args(Recipe, parser.parse_args(["--layers", "0,2", "--no-merge"]))
    Recipe(alpha=1.0, layers=[0, 2], merge=False)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from collections.abc import Callable, Iterable

__all__ = [
    "add_dataclass_arguments",
    "dataclass_from_args",
    "float_list",
    "float_or_float_list",
    "int_list",
    "mode_or_int_list",
    "positive_int",
    "run_main",
    "run_subcommand",
]


def positive_int(text: str) -> int:
    """An int >= 1 (``--threads 0`` would otherwise fail inside torch).

    Example:
        >>> positive_int("2")
        2
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """Comma-separated integers such as ``0,2,5``.

    Example:
        >>> int_list("0, 2,5")
        [0, 2, 5]
    """
    parts = [part.strip() for part in text.split(",")]
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,2,5, got {text!r}") from None


def float_list(text: str) -> list[float]:
    """Comma-separated numbers such as ``1.5,1,0.5``.

    Example:
        >>> float_list("1.5, 1,0.5")
        [1.5, 1.0, 0.5]
    """
    try:
        return [float(part.strip()) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1.5,1,0.5, got {text!r}") from None


def float_or_float_list(text: str) -> float | list[float]:
    """One number, or comma-separated numbers (a per-layer setting such as ``--alpha 1.5,1,0.5``).

    Example:
        >>> float_or_float_list("0.5"), float_or_float_list("1.5,1,0.5")
        (0.5, [1.5, 1.0, 0.5])
    """
    if "," in text:
        return float_list(text)
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}") from None


def mode_or_int_list(text: str) -> str | list[int]:
    """A mode name (``all``, ``odd``, ...) or comma-separated integers; ``0,x`` is refused here, not deep inside.

    Example:
        >>> mode_or_int_list("even"), mode_or_int_list("1,3")
        ('even', [1, 3])
    """
    stripped = text.strip()
    if stripped.replace("_", "").isalpha():
        return stripped
    return int_list(text)


def _int_or_int_list(text: str) -> int | list[int]:
    values = int_list(text)
    return values if "," in text else values[0]


def _str_tuple(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parser_for(annotation) -> Callable[[str], object] | None:
    """The string converter for a field annotation (``None`` for booleans, which become flags)."""
    args = set(typing.get_args(annotation)) - {type(None)}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if args == {str, list[int]}:
            return mode_or_int_list
        if args == {int, list[int]}:
            return _int_or_int_list
        if args == {float, list[float]}:
            return float_or_float_list
        if len(args) == 1:
            return _parser_for(args.pop())
        raise TypeError(f"no command-line type for the annotation {annotation!r}")
    if annotation is bool:
        return None
    if annotation in (int, float, str):
        return annotation
    if annotation == list[int]:
        return int_list
    if annotation == list[float]:
        return float_list
    if annotation == tuple[str, ...]:
        return _str_tuple
    raise TypeError(f"no command-line type for the annotation {annotation!r}")


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    names: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (help from the field's metadata).

    ``names`` gives a field a shorter option name kept for compatibility (``{"layers_to_prune": "layers"}`` adds
    ``--layers`` and ``--layers-to-prune``); ``exclude`` skips fields the command sets otherwise. A boolean field
    defaulting to true becomes ``--no-<name>``, one defaulting to false ``--<name>``.
    """
    names = names or {}
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if spec.name in exclude or not spec.init:
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        help_text = spec.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        spelled = [names[spec.name]] if spec.name in names else []
        spelled.append(spec.name)
        convert = _parser_for(hints[spec.name])
        if convert is None and default is None:  # bool | None: --name / --no-name, unset keeps the automatic choice
            options = list(dict.fromkeys(f"--{name.replace('_', '-')}" for name in spelled))
            parser.add_argument(
                *options, dest=spec.name, action=argparse.BooleanOptionalAction, default=None,
                help=help_text + " (default: automatic)",
            )  # fmt: skip
            continue
        if convert is None:
            prefix = "no-" if default else ""
            options = list(dict.fromkeys(f"--{prefix}{name.replace('_', '-')}" for name in spelled))
            action = "store_false" if default else "store_true"
            parser.add_argument(*options, dest=spec.name, action=action, default=default, help=help_text)
            continue
        options = list(dict.fromkeys(f"--{name.replace('_', '-')}" for name in spelled))
        suffix = f" (default: {_shown(default)})" if default is not None else ""
        parser.add_argument(
            *options, dest=spec.name, type=convert, default=default, metavar=spec.name.upper(),
            help=help_text + suffix,
        )  # fmt: skip
    return parser


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides):
    """Build ``cls`` from the fields present in ``args`` plus ``overrides``; ``__post_init__`` checks the values."""
    values = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(cls) if hasattr(args, spec.name)}
    return cls(**{**values, **overrides})


# what the library raises for bad input; anything else is a bug and keeps its traceback
USER_ERRORS = (ValueError, OSError)


def run_subcommand(args: argparse.Namespace) -> int:
    """The default ``run`` of :func:`run_main`: logging at INFO (WARNING with ``--quiet``), then ``args.func(args)``."""
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return args.func(args) or 0


def run_main(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], int] = run_subcommand,
) -> int:
    """Parse ``argv`` and call ``run(args)``; a user error ends as ``prog: error: message`` with exit code 2.

    Example:
        >>> def run(args):
        ...     raise ValueError("`alpha` must be > 0, got -1.")
        >>> run_main(argparse.ArgumentParser(prog="demo"), [], run)  # doctest: +SKIP
        demo: error: `alpha` must be > 0, got -1.
    """
    args = parser.parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return 2  # not reached: parser.exit raises SystemExit
