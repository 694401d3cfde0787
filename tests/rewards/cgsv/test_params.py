"""Tests of the flat parameter vectors (docs/cgsv.md §2)."""

from __future__ import annotations

import torch

from rewards.cgsv.params import (
    add_to_parameters,
    assign_parameters,
    flatten_parameters,
    layer_sizes,
)
from tests.rewards.cgsv.helpers import tiny_model


def test_flatten_assign_add_round_trip():
    # Prepare
    model = tiny_model()
    sizes = layer_sizes(model)
    flat = torch.arange(sum(sizes), dtype=torch.float32)
    # Execute
    assign_parameters(model, flat)
    add_to_parameters(model, torch.ones_like(flat))
    # Assert: named_parameters() order, copies (not views of `flat`)
    assert sizes == [p.numel() for _, p in model.named_parameters()]
    assert torch.equal(flatten_parameters(model), flat + 1)
    flat[0] = -100.0
    assert flatten_parameters(model)[0] == 1.0
