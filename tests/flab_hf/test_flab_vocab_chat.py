"""Vocabulary pruning that keeps an instruct model's chat: template tokens, given texts and the model's own answers."""

import copy

import pytest
from flab_testing import CODE, PROSE, tiny_model, tiny_tokenizer

from flab_hf import FlabConfig, prune_vocabulary
from flab_hf.answers import chat_template_texts, generate_ids, instruction_prompts
from flab_hf.vocabulary import chat_token_ids

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
DOCUMENTED = [
    'def mean(values):\n    """Return the arithmetic mean of a sequence of numbers."""\n    return sum(values) / len(values)\n',
    'def shout(text):\n    """Convert the given text to upper case and add an exclamation mark."""\n    return text.upper()\n',
    'def _private(x):\n    """A private helper that no prompt should be built from."""\n    return x\n',
] + CODE


def chat_tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = CHATML
    return tokenizer


def _tokens(tokenizer, texts):
    return {token for text in texts for token in tokenizer.tokenize(text)}


def test_instruction_prompts_come_from_documented_public_functions():
    prompts = instruction_prompts(DOCUMENTED + ["def broken(:\n"])  # unparsable files are skipped
    assert prompts == [
        "Write a Python function `mean(values)` that does the following: Return the arithmetic mean of a sequence "
        "of numbers.",
        # the second template asks for the stub in a fenced block, as users paste code to an instruct model
        "Complete the following Python function. Answer with the whole function in a code block.\n\n```python\n"
        'def shout(text):\n    """Convert the given text to upper case and add an exclamation mark.\n    """\n```',
    ]
    assert instruction_prompts(DOCUMENTED, limit=1) == prompts[:1]


def test_kept_vocabulary_holds_the_chat_template_given_texts_and_the_models_answers():
    tokenizer, dense = chat_tokenizer(), tiny_model("qwen2")
    given = [PROSE[0]]  # English the code corpus does not use
    sources = chat_token_ids(copy.deepcopy(dense), tokenizer, DOCUMENTED, answer_prompts=2, answer_tokens=12,
                             progress=False)  # fmt: skip
    # the model's greedy answers, token by token, as generate_ids gives them
    answers = generate_ids(dense, tokenizer, instruction_prompts(DOCUMENTED, 2), 12, chat=True, progress=False)
    assert sources["answers"] == {token for row in answers for token in row} and sources["answers"]
    pruned, pruned_tokenizer, kept = prune_vocabulary(
        copy.deepcopy(dense), tokenizer, DOCUMENTED, keep_texts=given, answer_prompts=2, answer_tokens=12,
        progress=False,
    )  # fmt: skip
    code_only = prune_vocabulary(copy.deepcopy(dense), tokenizer, DOCUMENTED, keep_chat=False, progress=False)[2]
    assert set(code_only) < set(kept)
    assert sources["answers"] | sources["template"] | sources["prompts"] <= set(kept)
    # every token of the rendered template and of the given texts survives, so they tokenize exactly as before
    for text in chat_template_texts(tokenizer) + given + instruction_prompts(DOCUMENTED, 2):
        assert tokenizer.tokenize(text) == pruned_tokenizer.tokenize(text)
    assert _tokens(tokenizer, given) <= set(pruned_tokenizer.get_vocab())
    assert pruned_tokenizer.chat_template == CHATML


def test_answers_cache_keeps_the_same_tokens_and_is_reused(tmp_path):
    import json

    tokenizer, dense = chat_tokenizer(), tiny_model("qwen2")
    kwargs = dict(answer_prompts=2, answer_tokens=12, progress=False)
    fresh = chat_token_ids(copy.deepcopy(dense), tokenizer, DOCUMENTED, **kwargs)
    cache = tmp_path / "answers.jsonl"
    cached = chat_token_ids(copy.deepcopy(dense), tokenizer, DOCUMENTED, answers_cache=cache, **kwargs)
    assert cached == fresh  # the cache stores the generated ids, not a re-tokenisation of the text
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [r["prompt"] for r in records] == instruction_prompts(DOCUMENTED, 2) and all(r["ids"] for r in records)
    # a second pruning reads the answers instead of generating them: a model that cannot generate still works
    broken = copy.deepcopy(dense)
    broken.generate = None
    assert chat_token_ids(broken, tokenizer, DOCUMENTED, answers_cache=cache, **kwargs) == fresh


def test_code_only_pruning_stays_available():
    # keep_chat=False on a chat tokenizer keeps exactly what a tokenizer without a template keeps: the corpus only
    dense = tiny_model("llama")
    code_only = prune_vocabulary(copy.deepcopy(dense), chat_tokenizer(), CODE, keep_chat=False, progress=False)[2]
    assert code_only == prune_vocabulary(copy.deepcopy(dense), tiny_tokenizer(), CODE, progress=False)[2]


def test_keep_chat_without_a_template_is_refused_before_work():
    with pytest.raises(ValueError, match=r"`keep_chat=True` but the tokenizer has no chat template"):
        prune_vocabulary(tiny_model("llama"), tiny_tokenizer(), CODE, keep_chat=True, progress=False)
    with pytest.raises(ValueError, match=r"`answer_prompts` must be an int >= 0, got -1"):
        prune_vocabulary(tiny_model("llama"), chat_tokenizer(), CODE, answer_prompts=-1, progress=False)
    with pytest.raises(ValueError, match=r"`answer_tokens` must be an int >= 1, got 0"):
        FlabConfig(answer_tokens=0)


def test_keep_merges_keeps_the_most_frequent_pieces():
    from flab_hf.vocabulary import merge_result_ids

    tokenizer, dense = tiny_tokenizer(), tiny_model("llama")
    frequent = merge_result_ids(tokenizer, 40)
    assert 0 < len(frequent) <= 40
    kept = prune_vocabulary(copy.deepcopy(dense), tokenizer, CODE[:1], keep_merges=40, progress=False)[2]
    fewer = prune_vocabulary(copy.deepcopy(dense), tokenizer, CODE[:1], progress=False)[2]
    assert frequent <= set(kept) and set(fewer) < set(kept)
    with pytest.raises(ValueError, match=r"`keep_merges` must be an int >= 0, got -1"):
        FlabConfig(keep_merges=-1)
