"""Shared core of the method packages: what ALPINE, Flab-Pruner and XTC all need and none of them owns.

Every method package may import it; it imports no method package. Remote-code files
(``configuration_*``/``modeling_*``) never import it: they travel alone with a checkpoint.

- :mod:`compress_utils.io`: safe folder and file writes (refuse to overwrite, atomic rename, leftover cleanup).
- :mod:`compress_utils.allocator`: glibc allocator settings that keep CPU training from zero-filling fresh pages.
- :mod:`compress_utils.capability`: which of fp32 / bf16 / int8 products are fast here (``bf16="auto"`` resolves by it).
- :mod:`compress_utils.emissions`: the codecarbon ``EmissionsCallback`` (optional dependency, offline tracker).
- :mod:`compress_utils.training_clock`: training time summed across resumes (``TrainingClockCallback``).
- :mod:`compress_utils.metric_loading`: the shipped ``evaluate`` modules (``compress_utils/metrics/``).
- :mod:`compress_utils.corpus`: the standard-library corpus and its one train/valid/test split rule.
- :mod:`compress_utils.distributed`: ``accelerate`` state of a multi-process run.
- :mod:`compress_utils.registration`: Auto-class registration of a method's configs and models.
- :mod:`compress_utils.counting`: parameter and disk counting.
- :mod:`compress_utils.embedded`: the real pretrained models that PyPI packages carry (MiniLM, SmolLM2).
- :mod:`compress_utils.cli_args`: command-line options derived from recipe dataclasses, user errors as exit 2.

Example:
    >>> from compress_utils import split_of
    >>> split_of("json/decoder.py") in ("train", "valid", "test")
    True
"""

from .capability import fast_int8, fastest_dtype, probe, resolve_bf16
from .corpus import SPLITS, package_source_dir, read_sources, source_files, split_of, stdlib_source_dir
from .counting import count_parameters, disk_bytes
from .distributed import distributed_state, is_distributed
from .emissions import CODECARBON_HINT, EmissionsCallback, check_emissions_country
from .io import (
    atomic_dir,
    atomic_write,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    clean_leftovers,
    save_pretrained_atomic,
    save_pretrained_atomic_once,
)
from .metric_loading import load_metric, metric_path
from .registration import register_auto_classes
from .training_clock import TrainingClockCallback

__all__ = [
    "CODECARBON_HINT",
    "EmissionsCallback",
    "SPLITS",
    "TrainingClockCallback",
    "atomic_dir",
    "atomic_write",
    "atomic_write_text",
    "check_emissions_country",
    "check_output_dir",
    "check_output_file",
    "clean_leftovers",
    "count_parameters",
    "disk_bytes",
    "distributed_state",
    "fast_int8",
    "fastest_dtype",
    "is_distributed",
    "load_metric",
    "metric_path",
    "package_source_dir",
    "probe",
    "read_sources",
    "register_auto_classes",
    "resolve_bf16",
    "save_pretrained_atomic",
    "save_pretrained_atomic_once",
    "source_files",
    "split_of",
    "stdlib_source_dir",
]
