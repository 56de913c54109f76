# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""How close a pruned model's next-token distributions are to the dense model's: perplexity, KL and agreement.

Example:
    >>> from flab_hf.quality import quality
    >>> quality(pruned, dense, kept[ids], kept)["kl_to_dense"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import math

import torch

from compress_utils.distributed import my_share


@torch.no_grad()
def quality(model, dense, ids_original: torch.Tensor, kept: torch.Tensor | None, batch_size: int = 4) -> dict:
    """Perplexity, KL(P_dense restricted to the model's vocabulary || P_model) and greedy next-token agreement on
    ``ids_original`` (ids of the *dense* tokenizer, all inside ``kept``; ``kept`` None = the same vocabulary).

    Both models run in eval mode as they are (no grad). Under ``accelerate launch`` each process scores its share of
    the batches and the sums are added up, so every process returns the numbers of the whole set.
    """
    batches, state = my_share(list(torch.split(ids_original, batch_size)))
    device = next(model.parameters()).device
    kept = None if kept is None else kept.to(device)
    sums = torch.zeros(5, dtype=torch.float64)  # nll, dense nll, kl, agreements, predicted tokens
    training = model.training, dense.training
    model.eval()
    dense.eval()
    try:
        for batch in batches:
            batch = batch.to(device)
            dense_logits = dense(batch).logits.float()[:, :-1]
            inputs = batch if kept is None else torch.searchsorted(kept, batch)
            logits = model(inputs).logits.float()[:, :-1]
            targets = batch[:, 1:]
            dense_log = torch.log_softmax(dense_logits, -1)
            restricted = dense_logits if kept is None else dense_logits[..., kept]
            reference = torch.log_softmax(restricted, -1)
            log_q = torch.log_softmax(logits, -1)
            new_targets = targets if kept is None else torch.searchsorted(kept, targets.contiguous())
            predicted = logits.argmax(-1) if kept is None else kept[logits.argmax(-1)]
            sums += torch.tensor([
                float(-log_q.gather(-1, new_targets[..., None]).sum()),
                float(-dense_log.gather(-1, targets[..., None]).sum()),
                float((reference.exp() * (reference - log_q)).sum()),
                float((predicted == dense_logits.argmax(-1)).sum()),
                targets.numel(),
            ], dtype=torch.float64)  # fmt: skip
    finally:
        model.train(training[0])
        dense.train(training[1])
    if state is not None:
        total = sums.to(state.device)  # nccl reduces on the GPU, gloo on the CPU
        torch.distributed.all_reduce(total)
        sums = total.cpu()
    nll, dense_nll, kl, agree, count = sums.tolist()
    return {
        "perplexity": round(float(torch.exp(torch.tensor(nll / count))), 4),
        "dense_perplexity": round(float(torch.exp(torch.tensor(dense_nll / count))), 4),
        "kl_to_dense": round(kl / count, 5),
        "next_token_agreement": round(agree / count, 4),
        "tokens": int(count),
    }


@torch.no_grad()
def text_perplexity(model, tokenizer, texts: list[str], reference_tokenizer=None) -> dict:
    """Perplexity of ``model`` on ``texts`` per token of ``reference_tokenizer``: comparable across vocabularies.

    A pruned vocabulary cuts some text into more, smaller pieces, and per-token perplexities of different
    tokenizations are not comparable (more pieces, each easier). Here each text is read in the model's own
    tokenization, its total negative log-likelihood summed, and the sum divided by the number of tokens the
    *reference* tokenizer (the dense model's) makes of the same texts; for the dense model it is its ordinary
    perplexity. The first token of each text is not predicted and not counted on either side. Texts must fit the
    model's context.

    Example:
        >>> text_perplexity(pruned, pruned_tokenizer, chunks, reference_tokenizer=dense_tokenizer)  # doctest: +SKIP
        {'perplexity': 8.4, 'tokens': 7321, 'reference_tokens': 7168}
    """
    reference_tokenizer = reference_tokenizer or tokenizer
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    nll, own, reference = 0.0, 0, 0
    try:
        for text in texts:
            ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]], device=device)
            if ids.shape[1] < 2:
                continue
            log_q = torch.log_softmax(model(ids).logits.float()[:, :-1], -1)
            nll -= float(log_q.gather(-1, ids[:, 1:, None]).sum())
            own += ids.shape[1] - 1
            reference += len(reference_tokenizer(text, add_special_tokens=False)["input_ids"]) - 1
    finally:
        model.train(training)
    if reference < 1:
        raise ValueError("`texts` hold no text of two or more tokens; give longer texts.")
    return {"perplexity": round(math.exp(nll / reference), 4), "tokens": own, "reference_tokens": reference}


__all__ = ["quality", "text_perplexity"]
