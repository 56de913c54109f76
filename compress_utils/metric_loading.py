"""The ``evaluate`` metric modules shipped with the library (``compress_utils/metrics/<name>/<name>.py``).

``evaluate.load("accuracy")`` needs the network; ``evaluate.load(<local folder>)`` does not. The modules are package
data, so a wheel carries them and :func:`load_metric` finds them next to this file whether the library runs from a
checkout or from ``site-packages``.

Example:
    >>> from compress_utils.metric_loading import load_metric
    >>> load_metric("pass_at_k").compute(n=[2], c=[1], k=[1])  # doctest: +SKIP
    {'pass@1': 0.5}
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
METRIC_NAMES = ("clone_detection", "code_completion", "pass_at_k")


def metric_path(name: str) -> Path:
    """The folder of the shipped metric module ``name`` (what ``evaluate.load`` takes).

    Example:
        >>> metric_path("pass_at_k").name
        'pass_at_k'
    """
    if name not in METRIC_NAMES:
        raise ValueError(f"`name` must be one of {METRIC_NAMES}, got {name!r}.")
    return METRICS_DIR / name


@functools.cache
def load_metric(name: str, config_name: str | None = None):
    """``evaluate.load`` of the shipped metric ``name`` (in memory: no cache files or locks under ``~/.cache``).

    Returns ``None``, with a logged warning, when ``evaluate`` is not installed or cannot load the module; callers
    then score with their in-library formulas (the same ones, tested against each other).

    Example:
        >>> load_metric("code_completion").compute(predictions=["x"], references=["x"])  # doctest: +SKIP
        {'em': 100.0, 'es': 100.0}
    """
    folder = metric_path(name)
    if not (folder / f"{name}.py").is_file():
        logger.warning("%s has no %s.py (a broken install?); scoring in-library.", folder, name)
        return None
    try:
        import evaluate

        return evaluate.load(str(folder), config_name, keep_in_memory=True)
    except (ImportError, OSError) as error:
        logger.warning("Could not load the evaluate module %s (%s); scoring in-library.", folder, error)
        return None


__all__ = ["METRICS_DIR", "METRIC_NAMES", "load_metric", "metric_path"]
