# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""What an instruct model reads and writes besides code: its rendered chat template, instruction prompts built from a
code corpus, and its own greedy answers to them. Vocabulary pruning keeps these tokens, so that a pruned instruct
model can still read the chat and write its answers (markdown fences, English, code).

Example:
    >>> from flab_hf.answers import instruction_prompts
    >>> instruction_prompts(["def add(a, b):\\n    'Return the sum of a and b.'\\n    return a + b\\n"])
    ['Write a Python function `add(a, b)` that does the following: Return the sum of a and b.']
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

# turns that exercise every part of a chat template: the default system prompt some templates inject when there is
# none, an explicit system turn, user and assistant turns, and the generation prompt
_CONVERSATIONS = (
    [{"role": "user", "content": "Hello."}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a function."},
        {"role": "assistant", "content": "Here it is."},
        {"role": "user", "content": "Thanks."},
    ],
)


def chat_template_texts(tokenizer) -> list[str]:
    """The tokenizer's chat template rendered over a few conversations (with and without the generation prompt).

    Empty if the tokenizer has no chat template; a conversation the template rejects (some refuse a system turn) is
    skipped.

    Example:
        >>> texts = chat_template_texts(tokenizer)  # doctest: +SKIP
        >>> "<|im_start|>assistant" in texts[0]  # doctest: +SKIP
        True
    """
    if not getattr(tokenizer, "chat_template", None):
        return []
    texts = []
    for conversation in _CONVERSATIONS:
        for generation_prompt in (False, True):
            try:
                texts.append(
                    tokenizer.apply_chat_template(
                        conversation, tokenize=False, add_generation_prompt=generation_prompt
                    )
                )
            except Exception as error:  # jinja raises its own exception types (TemplateError, ...)
                logger.debug("chat template rejected a conversation: %s", error)
    return texts


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    arguments = ast.unparse(node.args)
    return f"{node.name}({arguments})"


# how users ask a code model, in turn: describe the function, complete a stub in a fenced block, implement and explain
# (the stub form and the fence matter: an instruct model answers in markdown, and a vocabulary without the fence
# token cannot write one)
_TEMPLATES = (
    "Write a Python function `{signature}` that does the following: {summary}",
    "Complete the following Python function. Answer with the whole function in a code block.\n\n```python\n{stub}```",
    "Implement `{name}` in Python. {summary} Then explain your solution in a few sentences.",
)


# Prompts per generate() call for the model's own answers: greedy decoding of a small model on a CPU is bound by
# reading the weights once per step, so a batch of 32 answers ~1.7x more prompts per second than a batch of 8
# (SmolLM2-135M, 2 AVX2 cores). Evaluation (HumanEval) keeps its own batch so that its numbers stay comparable.
ANSWER_BATCH_SIZE = 32


def instruction_prompts(texts: Sequence[str], limit: int | None = None) -> list[str]:
    """Instruction prompts built from the documented public functions of ``texts``.

    Each prompt gives a function's signature and the first paragraph of its docstring, or its stub (signature and
    docstring) to complete, in turn. Functions are taken in corpus order, one per name, spread evenly over the corpus
    when there are more than ``limit`` (deterministic).
    """
    found: list[dict] = []
    seen: set[str] = set()
    for text in texts:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):  # a corpus may hold Python 2 files or other languages
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
                continue
            docstring = ast.get_docstring(node)
            if not docstring or node.name in seen:
                continue
            summary = " ".join(docstring.strip().split("\n\n")[0].split())
            if len(summary) < 20:
                continue
            seen.add(node.name)
            signature = _signature(node)
            body = "\n".join(("    " + line).rstrip() for line in docstring.strip().splitlines())
            stub = f'def {signature}:\n    """{body.lstrip()}\n    """\n'
            found.append({"signature": signature, "summary": summary, "stub": stub, "name": node.name})
    if limit is not None and len(found) > limit:
        step = len(found) / limit
        found = [found[int(index * step)] for index in range(limit)]
    return [_TEMPLATES[index % len(_TEMPLATES)].format(**fields) for index, fields in enumerate(found)]


def _stop_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
    flat = set()
    for value in ids:
        flat |= set(value) if isinstance(value, (list, tuple)) else {value}
    return {i for i in flat if isinstance(i, int)}


@torch.no_grad()
def generate_ids(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 160, batch_size: int = 8,
                 chat: bool = False, progress: bool = True, desc: str = "generating") -> list[list[int]]:  # fmt: skip
    """Greedy answers to ``prompts`` as token ids (left-padded batches), each cut after its first end-of-sequence
    token; ``chat=True`` wraps each prompt in a user turn of the chat template, with the generation prompt."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = model.get_input_embeddings().weight.device
    stop = _stop_ids(model, tokenizer)
    outputs: list[list[int]] = []
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc=desc, disable=not progress):
            batch = list(prompts[start : start + batch_size])
            if chat:
                batch = [
                    tokenizer.apply_chat_template(
                        [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                    )
                    for p in batch
                ]
            encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            generated = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            for row in generated[:, encoded["input_ids"].shape[1] :].tolist():
                end = next((index for index, token in enumerate(row) if token in stop), None)
                outputs.append(row if end is None else row[: end + 1])
    finally:
        tokenizer.padding_side = side
    return outputs


def generate_completions(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 160, batch_size: int = 8,
                         chat: bool = False, progress: bool = True, desc: str = "generating") -> list[str]:  # fmt: skip
    """Greedy completions of ``prompts`` as text (special tokens removed); see :func:`generate_ids`."""
    ids = generate_ids(model, tokenizer, prompts, max_new_tokens, batch_size, chat, progress, desc)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in ids]


def answer_token_ids(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 256,
                     batch_size: int = ANSWER_BATCH_SIZE,
                     progress: bool = True) -> list[list[int]]:  # fmt: skip
    """The model's own greedy chat answers (token ids) to ``prompts``, generated in eval mode."""
    if not prompts:
        return []
    was_training = model.training
    model.eval()
    try:
        return generate_ids(model, tokenizer, prompts, max_new_tokens, batch_size, chat=True, progress=progress,
                            desc="flab: the model's own answers")  # fmt: skip
    finally:
        model.train(was_training)


__all__ = [
    "ANSWER_BATCH_SIZE",
    "answer_token_ids",
    "chat_template_texts",
    "generate_completions",
    "generate_ids",
    "instruction_prompts",
]
