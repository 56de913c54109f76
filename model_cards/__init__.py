"""The zoo: builds, evaluates and packages checkpoints of every method family (``zoo build``)."""

from .zoo import ENTRIES, ZooSettings, build_entry, build_zoo

__all__ = ["ENTRIES", "ZooSettings", "build_entry", "build_zoo"]
