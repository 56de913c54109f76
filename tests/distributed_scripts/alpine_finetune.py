"""ALPINE fine-tuning in 2 processes through ``benchmarks.alpine_finetune.finetune_mode`` (what ``python -m benchmarks alpine-finetune`` runs).

A tiny stock RoBERTa is saved and fine-tuned as an ALPINE classifier on a separable toy task; the test checks the
loss history, that both processes end with the same weights and the same evaluation (sharded, gathered), and that
the main process alone saved the model.
"""

import os
import sys

import torch
from datasets import Dataset
from ddp_common import Recorder, write
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

from alpine_hf.callbacks import find_alpine_encoder, reduce_alpine_stats
from benchmarks.alpine_finetune import FinetuneConfig, finetune_mode


def toy_split(count: int, seed: int) -> Dataset:
    """``<s> body </s>``: label 1 bodies use ids 10-49, label 0 bodies ids 50-98 (separable by a tiny encoder)."""
    generator = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "labels": []}
    for index in range(count):
        label = index % 2
        length = int(torch.randint(6, 15, (1,), generator=generator))
        low, high = (10, 50) if label else (50, 99)
        rows["input_ids"].append([0, *torch.randint(low, high, (length,), generator=generator).tolist(), 2])
        rows["labels"].append(label)
    return Dataset.from_dict(rows)


def main(out: str) -> None:
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        initializer_range=0.2,  # larger than BERT's 0.02 so that a few steps visibly learn
    )  # fmt: skip
    stock = os.path.join(out, f"stock-{os.environ.get('LOCAL_RANK', '0')}")  # one folder per process: no race
    RobertaForSequenceClassification(config).save_pretrained(stock)
    vocab = {f"t{i}": i for i in range(99)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t3")), pad_token="t1"
    )
    data = {"train": toy_split(64, seed=1), "test": toy_split(32, seed=2)}
    settings = FinetuneConfig(
        model=stock, modes=("all",), batch_size=4, epochs=2.0, learning_rate=5e-3, seed=0,
        output_dir=os.path.join(out, "alpine_runs"), track_emissions="FRA",
    )  # fmt: skip
    recorder = Recorder()
    result = finetune_mode(
        "all", data, tokenizer, settings, save_to=os.path.join(out, "alpine_saved"), callbacks=[recorder],
        logging_steps=1, save_steps=8,
    )  # fmt: skip
    local = find_alpine_encoder(recorder.model).alpine_stats  # this process's share of the evaluation
    lengths = [len(ids) for ids in data["test"]["input_ids"]]
    total = reduce_alpine_stats(local)
    write(
        out,
        "alpine",
        {
            **recorder.result,
            "result": result,
            "local_eval_sequences": local["sequences"],
            "total_eval_sequences": total["sequences"],
            "test_size": len(lengths),
            "test_mean_length": sum(lengths) / len(lengths),
        },
    )


if __name__ == "__main__":
    main(sys.argv[1])
