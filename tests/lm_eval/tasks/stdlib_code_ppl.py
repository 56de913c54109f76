"""Documents of the ``stdlib_code_ppl`` lm-evaluation-harness task: held-out standard-library code, shipped as jsonl.

The documents are standard-library files of the ``test`` split of ``compress_utils.corpus.split_of`` (the one split
rule every method package uses), so no checkpoint of this repository saw them in training, vocabulary pruning or
calibration; a few mid-sized ones (``DOCUMENTS`` files of 1,000 to 15,000 characters, first by path) keep the task quick. They are copied into ``stdlib_code_test.jsonl`` beside this
file, so the task needs no network and gives the same documents on every Python version. Regenerate (in a checkout,
with the package installed) with ``python tests/lm_eval/tasks/stdlib_code_ppl.py``.

Example:
    >>> load_docs()["test"][0]["path"]  # doctest: +SKIP
    'email/__init__.py'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).with_name("stdlib_code_test.jsonl")
DOCUMENTS = 4


def read_docs(path: str | Path = DATA) -> list[dict]:
    """The shipped documents as ``{"path", "text", "python"}`` dicts, in file order."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_docs(**kwargs):
    """``custom_dataset`` of the task: a ``DatasetDict`` with one ``test`` split, built in memory (no cache files).

    lm-evaluation-harness passes the task's metadata (and model arguments) as keyword arguments; none are needed.
    """
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(read_docs())})


def build_docs() -> list[dict]:
    """The held-out files of the running interpreter: the first mid-sized files of the shared ``test`` split."""
    from compress_utils.corpus import read_sources

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    files = [(path, text) for path, text in read_sources(split="test") if 1_000 <= len(text) <= 15_000]
    return [{"path": path, "text": text, "python": python} for path, text in files[:DOCUMENTS]]


if __name__ == "__main__":
    docs = build_docs()
    with open(DATA, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    print(f"wrote {len(docs)} documents ({sum(len(d['text']) for d in docs)} characters) to {DATA}")
