"""The zoo: builds, evaluates, cards and publishes checkpoints of every method family (``zoo build|card|publish``)."""

from .card import build_card, write_card
from .publish import PublishError, check_publishable, content_revision, publish_to_cache, publish_to_hub
from .zoo import ENTRIES, ZooSettings, build_entry, build_zoo

__all__ = [
    "ENTRIES",
    "PublishError",
    "ZooSettings",
    "build_card",
    "build_entry",
    "build_zoo",
    "check_publishable",
    "content_revision",
    "publish_to_cache",
    "publish_to_hub",
    "write_card",
]
