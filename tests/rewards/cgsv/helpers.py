"""Shared data and models of the federated-loop tests (docs/cgsv.md §2, §6)."""

from __future__ import annotations

import numpy as np

from rewards.cgsv.party import FLParty
from rewards.classifiers import build_classifier


def tiny_data(seed, n_parties=3, sizes=(20, 30, 40), d=4, n_classes=3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d)) * 2
    parties = []
    for n in sizes[:n_parties]:
        y = rng.integers(0, n_classes, n)
        parties.append(
            ((centres[y] + rng.standard_normal((n, d))).astype(np.float32), y)
        )
    y = rng.integers(0, n_classes, 60)
    test = ((centres[y] + rng.standard_normal((60, d))).astype(np.float32), y)
    return parties, test


def tiny_model(seed=0):
    return build_classifier("mlp", (4,), 3, seed=seed)


def make_party(model, data, orders, party_id=0, lr=0.05, decay=0.9):
    x, y = data
    return FLParty(party_id, model, x, y, orders, lr=lr, lr_decay=decay, batch_size=8)
