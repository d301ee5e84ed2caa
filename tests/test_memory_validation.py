"""The memory estimates against real allocations: every zoo model runs on real CPU
tensors under a storage watch, and the meta-device estimates of its inference peak and
of its saved activations must be within 5% of what was measured."""

from __future__ import annotations

import pytest
import torch

from archstat.memory import estimate_memory
from archstat.realrun import measure_forward, smallest_input, zoo_model
from archstat.zoo import list_models

TOLERANCE = 0.05
BATCH = 2  # batch norm in training needs more than one value per channel at 1x1 maps
# Every zoo model on real CPU tensors is `slow` (pytest -m "not slow" skips it); resnet18
# stays in the development loop.
ZOO = [n if n == "resnet18" else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]


@pytest.mark.parametrize("name", ZOO)
def test_estimates_match_real_allocations(name: str) -> None:
    shape = smallest_input(name, BATCH)
    inference = estimate_memory(name, input_shape=shape, batch=BATCH).estimates[0]
    training = estimate_memory(name, input_shape=shape, batch=BATCH, train=True).estimates[0]

    model = zoo_model(name)
    inputs = (torch.randn(BATCH, *shape),)
    real = measure_forward(model, inputs)
    real_train = measure_forward(model, inputs, train=True)

    assert real.peak_activation_bytes > 0 and real_train.saved_activation_bytes > 0
    assert inference.peak_activation_bytes == pytest.approx(real.peak_activation_bytes,
                                                            rel=TOLERANCE)
    assert training.saved_activation_bytes == pytest.approx(real_train.saved_activation_bytes,
                                                            rel=TOLERANCE)
    # the training forward's peak: what is saved plus what is in flight
    assert training.peak_activation_bytes == pytest.approx(real_train.peak_activation_bytes,
                                                           rel=TOLERANCE)
