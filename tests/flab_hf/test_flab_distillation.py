"""Recovery by distillation on tiny models: data packing, the KL callback, the recovery curve, resuming, saving."""

import copy
import json
import os

import pytest
import torch
from flab_testing import CODE, PROSE, tiny_model, tiny_tokenizer

from compress_utils.distillation import hidden_state_loss, kl_divergence
from flab_hf import FlabConfig, flab_prune
from flab_hf.distillation import DistillationConfig, FlabDistillationCallback, distill_recover, hidden_layer_map
from flab_hf.distillation_data import (
    chat_prompt_chars,
    chat_texts,
    clean_answers,
    distillation_blocks,
    pack_blocks,
    self_answers,
)
from flab_hf.layers import remove_layers_
from flab_hf.quality import quality

TEXTS = (CODE + PROSE) * 3


@pytest.fixture(scope="module")
def pruned_and_report():
    """A dense tiny model, a copy with a pruned vocabulary and one layer fewer (the student), and the report."""
    torch.manual_seed(0)
    # a wider initialisation than the default gives peaked distributions: a KL that distillation can visibly lower
    dense, tokenizer = tiny_model(layers=3, initializer_range=0.2).eval(), tiny_tokenizer()
    config = FlabConfig(layers_to_prune=1, ffn_neurons=0, calibration_samples=2, calibration_length=16,
                        keep_chat=False, progress=False)  # fmt: skip
    pruned, pruned_tokenizer, report = flab_prune(dense, tokenizer, TEXTS, config)
    return dense, pruned, pruned_tokenizer, report


@pytest.fixture(scope="module")
def pruned_pair(pruned_and_report):
    dense, pruned, pruned_tokenizer, report = pruned_and_report
    return dense, pruned, pruned_tokenizer, torch.tensor(report["kept_token_ids"])


def _blocks(tokenizer, tokens=512, block_size=16):
    return distillation_blocks(tokenizer, TEXTS, [], block_size=block_size, tokens=tokens, chat_share=0.0)["blocks"]


def _eval_ids(tokenizer):
    ids = tokenizer("".join(TEXTS), add_special_tokens=False)["input_ids"]
    return torch.tensor([ids[i * 16 : (i + 1) * 16] for i in range(4)])


def test_pack_blocks_and_shares():
    assert pack_blocks([[1, 2, 3], [4, 5]], 2, 0) == [[1, 2], [3, 0], [4, 5]]
    assert pack_blocks([[1]], 4, None) == [[1]]  # the only block is kept even when short
    tokenizer = tiny_tokenizer()
    data = distillation_blocks(tokenizer, CODE, PROSE, block_size=8, tokens=400, chat_share=0.25, seed=1)
    assert data["code_tokens"] + data["chat_tokens"] >= 400 and data["chat_tokens"] == 104  # ceil(100 / 8) blocks
    assert {len(block) for block in data["blocks"]} == {8}
    again = distillation_blocks(tokenizer, CODE, PROSE, block_size=8, tokens=400, chat_share=0.25, seed=1)
    assert again["blocks"] == data["blocks"]
    with pytest.raises(ValueError, match="chat_share"):
        distillation_blocks(tokenizer, CODE, [], block_size=8, tokens=400, chat_share=0.5)


def test_a_large_part_is_sampled_across_all_of_it():
    # texts in path order, packed into many more blocks than wanted: the blocks come from all of it, not its start
    tokenizer = tiny_tokenizer()
    texts = [f"x{index} = {index}" for index in range(100)]
    packed = pack_blocks(
        [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], 8, tokenizer.eos_token_id
    )
    data = distillation_blocks(tokenizer, texts, [], block_size=8, tokens=10 * 8, chat_share=0.0)
    assert len(packed) > 30 and data["epochs"]["code"] == round(10 / len(packed), 3)
    assert sorted(data["blocks"]) == sorted(packed[index * len(packed) // 10] for index in range(10))
    assert packed[0] in data["blocks"] and any(block in data["blocks"] for block in packed[-len(packed) // 10 :])


def test_self_answers_resume_and_refuse_other_prompts(tmp_path, monkeypatch):
    import flab_hf.distillation_data as module

    calls = []

    def fake_generate(model, tokenizer, prompts, *args, **kwargs):
        calls.append(list(prompts))
        # "a" ends its turn (the stop token is kept, as generate_ids does); the others hit the token limit
        return [
            tokenizer(f"answer to {p}", add_special_tokens=False)["input_ids"]
            + ([tokenizer.eos_token_id] if p == "a" else [])
            for p in prompts
        ]

    monkeypatch.setattr(module, "generate_ids", fake_generate)
    model, tokenizer = tiny_model(), tiny_tokenizer()
    cache = tmp_path / "answers.jsonl"
    first = self_answers(model, tokenizer, ["a", "b", "c"], cache, batch_size=2, progress=False)
    assert [r["prompt"] for r in first] == ["a", "b", "c"] and first[0]["answer"] == "answer to a"
    assert [r["finished"] for r in first] == [True, False, False]
    with open(cache, "a", encoding="utf-8") as handle:  # a line cut by a crash
        handle.write('{"prompt": "d", "ans')
    calls.clear()
    more = self_answers(model, tokenizer, ["a", "b", "c", "d", "e"], cache, batch_size=2, progress=False)
    assert calls == [["d", "e"]] and [r["prompt"] for r in more] == ["a", "b", "c", "d", "e"]
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 5
    with pytest.raises(ValueError, match="other prompts"):
        self_answers(model, tokenizer, ["x", "b"], cache, progress=False)


def test_chat_texts_need_a_template():
    with pytest.raises(ValueError, match="chat template"):
        chat_texts(tiny_tokenizer(), [{"prompt": "p", "answer": "a"}])


def test_config_is_validated():
    assert DistillationConfig(train_tokens=1000, block_size=10, batch_size=10).steps() == 10
    assert DistillationConfig(train_tokens=1000, block_size=10, batch_size=10).steps(processes=2) == 5
    for bad in (
        {"train_tokens": 0},
        {"lora_r": 0},
        {"kl_weight": 1.5},
        {"temperature": 0},
        {"warmup_ratio": 1},
        {"hidden_weight": -1.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DistillationConfig(**bad)


def test_callback_restricts_the_dense_distribution_to_the_kept_vocabulary(pruned_pair):
    dense, pruned, tokenizer, kept = pruned_pair
    callback = FlabDistillationCallback(dense, kept_token_ids=kept)
    ids = _eval_ids(tokenizer)
    logits = callback.teacher_outputs({"input_ids": ids, "attention_mask": torch.ones_like(ids)}).logits
    assert logits.shape == (*ids.shape, len(kept))
    assert torch.allclose(logits, dense(kept[ids]).logits[..., kept])


def test_distillation_lowers_kl_to_dense_and_logs_the_curve(pruned_pair, tmp_path):
    dense, pruned, tokenizer, kept = pruned_pair
    eval_ids = _eval_ids(tokenizer)
    config = DistillationConfig(train_tokens=2048, block_size=16, batch_size=4, learning_rate=3e-3, curve_every=512,
                                bf16=False, progress=False)  # fmt: skip
    before = quality(pruned, dense, kept[eval_ids], kept)["kl_to_dense"]
    recovered, log = distill_recover(copy.deepcopy(pruned), tokenizer, dense, _blocks(tokenizer), config,
                                     kept_token_ids=kept, eval_ids=eval_ids, output_dir=str(tmp_path / "out"))  # fmt: skip
    after = quality(recovered, dense, kept[eval_ids], kept)["kl_to_dense"]
    assert after < 0.7 * before, (before, after)
    assert log["steps"] == 32 and log["tokens"] == 2048 and log["kl"]
    assert [p["tokens"] for p in log["curve"]] == [0, 512, 1024, 1536, 2048]
    assert log["curve"][0]["kl_to_dense"] == pytest.approx(before, rel=1e-4)
    assert log["curve"][-1]["kl_to_dense"] == pytest.approx(after, rel=1e-4)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["vocab_size"] == len(kept)
    with pytest.raises(FileExistsError):  # refused before any training
        distill_recover(copy.deepcopy(pruned), tokenizer, dense, _blocks(tokenizer), config, kept_token_ids=kept,
                        output_dir=str(tmp_path / "out"))  # fmt: skip


def test_hidden_layer_map_pairs_each_kept_layer_with_the_dense_layer_it_was():
    assert hidden_layer_map(5, [2]) == {1: 1, 2: 2, 3: 4}
    assert hidden_layer_map(4, []) == {1: 1, 2: 2, 3: 3}  # the last (normed) state is the logit term's
    with pytest.raises(ValueError, match="removed_layers"):
        hidden_layer_map(4, [4])


def test_intermediate_layer_distillation_lowers_the_hidden_state_loss():
    torch.manual_seed(0)
    dense, tokenizer = tiny_model(layers=4, initializer_range=0.2).eval(), tiny_tokenizer()
    student = remove_layers_(copy.deepcopy(dense), [1])  # a middle layer: the later ones no longer match
    eval_ids, layer_map = _eval_ids(tokenizer), hidden_layer_map(4, [1])

    def hidden_loss(model):
        with torch.no_grad():
            states = model(eval_ids, output_hidden_states=True).hidden_states
            return float(
                hidden_state_loss(
                    states, dense(eval_ids, output_hidden_states=True).hidden_states, layer_map, per_token=True
                )
            )

    after = {}
    for weight in (0.0, 1.0):
        config = DistillationConfig(train_tokens=2048, block_size=16, batch_size=4, learning_rate=3e-3,
                                    hidden_weight=weight, bf16=False, progress=False)  # fmt: skip
        recovered, log = distill_recover(copy.deepcopy(student), tokenizer, dense, _blocks(tokenizer), config,
                                         removed_layers=[1])  # fmt: skip
        after[weight] = hidden_loss(recovered)
    before = hidden_loss(student)
    assert after[1.0] < 0.8 * before and after[1.0] < 0.7 * after[0.0], (before, after)
    with pytest.raises(ValueError, match="removed_layers"):  # the map needs to know which layers went
        distill_recover(copy.deepcopy(student), tokenizer, dense, _blocks(tokenizer), config)


def test_lora_distillation_merges_the_adapters(pruned_pair):
    dense, pruned, tokenizer, kept = pruned_pair
    config = DistillationConfig(train_tokens=512, block_size=16, batch_size=4, lora_r=4, learning_rate=3e-3,
                                bf16=False, progress=False)  # fmt: skip
    recovered, log = distill_recover(copy.deepcopy(pruned), tokenizer, dense, _blocks(tokenizer), config,
                                     kept_token_ids=kept)  # fmt: skip
    assert type(recovered) is type(pruned) and log["steps"] == 8
    assert not any("lora" in name for name, _ in recovered.named_parameters())


def test_a_stopped_distillation_resumes_to_the_same_weights(pruned_pair, tmp_path):
    from transformers import TrainerCallback

    dense, pruned, tokenizer, kept = pruned_pair
    eval_ids = _eval_ids(tokenizer)
    settings = dict(train_tokens=1024, block_size=16, batch_size=4, learning_rate=3e-3, curve_every=256,
                    save_steps=4, bf16=False, progress=False)  # fmt: skip
    whole, whole_log = distill_recover(copy.deepcopy(pruned), tokenizer, dense, _blocks(tokenizer),
                                       DistillationConfig(**settings), kept_token_ids=kept, eval_ids=eval_ids)  # fmt: skip

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 8:
                raise KeyboardInterrupt

    checkpoints = str(tmp_path / "checkpoints")
    with pytest.raises(KeyboardInterrupt):
        distill_recover(copy.deepcopy(pruned), tokenizer, dense, _blocks(tokenizer),
                        DistillationConfig(**settings, checkpoint_dir=checkpoints), kept_token_ids=kept,
                        eval_ids=eval_ids, callbacks=[Stop()])  # fmt: skip
    assert os.listdir(checkpoints) == ["checkpoint-4"]  # the step-8 save never happened
    resumed, log = distill_recover(copy.deepcopy(pruned), tokenizer, dense, _blocks(tokenizer),
                                   DistillationConfig(**settings, checkpoint_dir=checkpoints), kept_token_ids=kept,
                                   eval_ids=eval_ids)  # fmt: skip
    assert log["resumed_from"].endswith("checkpoint-4")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert [p["tokens"] for p in log["curve"]] == [p["tokens"] for p in whole_log["curve"]]


def _chat_tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer


def test_chat_texts_leave_a_cut_answer_open():
    tokenizer = _chat_tokenizer()
    finished, cut, old = chat_texts(tokenizer, [
        {"prompt": "p", "answer": "done", "finished": True},
        {"prompt": "p", "answer": "def f(", "finished": False},
        {"prompt": "p", "answer": "done"},  # a cache written before `finished` existed
    ])  # fmt: skip
    assert finished == old == "<|im_start|>user\np<|im_end|>\n<|im_start|>assistant\ndone<|im_end|>\n"
    assert cut == "<|im_start|>user\np<|im_end|>\n<|im_start|>assistant\ndef f("


def test_clean_answers_keep_finished_loop_free_parsing_answers():
    good = {"prompt": "p", "answer": "```python\ndef f():\n    return 1\n```\nIt returns 1.", "finished": True,
            "ids": list(range(30))}  # fmt: skip
    records = [
        good,
        {**good, "finished": False},  # cut at the token budget
        {**good, "ids": [1, 2, 3] * 10},  # the same 8 tokens 8 times: a loop
        {**good, "answer": "```python\ndef f(:\n```"},  # code that does not parse
        {**good, "answer": "Use `max`.", "ids": [5, 6]},  # no code block: nothing to parse
    ]
    assert clean_answers(records) == [good, records[-1]]
    assert clean_answers([{**good, "ids": [1, 2, 3] * 3}]) == [{**good, "ids": [1, 2, 3] * 3}]  # 8-gram twice: kept
    assert clean_answers([{**good, "ids": [1, 2, 3] * 10}], ngram=8, max_repeats=10) != []
    with pytest.raises(ValueError, match=r"records\[0\]. has no token ids"):
        clean_answers([{"prompt": "p", "answer": "a"}])
    with pytest.raises(ValueError, match="`ngram` must be an int >= 1, got 0"):
        clean_answers([good], ngram=0)


def test_assistant_only_masks_leave_the_prompts_out():
    tokenizer = _chat_tokenizer()
    records = [{"prompt": f"Please PROMPT {index}", "answer": CODE[index % len(CODE)]} for index in range(12)]
    texts = chat_texts(tokenizer, records)
    chars = chat_prompt_chars(tokenizer, records)
    assert all(text[n:].startswith(r["answer"]) for text, n, r in zip(texts, chars, records))
    plain = distillation_blocks(tokenizer, CODE, texts, block_size=8, tokens=400, chat_share=0.5, seed=1)
    data = distillation_blocks(tokenizer, CODE, texts, block_size=8, tokens=400, chat_share=0.5, seed=1,
                               chat_prompt_chars=chars)  # fmt: skip
    assert plain["loss_masks"] is None and data["blocks"] == plain["blocks"]  # the same data, with masks beside it
    assert [len(m) for m in data["loss_masks"]] == [len(b) for b in data["blocks"]]
    pairs = [(t, m) for block, mask in zip(data["blocks"], data["loss_masks"]) for t, m in zip(block, mask)]
    left_out = tokenizer.decode([t for t, m in pairs if not m])
    kept = tokenizer.decode([t for t, m in pairs if m])
    assert "PROMPT" in left_out and "user" in left_out and "return" not in left_out
    assert "PROMPT" not in kept and "return" in kept  # answers and code windows stay targets
    with pytest.raises(ValueError, match="chat_prompt_chars"):
        distillation_blocks(tokenizer, CODE, texts, block_size=8, tokens=400, chat_prompt_chars=chars[:-1])


def test_assistant_only_loss_counts_the_rows_that_predict_answer_tokens(pruned_pair):
    dense, pruned, tokenizer, kept = pruned_pair
    student = copy.deepcopy(pruned)
    ids = _eval_ids(tokenizer)
    labels = ids.clone()
    labels[:, :8] = -100  # a prompt of 8 tokens: row 7 is the first that predicts an answer token
    callback = FlabDistillationCallback(dense, kept_token_ids=kept)
    callback.on_train_begin(None, None, None, model=student)
    student.train()
    loss = student(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.detach()
    callback.on_train_end(None, None, None)
    with torch.no_grad():
        student_logits = student(input_ids=ids).logits
        teacher_logits = dense(kept[ids]).logits[..., kept]
    expected = kl_divergence(student_logits[:, 7:15], teacher_logits[:, 7:15])
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    assert float(loss) != pytest.approx(float(kl_divergence(student_logits, teacher_logits)), rel=1e-3)


def test_distillation_trains_on_masked_blocks_and_checks_them(pruned_pair):
    dense, pruned, tokenizer, kept = pruned_pair
    blocks = _blocks(tokenizer, tokens=256)
    masks = [[0] * 8 + [1] * 8 for _ in blocks]
    config = DistillationConfig(train_tokens=256, block_size=16, batch_size=4, learning_rate=3e-3, bf16=False,
                                progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="train_masks"):
        distill_recover(copy.deepcopy(pruned), tokenizer, dense, blocks, config, kept_token_ids=kept,
                        train_masks=masks[:-1])  # fmt: skip
    recovered, log = distill_recover(copy.deepcopy(pruned), tokenizer, dense, blocks, config, kept_token_ids=kept,
                                     train_masks=masks)  # fmt: skip
    assert log["steps"] == 4 and all(value > 0 for value in log["kl"])
