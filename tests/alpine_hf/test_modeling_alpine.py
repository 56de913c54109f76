"""ALPINE modeling: equivalence with stock models, the algorithm against a literal reference, edge cases."""

import pytest
import torch
from alpine_testing import make_batch, special_ids, tiny_config
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    BertModel,
    RobertaForSequenceClassification,
    RobertaModel,
)

import alpine_hf.modeling_alpine as modeling
from alpine_hf import (
    AlpineBertForMaskedLM,
    AlpineBertForSequenceClassification,
    AlpineBertModel,
    AlpineRobertaForMaskedLM,
    AlpineRobertaForSequenceClassification,
    AlpineRobertaModel,
    alpine_keep_mask,
    alpine_repack,
    register_alpine_scoring,
    sdpa_attention,
)

MODELS = {"roberta": AlpineRobertaModel, "bert": AlpineBertModel}
CLASSIFIERS = {"roberta": AlpineRobertaForSequenceClassification, "bert": AlpineBertForSequenceClassification}
STOCK = {"roberta": RobertaModel, "bert": BertModel}
STOCK_CLASSIFIERS = {"roberta": RobertaForSequenceClassification, "bert": BertForSequenceClassification}


def build(family, **overrides):
    return MODELS[family](tiny_config(family, **overrides)).eval()


# ---------------------------------------------------------------------------------------------------------------
# A literal, per-sequence transcription of the paper's Algorithms 1 and 2 (eager attention, Python control flow).
# ---------------------------------------------------------------------------------------------------------------


def reference_forward(model, input_ids, special_ids_set):
    """One unpadded sequence through the encoder, pruning as Algorithm 2 says. Returns (hidden, lengths)."""
    config = model.config
    hidden = model.embeddings(input_ids=input_ids[None])[0]
    special = [i == 0 or i == len(input_ids) - 1 or int(t) in special_ids_set for i, t in enumerate(input_ids)]
    lengths = []
    for index, layer in enumerate(model.encoder.layer):
        attention = layer.attention.self
        n = hidden.shape[0]
        heads, size = config.num_attention_heads, attention.attention_head_size
        q = attention.query(hidden).view(n, heads, size).transpose(0, 1)
        k = attention.key(hidden).view(n, heads, size).transpose(0, 1)
        v = attention.value(hidden).view(n, heads, size).transpose(0, 1)
        probs = torch.softmax(q @ k.transpose(-1, -2) * attention.scaling, dim=-1)  # (heads, n, n)
        context = (probs @ v).transpose(0, 1).reshape(n, -1)
        attended = layer.attention.output(context, hidden)
        if index in config.alpine_layer_indices:
            alpha = config.alpine_alpha[index] if isinstance(config.alpine_alpha, list) else config.alpine_alpha
            scores = probs.mean(0).mean(0)  # mean over heads, then over query rows (column-wise)
            candidates = [i for i in range(n) if not special[i]]
            if candidates:
                values = torch.stack([scores[i] for i in candidates]).double()
                mu, sigma = values.mean(), values.std(unbiased=False)
                low, high = mu - alpha * sigma, mu + alpha * sigma
                tol = 1e-6 * abs(mu)
                keep = [special[i] or (low - tol <= scores[i] <= high + tol) for i in range(n)]
            else:
                keep = [True] * n
            rows = [attended[i] for i in range(n) if keep[i]]
            new_special = [special[i] for i in range(n) if keep[i]]
            pruned = [attended[i] for i in range(n) if not keep[i]]
            if config.alpine_merge and pruned:
                rows.append(torch.stack(pruned).mean(0))
                new_special.append(False)
            attended, special = torch.stack(rows), new_special
        hidden = layer.feed_forward_chunk(attended[None])[0]
        lengths.append(hidden.shape[0])
    return hidden, lengths


@pytest.mark.parametrize("layers", ["all", "even", "odd", [1, 2]])
@pytest.mark.parametrize("merge", [True, False])
def test_batched_model_matches_literal_reference(family, layers, merge):
    model = build(family, alpine_layers=layers, alpine_merge=merge, alpine_alpha=0.8)
    input_ids, mask = make_batch(family, [20, 13, 7, 17], seed=1)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
        for row in range(len(input_ids)):
            length = int(mask[row].sum())
            expected, lengths = reference_forward(model, input_ids[row, :length], set(model.config.alpine_special_ids))
            assert out.kept_lengths[:, row].tolist() == lengths
            got = out.last_hidden_state[row, : lengths[-1]]
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layers", ["all", [0, 2, 3]])
def test_per_layer_alpha_matches_literal_reference(family, layers):
    # a narrow window in layer 0, a wide one in layer 1: each layer must use its own width
    model = build(family, alpine_layers=layers, alpine_alpha=[0.3, 1.5, 0.6, 1.0])
    input_ids, mask = make_batch(family, [24, 15, 9], seed=3)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
        for row in range(len(input_ids)):
            length = int(mask[row].sum())
            expected, lengths = reference_forward(model, input_ids[row, :length], set(model.config.alpine_special_ids))
            assert out.kept_lengths[:, row].tolist() == lengths
            torch.testing.assert_close(out.last_hidden_state[row, : lengths[-1]], expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # the same number everywhere would give other lengths
        scalar = build(family, alpine_layers=layers, alpine_alpha=0.8)(input_ids=input_ids, attention_mask=mask)
    assert out.kept_lengths.tolist() != scalar.kept_lengths.tolist()


def test_per_layer_alpha_of_equal_values_equals_one_number(family):
    input_ids, mask = make_batch(family, [30, 18], seed=4)
    torch.manual_seed(0)
    listed = build(family, alpine_layers="all", alpine_alpha=[0.7] * 4)
    torch.manual_seed(0)
    number = build(family, alpine_layers="all", alpine_alpha=0.7)
    with torch.no_grad():
        a, b = listed(input_ids=input_ids, attention_mask=mask), number(input_ids=input_ids, attention_mask=mask)
    assert a.kept_lengths.tolist() == b.kept_lengths.tolist() and int(a.kept_lengths[-1].max()) < 30
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=0, rtol=0)
    assert listed.config.alpine_alpha_for(3) == 0.7 and number.config.alpine_alpha_for(3) == 0.7


def test_pruning_actually_shortens_sequences(family):
    model = build(family, alpine_layers="all", alpine_alpha=0.5)
    input_ids, mask = make_batch(family, [40, 40], seed=2)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    assert out.kept_lengths[-1].max() < 40
    assert (out.kept_lengths[1:] <= out.kept_lengths[:-1]).all()
    assert out.last_hidden_state.shape[1] == int(out.kept_lengths[-1].max())


# ---------------------------------------------------------------------------------------------------------------
# Equivalence with stock models
# ---------------------------------------------------------------------------------------------------------------


def test_layers_none_equals_stock_model(family, tmp_path):
    stock = STOCK_CLASSIFIERS[family](tiny_config(family, alpine=False)).eval()
    stock.save_pretrained(tmp_path)
    model, info = CLASSIFIERS[family].from_pretrained(tmp_path, alpine_layers="none", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    model.eval()
    input_ids, mask = make_batch(family, [30, 11, 19])
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids=input_ids, attention_mask=mask).logits,
            stock(input_ids=input_ids, attention_mask=mask).logits,
            atol=1e-5,
            rtol=0,
        )


def test_stock_encoder_checkpoint_loads_into_classifier_without_surprises(family, tmp_path):
    STOCK[family](tiny_config(family, alpine=False)).save_pretrained(tmp_path)
    _, info = CLASSIFIERS[family].from_pretrained(tmp_path, alpine_alpha=1.0, output_loading_info=True)
    # the new head only; RoBERTa classifiers drop the pooler exactly as the stock class does
    assert all("pooler" in key for key in info["unexpected_keys"])
    assert all("classifier" in key or "pooler" in key for key in info["missing_keys"])
    assert any("classifier" in key for key in info["missing_keys"])


def test_graphcodebert_and_unixcoder_shapes_load_as_roberta(tmp_path):
    # UniXcoder: RoBERTa with 1026 positions; a 1024-token input must run.
    config = tiny_config("roberta", alpine=False, max_position_embeddings=1026)
    RobertaModel(config).save_pretrained(tmp_path)
    model = AlpineRobertaModel.from_pretrained(tmp_path, alpine_layers="all").eval()
    input_ids, mask = make_batch("roberta", [1024, 700])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    assert out.kept_lengths[0, 0] < 1024 and torch.isfinite(out.last_hidden_state).all()


# ---------------------------------------------------------------------------------------------------------------
# Algorithm details and edge cases
# ---------------------------------------------------------------------------------------------------------------


def test_keep_mask_window_and_specials():
    scores = torch.tensor([[5.0, 1.0, 2.0, 3.0, 10.0, 5.0, 0.0]])
    valid = torch.tensor([[True] * 6 + [False]])
    special = torch.tensor([[True, False, False, False, False, True, False]])
    # candidates 1, 2, 3, 10: mu = 4, sigma = sqrt(((9 + 4 + 1 + 36) / 4)) = 3.5355
    keep = alpine_keep_mask(scores, valid, special, alpha=1.0)
    assert keep.tolist() == [[True, True, True, True, False, True, False]]
    keep = alpine_keep_mask(scores, valid, special, alpha=0.5)  # window [2.23, 5.77]
    assert keep.tolist() == [[True, False, False, True, False, True, False]]


def test_equal_scores_keep_everything():
    scores = torch.full((2, 9), 1.0 / 3.0)  # sigma = 0 but mu is not exactly 1/3 after summation
    valid = torch.ones(2, 9, dtype=torch.bool)
    special = torch.zeros(2, 9, dtype=torch.bool)
    assert alpine_keep_mask(scores, valid, special, alpha=1e-9).all()


def test_empty_window_keeps_specials_and_merges_without_nan(family):
    model = build(family, alpine_layers=[0], alpine_alpha=1e-12)
    input_ids, mask = make_batch(family, [12, 9])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    # CLS + SEP + one merged row survive layer 0
    assert out.kept_lengths[0].tolist() == [3, 3]
    assert torch.isfinite(out.last_hidden_state).all()
    assert out.token_positions.tolist() == [[0, 11, -1], [0, 8, -1]]


def test_nothing_pruned_adds_no_merged_row(family):
    # Only CLS and SEP: nothing is a candidate, nothing is pruned, nothing is merged, nothing is NaN.
    model = build(family, alpine_layers="all")
    input_ids, mask = make_batch(family, [2])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    assert out.kept_lengths[:, 0].tolist() == [2] * 4
    assert out.token_positions.tolist() == [[0, 1]]
    assert torch.isfinite(out.last_hidden_state).all()


def test_every_sep_survives_and_merged_row_is_never_taken_for_sep():
    # A RoBERTa pair: <s> a </s></s> b </s>; the reference code locates SEP at sum(mask) - 1, which after a merge is
    # the merged row. Here every real SEP keeps its input position through all layers.
    model = build("roberta", alpine_layers="all", alpine_alpha=0.3)
    input_ids, mask = make_batch("roberta", [30, 24], seed=3, pair_at=10)
    sep_positions = [set((input_ids[row] == 2).nonzero().flatten().tolist()) for row in range(2)]
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    for row in range(2):
        positions = out.token_positions[row, : out.kept_lengths[-1, row]].tolist()
        assert sep_positions[row] <= set(positions)
        assert positions[0] == 0
        assert positions[-1] == -1  # the merged row is last and is not a SEP
        assert positions.count(-1) == 1  # merged rows are re-merged, never stacked up


def test_kept_tokens_keep_their_order(family):
    model = build(family, alpine_layers="all", alpine_alpha=0.7)
    input_ids, mask = make_batch(family, [25, 16, 21], seed=4)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask)
    for row in range(3):
        real = [p for p in out.token_positions[row].tolist() if p >= 0]
        assert real == sorted(real)


def test_repack_merge_is_mean_of_pruned_rows_excluding_padding():
    hidden = torch.arange(2 * 5 * 2, dtype=torch.float32).view(2, 5, 2)
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    keep = torch.tensor([[1, 0, 1, 0, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    state = modeling._TokenState(
        valid=valid,
        special=torch.zeros_like(valid),
        positions=torch.where(valid, torch.arange(5), -1),
    )
    packed, new = alpine_repack(hidden, keep, state, merge=True)
    assert new.valid.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert new.positions.tolist() == [[0, 2, 4, -1], [0, 1, 2, -1]]
    torch.testing.assert_close(packed[0, 3], (hidden[0, 1] + hidden[0, 3]) / 2)
    torch.testing.assert_close(packed[0, :3], hidden[0, [0, 2, 4]])
    torch.testing.assert_close(packed[1, :3], hidden[1, :3])  # sequence 1 lost nothing: no merged row
    packed, new = alpine_repack(hidden, keep, state, merge=False)
    assert new.valid.tolist() == [[1, 1, 1], [1, 1, 1]]


def test_tiled_scores_equal_explicit_attention_means(monkeypatch):
    monkeypatch.setattr(modeling, "_TILE_BYTES", 3 * 17 * 17 * 4)  # force several tiles with a ragged last one
    q, k, v = (torch.randn(2, 4, 17, 8) for _ in range(3))
    valid = torch.ones(2, 17, dtype=torch.bool)
    valid[1, 12:] = False
    out, scores = modeling._tiled_attention_scores(q, k, v, valid, scaling=8**-0.5)
    logits = q @ k.transpose(-1, -2) * 8**-0.5
    probs = logits.masked_fill(~valid[:, None, None, :], float("-inf")).softmax(-1)
    expected = (probs * valid[:, None, :, None]).sum(2).mean(1) / valid.sum(-1, keepdim=True)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[0], (probs @ v)[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[1, :, :12], (probs @ v)[1, :, :12], atol=1e-6, rtol=1e-5)


def test_bf16_runs_and_tracks_fp32(family):
    model = build(family, alpine_layers=[2], alpine_alpha=2.0)
    input_ids, mask = make_batch(family, [20, 14])
    with torch.no_grad():
        fp32 = model(input_ids=input_ids, attention_mask=mask)
        bf16 = model.to(torch.bfloat16)(input_ids=input_ids, attention_mask=mask)
    assert bf16.last_hidden_state.dtype == torch.bfloat16
    # a wide window (alpha 2) keeps bf16 rounding from flipping keep decisions on these seeded inputs
    assert torch.equal(fp32.kept_lengths, bf16.kept_lengths)
    torch.testing.assert_close(bf16.last_hidden_state.float(), fp32.last_hidden_state, atol=0.1, rtol=0.05)


def test_batch_of_one_and_determinism(family):
    model = build(family, alpine_layers="all")
    input_ids, mask = make_batch(family, [23])
    with torch.no_grad():
        first = model(input_ids=input_ids, attention_mask=mask)
        second = model(input_ids=input_ids)  # no mask: everything is real
    assert torch.equal(first.last_hidden_state, second.last_hidden_state)
    assert torch.equal(first.kept_lengths, second.kept_lengths)


def test_training_gradients_flow_through_kept_and_merged_rows(family):
    torch.manual_seed(0)
    model = CLASSIFIERS[family](tiny_config(family, alpine_layers="all", alpine_alpha=0.5)).train()
    input_ids, mask = make_batch(family, [30, 22], seed=5)
    out = model(input_ids=input_ids, attention_mask=mask, labels=torch.tensor([0, 1]))
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    last = model.config.num_hidden_layers - 1
    assert any(g.abs().sum() > 0 for n, g in grads.items() if f"layer.{last}.output.dense" in n)


def test_training_with_dropout_matches_eval_decisions_shape(family):
    model = CLASSIFIERS[family](
        tiny_config(family, alpine_layers="even", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    ).train()
    input_ids, mask = make_batch(family, [18, 9])
    out = model(input_ids=input_ids, attention_mask=mask, labels=torch.tensor([1, 0]))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_masked_lm_gathers_labels_to_surviving_rows(family):
    cls = AlpineRobertaForMaskedLM if family == "roberta" else AlpineBertForMaskedLM
    model = cls(tiny_config(family, alpine_layers="all", alpine_alpha=0.6)).eval()
    input_ids, mask = make_batch(family, [26, 15], seed=6)
    labels = torch.where(mask.bool(), input_ids, -100)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    assert out.logits.shape[:2] == out.labels.shape
    rows = out.token_positions >= 0
    expected = torch.gather(input_ids, 1, out.token_positions.clamp(min=0))
    assert torch.equal(out.labels[rows], expected[rows])
    assert (out.labels[~rows] == -100).all()
    assert torch.isfinite(out.loss)


def test_custom_scoring_function_is_used():
    calls = []

    @register_alpine_scoring("test_value_norm")
    def value_norm(inputs):
        calls.append(inputs.query.shape)
        return sdpa_attention(inputs), inputs.value.norm(dim=-1).mean(1)

    try:
        model = build("roberta", alpine_scoring="test_value_norm", alpine_layers=[1])
        input_ids, mask = make_batch("roberta", [15])
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=mask)
        assert len(calls) == 1
    finally:
        modeling.ALPINE_SCORING_FUNCTIONS.pop("test_value_norm")


def test_auto_classes_are_registered(family):
    config = tiny_config(family, alpine_layers="odd")
    assert type(AutoModel.from_config(config)) is MODELS[family]
    assert type(AutoModelForSequenceClassification.from_config(config)) is CLASSIFIERS[family]
    assert AutoConfig.for_model(config.model_type).__class__ is type(config)


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpine_alpha": 0}, "alpine_alpha"),
        ({"alpine_alpha": -1.5}, "alpine_alpha"),
        ({"alpine_layers": "middle"}, "alpine_layers"),
        ({"alpine_layers": [0, 4]}, "alpine_layers"),
        ({"alpine_layers": [-1]}, "alpine_layers"),
        ({"alpine_layers": [1, 3, 1]}, r"`alpine_layers=\[1, 3, 1\]` names layer\(s\) \[1\] more than once.*\[1, 3\]"),
        ({"alpine_alpha": [1.0, 1.0, 1.0]}, r"`alpine_alpha` needs one .* \(4 values for this 4-layer model\), got 3"),
        ({"alpine_alpha": []}, r"`alpine_alpha` needs one .* got 0"),
        ({"alpine_alpha": [1.0, 0.0, 1.0, 1.0]}, r"`alpine_alpha` holds 0.0 for layer 1 .* must be a number > 0"),
        ({"alpine_alpha": [1.0, 1.0, -2, 1.0]}, r"`alpine_alpha` holds -2 for layer 2"),
    ],
)
def test_bad_settings_raise_value_error(family, settings, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(family, **settings)


def test_a_non_number_alpha_is_refused_by_the_strict_config(family):
    # the @strict type check runs before `check_alpine_settings` and names the field and the value
    with pytest.raises(StrictDataclassFieldValidationError, match=r"alpine_alpha.*\[1.0, 'wide'"):
        tiny_config(family, alpine_alpha=[1.0, "wide", 1.0, 1.0])


def test_alpha_for_a_layer_outside_the_model_is_refused(family):
    with pytest.raises(ValueError, match=r"`layer_index` must be a layer of this 4-layer model \(0 to 3\), got 4"):
        tiny_config(family, alpine_alpha=[1.0, 1.0, 1.0, 1.0]).alpine_alpha_for(4)


def test_unknown_scoring_raises(family):
    with pytest.raises(ValueError, match="alpine_scoring='nope'.*register_alpine_scoring"):
        build(family, alpine_scoring="nope")


def test_wrong_architecture_checkpoint_raises(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'gpt2'.*AlpineRobertaConfig"):
        AlpineRobertaModel.from_pretrained(tmp_path)
    tiny_config("bert", alpine=False).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert'.*AlpineBert"):
        AlpineRobertaModel.from_pretrained(tmp_path)


def test_input_longer_than_position_table_raises(family):
    model = build(family)
    limit = 64
    cls, sep, pad = special_ids(family)
    with pytest.raises(ValueError, match=f"{limit + 1} tokens.*at most {limit}.*truncation"):
        model(input_ids=torch.full((1, limit + 1), 7))


def test_output_attentions_is_refused_clearly(family):
    model = build(family)
    input_ids, mask = make_batch(family, [10])
    with pytest.raises(ValueError, match="output_attentions"):
        model(input_ids=input_ids, attention_mask=mask, output_attentions=True)


def test_output_hidden_states_has_one_entry_per_layer_plus_embeddings(family):
    model = build(family, alpine_layers="all", alpine_alpha=0.5)
    input_ids, mask = make_batch(family, [30, 20])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.hidden_states[0].shape[1] == 30 and out.hidden_states[-1] is out.last_hidden_state


def test_tiled_bf16_path_tracks_fp32(monkeypatch):
    monkeypatch.setattr(modeling, "_TILE_BYTES", 2 * 17 * 17 * 6)  # several tiles in the low-precision sizing
    q, k, v = (torch.randn(2, 4, 17, 8) for _ in range(3))
    valid = torch.ones(2, 17, dtype=torch.bool)
    valid[0, 10:] = False
    out, scores = modeling._tiled_attention_scores(q, k, v, valid, scaling=8**-0.5)
    low_out, low_scores = modeling._tiled_attention_scores(
        q.bfloat16(), k.bfloat16(), v.bfloat16(), valid, scaling=8**-0.5
    )
    assert low_out.dtype == torch.bfloat16 and low_scores.dtype == torch.float32
    torch.testing.assert_close(low_scores, scores, atol=2e-3, rtol=2e-2)
    torch.testing.assert_close(low_out.float()[1], out[1], atol=3e-2, rtol=3e-2)
