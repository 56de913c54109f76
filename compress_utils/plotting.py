"""Reproducible figures: drawn on a bare Agg canvas (no pyplot state, no backend switching) at a fixed size and DPI,
with PNG metadata stripped, so the same numbers give byte-identical files, written atomically.

Example:
    >>> def draw(figure):  # doctest: +SKIP
    ...     figure.add_subplot().plot([0, 1], [1, 0])
    >>> save_figure(draw, "runs/line.png", (4.0, 3.0))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable

DPI = 100
# rcParams that make the output independent of the user's matplotlibrc and of time
RC = {
    "svg.hashsalt": "codecompress-hf",
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.family": "DejaVu Sans",
    "path.simplify": True,
}


def save_figure(draw: Callable, path: str | os.PathLike, size: tuple[float, float]) -> None:
    """Call ``draw(figure)`` on a new ``size``-inch figure and save it as PNG at ``path`` (temporary file, rename)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .io import atomic_write

    with matplotlib.rc_context(RC):
        figure = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(figure)
        draw(figure)
        figure.tight_layout()
        atomic_write(path, lambda target: figure.savefig(target, format="png", dpi=DPI, metadata={"Software": None}))


__all__ = ["DPI", "RC", "save_figure"]
