"""Documents of the ``stdlib_code_ppl`` lm-evaluation-harness task: held-out standard-library code, shipped as jsonl.

The documents are the standard-library files that *both* method packages hold out (``xtc_hf.data.split_of`` puts
10% of files in ``test``, ``flab_hf.data.split_of`` 5%, by hashes of the path), so no checkpoint of this repository
saw them in training, vocabulary pruning or calibration. They are copied into ``stdlib_code_test.jsonl`` beside this
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
    """The held-out files of the running interpreter: in the ``test`` split of both ``xtc_hf`` and ``flab_hf``."""
    from flab_hf.data import split_of as flab_split
    from xtc_hf.data import stdlib_code

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    files = [item for item in stdlib_code("test") if flab_split(item["path"]) == "test"]
    return [{"path": item["path"], "text": item["text"], "python": python} for item in files]


if __name__ == "__main__":
    docs = build_docs()
    with open(DATA, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    print(f"wrote {len(docs)} documents ({sum(len(d['text']) for d in docs)} characters) to {DATA}")
