"""Layer pruning: greedy iterative KL search (with prefix reuse), ShortGPT cosine, renumbering, generation."""

import copy

import pytest
import torch
from flab_testing import FAMILY_NAMES, tiny_model
from transformers import AutoModelForCausalLM

from flab_hf import remove_layers_, select_layers_cosine, select_layers_kl
from flab_hf.pruning import CalibrationRunner, mean_kl


def calibration(vocab=300, n=4, length=12):
    return torch.randint(3, vocab, (n, length), generator=torch.Generator().manual_seed(1))


def full_log_probs(model, ids):
    with torch.no_grad():
        return [torch.log_softmax(model(ids[i : i + 2]).logits.float(), -1) for i in range(0, len(ids), 2)]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_kl_search_matches_brute_force(family):
    model = tiny_model(family, layers=4)
    ids = calibration()
    runner = CalibrationRunner(model, ids, batch_size=2)
    references = runner.full_log_probs()
    torch.testing.assert_close(torch.cat(references), torch.cat(full_log_probs(model, ids)), atol=1e-5, rtol=1e-5)
    search = select_layers_kl(model, runner, references, 2, progress=False)
    assert len(model.model.layers) == 4  # the search leaves the model alone
    # brute force: delete each remaining layer from a copy and run the stock forward
    current, expected = list(range(4)), []
    for _ in range(2):
        scores = {}
        for layer in current:
            candidate = remove_layers_(copy.deepcopy(model), [i for i in range(4) if i not in current] + [layer])
            scores[layer] = mean_kl(references, full_log_probs(candidate, ids))
        best = min(scores, key=scores.get)
        expected.append((best, scores[best]))
        current.remove(best)
    assert search["removed"] == [layer for layer, _ in expected]
    for got, (_, want) in zip(search["kl"], expected):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-7)


def test_cosine_removes_lowest_block_influence():
    model = tiny_model("llama", layers=4)
    runner = CalibrationRunner(model, calibration(), batch_size=4)
    result = select_layers_cosine(model, runner, 2)
    scores = result["scores"]
    assert result["removed"] == sorted(sorted(scores, key=scores.get)[:2])
    assert all(0 <= value <= 2 for value in scores.values())


def test_pruned_model_is_a_normal_model(tmp_path):
    # mixed sliding/full attention: `layer_types` must shrink with the layers
    model = tiny_model("qwen2", layers=4, use_sliding_window=True, sliding_window=8, max_window_layers=2)
    assert model.config.layer_types == ["full_attention"] * 2 + ["sliding_attention"] * 2
    remove_layers_(model, [0, 2])
    assert model.config.num_hidden_layers == 2
    assert model.config.layer_types == ["full_attention", "sliding_attention"]
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    prompt = torch.tensor([[5, 17, 33, 8, 90, 41]])
    with_cache = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True, pad_token_id=2)
    without = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False, pad_token_id=2)
    assert with_cache.tolist() == without.tolist()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model) and loaded.config.layer_types == model.config.layer_types
    ids = calibration(n=2, length=20)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize("n", [4, 5, -1])
def test_too_many_layers(n):
    model = tiny_model("llama", layers=4)
    runner = CalibrationRunner(model, calibration(), batch_size=4)
    with pytest.raises(ValueError, match="layers_to_prune"):
        select_layers_kl(model, runner, runner.full_log_probs(), n, progress=False)
    with pytest.raises(ValueError, match="layers_to_prune"):
        select_layers_cosine(model, runner, n)
