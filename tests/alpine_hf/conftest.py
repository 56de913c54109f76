"""Fixtures of the ALPINE tests (the tiny models themselves are in ``alpine_testing``)."""

import pytest
import torch


@pytest.fixture(params=["roberta", "bert"])
def family(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
