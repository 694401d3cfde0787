"""Tests for rewards/classifiers.py: the weighted training loss (docs/cgm.md §8.2)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from rewards.classifiers import build_classifier, train_classifier


def _data(seed: int = 0, n: int = 40, d: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    return x, y


def _params(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


def _model(d: int = 5) -> nn.Module:
    return build_classifier("mlp", (d,), 3, seed=3)


def test_unit_weights_train_like_the_plain_mean() -> None:
    x, y = _data()
    plain = train_classifier(_model(), x, y, epochs=2, batch_size=8, seed=1)
    ones = train_classifier(
        _model(), x, y, epochs=2, batch_size=8, seed=1, sample_weight=np.ones(len(y))
    )
    # Σ ce / n and Σ 1·ce / Σ 1 differ only in float32 rounding
    np.testing.assert_allclose(_params(plain), _params(ones), rtol=0, atol=1e-5)


def test_zero_weight_rows_have_no_influence() -> None:
    x, y = _data()
    w = np.where(np.arange(len(y)) % 3 == 0, 0.0, 1.0)
    y_other = y.copy()
    y_other[w == 0] = (y[w == 0] + 1) % 3  # change only the ignored labels
    a = train_classifier(
        _model(), x, y, epochs=2, batch_size=8, seed=1, sample_weight=w
    )
    b = train_classifier(
        _model(), x, y_other, epochs=2, batch_size=8, seed=1, sample_weight=w
    )
    np.testing.assert_array_equal(_params(a), _params(b))
    plain = train_classifier(_model(), x, y, epochs=2, batch_size=8, seed=1)
    assert not np.allclose(_params(a), _params(plain))


def test_one_full_batch_step_matches_the_weighted_mean_by_hand() -> None:
    x, y = _data(n=12)
    w = np.linspace(0.1, 1.0, len(y))
    model = _model()
    by_hand = copy.deepcopy(model)
    train_classifier(
        model, x, y, epochs=1, batch_size=len(y), seed=0, lr=0.01, sample_weight=w
    )
    opt = torch.optim.Adam(by_hand.parameters(), lr=0.01)
    by_hand.train()
    ce = nn.functional.cross_entropy(
        by_hand(torch.from_numpy(x)), torch.from_numpy(y), reduction="none"
    )
    wt = torch.from_numpy(w.astype(np.float32))
    ((wt * ce).sum() / wt.sum()).backward()
    opt.step()
    # same formula, summed in another row order: float32 rounding only
    np.testing.assert_allclose(_params(model), _params(by_hand), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "w", [np.ones(3), -np.ones(40), np.zeros(40), np.full(40, np.nan)]
)
def test_bad_weights_are_refused(w: np.ndarray) -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="sample_weight"):
        train_classifier(_model(), x, y, epochs=1, seed=0, sample_weight=w)
