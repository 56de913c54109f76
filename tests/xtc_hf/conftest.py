import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel


@pytest.fixture
def tiny_gpt2():
    """A random 4-layer GPT-2 (hidden 32, vocab 99), the RobertaModelTester-sized teacher of the unit tests."""
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=4, n_embd=32, n_head=2, vocab_size=99, n_positions=64, bos_token_id=0, eos_token_id=0, pad_token_id=0
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def input_ids():
    torch.manual_seed(1)
    return torch.randint(1, 99, (2, 20))
