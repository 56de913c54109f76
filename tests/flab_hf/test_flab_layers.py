"""Layer pruning: greedy iterative KL search (with prefix reuse), ShortGPT cosine, renumbering, generation."""

import copy

import pytest
import torch
from flab_testing import FAMILY_NAMES, tiny_model
from transformers import AutoModelForCausalLM

from flab_hf import remove_layers_, select_layers_block, select_layers_cosine, select_layers_kl
from flab_hf.pruning import CalibrationRunner, mean_kl


def calibration(vocab=300, n=4, length=12):
    return torch.randint(3, vocab, (n, length), generator=torch.Generator().manual_seed(1))


def full_log_probs(model, ids):
    with torch.no_grad():
        return [torch.log_softmax(model(ids[i : i + 2]).logits.float(), -1) for i in range(0, len(ids), 2)]


def searchable(family, layers):
    """A tiny model, its calibration ids, a runner over them and the model's own log-probs (the references)."""
    model, ids = tiny_model(family, layers=layers), calibration()
    runner = CalibrationRunner(model, ids, batch_size=2)
    return model, ids, runner, runner.full_log_probs()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_kl_search_matches_brute_force(family):
    model, ids, runner, references = searchable(family, layers=4)
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


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_block_search_matches_brute_force(family):
    model, ids, runner, references = searchable(family, layers=5)
    search = select_layers_block(model, runner, references, 2, progress=False)
    assert len(model.model.layers) == 5  # the search leaves the model alone
    expected = {start: mean_kl(references, full_log_probs(remove_layers_(copy.deepcopy(model), [start, start + 1]), ids))
                for start in range(4)}  # fmt: skip
    assert search["scores"] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    best = min(expected, key=expected.get)
    assert search["removed"] == [best, best + 1] and search["kl"] == pytest.approx(expected[best], rel=1e-4, abs=1e-7)
    assert select_layers_block(model, runner, references, 0, progress=False)["removed"] == []


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


def test_flab_prune_removes_one_contiguous_block_with_the_block_method():
    from flab_testing import CODE, PROSE, tiny_tokenizer

    from flab_hf import FlabConfig, flab_prune

    torch.manual_seed(0)
    config = FlabConfig(vocab=False, layers_to_prune=2, layer_method="block", ffn_neurons=0, calibration_samples=2,
                        calibration_length=16, keep_chat=False, progress=False)  # fmt: skip
    pruned, _, report = flab_prune(tiny_model(layers=5), tiny_tokenizer(), (CODE + PROSE) * 3, config)
    first, second = report["removed_layers"]
    assert second == first + 1 and len(pruned.model.layers) == 3
    assert report["steps"][-1]["method"] == "block" and len(report["layer_scores"][0]) == 4
