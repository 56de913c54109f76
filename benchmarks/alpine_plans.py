"""ALPINE pruning plans by name: the named modes (``all``, ``even-nomerge``, ...) and explicit plans of layers and
per-layer alphas written as strings (``"layers=1-5;alpha=1.5,1.5,1,1,0.5,0.5"``), shared by the fine-tuning and the
inference benchmarks so that a plan means the same thing in both."""

from __future__ import annotations

from dataclasses import dataclass

from alpine_hf.configuration_alpine import check_alpine_alpha, resolve_alpine_layers

ALL_MODES = ("none", "all", "all-nomerge", "even", "even-nomerge", "odd", "odd-nomerge")
PLAN_KEYS = ("layers", "alpha", "merge")
PLAN_EXAMPLE = "layers=1-5;alpha=1.5,1.5,1,1,0.5,0.5"
_LAYER_SETS = ("none", "all", "even", "odd")
_PLAN_SYNTAX = (
    f"write a plan as ';'-separated key=value settings, e.g. {PLAN_EXAMPLE!r}: layers= layer indices and inclusive "
    "ranges (0,2,4-6) or all/even/odd/none; alpha= one number, or one per encoder layer; merge=on|off"
)


@dataclass
class AlpinePlan:
    """What one mode prunes (see :func:`parse_mode`).

    Attributes:
        layers: ``"none"``, ``"all"``, ``"even"``, ``"odd"`` or the sorted indices of the layers that prune.
        merge: average the pruned rows of a sequence into one kept row.
        alpha: keep-window width (one number or one per encoder layer); ``None`` = the benchmark's ``alpha``.
    """

    layers: str | list[int]
    merge: bool = True
    alpha: float | list[float] | None = None

    @property
    def prunes(self) -> bool:
        """Whether any layer prunes (``none`` and an empty list do not)."""
        return self.layers not in ("none", [])

    def check(self, num_hidden_layers: int, mode: str):
        """Raise a ``ValueError`` naming ``mode`` if the plan does not fit a ``num_hidden_layers``-layer model."""
        try:
            resolve_alpine_layers(self.layers, num_hidden_layers)
            if self.alpha is not None:
                check_alpine_alpha(self.alpha, num_hidden_layers, name="alpha")
        except ValueError as error:
            raise ValueError(f"`mode={mode!r}` does not fit the {num_hidden_layers}-layer model: {error}") from None


def parse_mode(mode: str) -> AlpinePlan:
    """A mode: one of :data:`ALL_MODES`, or an explicit plan string of ``;``-separated ``key=value`` settings.

    Plan keys: ``layers`` (required) are layer indices and inclusive ranges (``1-5``, ``0,2,4-6``) or one of
    ``all``/``even``/``odd``/``none``; ``alpha`` is one keep-window width for every pruning layer or one per encoder
    layer (``num_hidden_layers`` comma-separated values; default ``FinetuneConfig.alpha``); ``merge`` is ``on``
    (default) or ``off``. Quote plans on a shell command line (``;`` ends a command there).

    Example:
        >>> parse_mode("even-nomerge")
        AlpinePlan(layers='even', merge=False, alpha=None)
        >>> parse_mode("layers=1-3,5;alpha=1.5,1.5,1,1,0.5,0.5")
        AlpinePlan(layers=[1, 2, 3, 5], merge=True, alpha=[1.5, 1.5, 1.0, 1.0, 0.5, 0.5])
        >>> parse_mode("layers=odd;alpha=0.5;merge=off")
        AlpinePlan(layers='odd', merge=False, alpha=0.5)
    """
    if not isinstance(mode, str):
        raise ValueError(f"`mode` must be a string, got {mode!r}; use one of {ALL_MODES} or a plan ({_PLAN_SYNTAX}).")
    if "=" not in mode:
        layers, _, suffix = mode.partition("-")
        if layers not in _LAYER_SETS or suffix not in ("", "nomerge"):
            raise ValueError(f"`mode={mode!r}` is not one of {ALL_MODES} nor a plan; {_PLAN_SYNTAX}.")
        return AlpinePlan(layers, suffix != "nomerge")
    settings = {}
    for part in mode.split(";"):
        key, equals, value = (text.strip() for text in part.partition("="))
        if not equals or key not in PLAN_KEYS or not value:
            raise _plan_error(mode, f"has {part!r}, which is not a setting key=value with a key of {PLAN_KEYS}")
        if key in settings:
            raise _plan_error(mode, f"sets `{key}` twice")
        settings[key] = value
    if "layers" not in settings:
        raise _plan_error(mode, "does not say which layers prune (layers=...)")
    plan = AlpinePlan(_plan_layers(mode, settings["layers"]))
    if "alpha" in settings:
        plan.alpha = _plan_alpha(mode, settings["alpha"])
    if "merge" in settings:
        if settings["merge"] not in ("on", "off"):
            raise _plan_error(mode, f"has merge={settings['merge']!r}; use merge=on or merge=off")
        plan.merge = settings["merge"] == "on"
    return plan


def _plan_error(mode: str, problem: str) -> ValueError:
    return ValueError(f"`mode={mode!r}` {problem}; {_PLAN_SYNTAX}.")


def _plan_layers(mode: str, text: str) -> str | list[int]:
    if text in _LAYER_SETS:
        return text
    indices = []
    for part in (part.strip() for part in text.split(",")):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise _plan_error(mode, f"has layers={text!r}, where {part!r} is neither a layer index nor a range a-b")
        first, last = int(first), int(last) if dash else int(first)
        if last < first:
            raise _plan_error(mode, f"has the empty range {part!r} in layers={text!r}; write it as {last}-{first}")
        indices.extend(range(first, last + 1))
    repeated = sorted({index for index in indices if indices.count(index) > 1})
    if repeated:
        raise _plan_error(mode, f"names layer(s) {repeated} more than once in layers={text!r}; list each layer once")
    return sorted(indices)


def _plan_alpha(mode: str, text: str) -> float | list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise _plan_error(mode, f"has alpha={text!r}, which is not comma-separated numbers") from None
    alpha = values if "," in text else values[0]
    try:
        check_alpine_alpha(alpha, num_hidden_layers=None, name="alpha")
    except ValueError as error:
        raise _plan_error(mode, f"has alpha={text!r}: {error}") from None
    return alpha


def mode_folder(mode: str) -> str:
    """The folder name of a mode's Trainer checkpoints: the mode itself, or a plan with ``;`` and ``=`` replaced.

    Example:
        >>> mode_folder("all-nomerge"), mode_folder("layers=1-5;alpha=0.5")
        ('all-nomerge', 'layers-1-5_alpha-0.5')
    """
    return mode.replace(" ", "").replace(";", "_").replace("=", "-")


__all__ = ["ALL_MODES", "PLAN_EXAMPLE", "PLAN_KEYS", "AlpinePlan", "mode_folder", "parse_mode"]
