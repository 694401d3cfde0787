"""Shared data and the in-process reference of the Flower tests (docs/federated.md)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rewards.cgsv.party import FLParty
from rewards.cgsv.simulation import _Evaluator, make_runners, play_rounds
from rewards.classifiers import Preprocessor

#: hyper-parameters of every Flower equivalence check (β = 1, one local epoch)
KW = dict(local_epochs=1, batch_size=16, lr=0.05, lr_decay=0.977, gamma=0.5,
          alpha=0.95, beta=[1.0], aggregator="cgsv", eval_every=1)  # fmt: skip
#: columns compared between engines, and the identifying ones
COMPARED = ("psi", "r", "q", "weight", "test_acc", "server_acc", "reward_density")
KEYS = ("round", "method", "beta", "party")


def digits_parties(n, size, test_rows=(300, 400)):
    """n parties × size digits rows and a test slice, preprocessed for the mlp."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    pre = Preprocessor.fit("mlp", x[: n * size])
    parts = [(pre.transform(x[size * i : size * (i + 1)]), y[size * i : size * (i + 1)])
             for i in range(n)]  # fmt: skip
    lo, hi = test_rows
    return parts, (pre.transform(x[lo:hi]), y[lo:hi])


def inprocess(model, parts, test, orders, rounds, baselines):
    """The in-process loop of `simulate`, keeping the parties (final models)."""

    def fresh():
        return [
            FLParty(i, copy.deepcopy(model), x, y, orders[i], lr=KW["lr"],
                    lr_decay=KW["lr_decay"], batch_size=KW["batch_size"])
            for i, (x, y) in enumerate(parts)
        ]  # fmt: skip

    runners = make_runners(
        model, len(parts), fresh, KW["beta"], baselines, gamma=KW["gamma"],
        alpha=KW["alpha"], local_epochs=1, aggregator="cgsv",
    )  # fmt: skip
    rows = []
    ev = _Evaluator(model, torch.as_tensor(test[0]), torch.as_tensor(test[1]),
                    torch.device("cpu"))  # fmt: skip
    play_rounds(
        runners, ev, [len(y) for _, y in parts], "cgsv", rounds=rounds,
        local_epochs=1, eval_every=1, device=torch.device("cpu"),
        on_round=rows.append,
    )  # fmt: skip
    return rows, runners


def assert_same_rows(ref_rows, rows):
    """Every row's ψ, r, q, w, accuracies and density equal, and nobody missing.

    Both engines do the same float32 arithmetic; 1e-6 only guards the BLAS order.
    """
    assert len(rows) == len(ref_rows)
    for a, b in zip(ref_rows, rows, strict=True):
        assert [a[k] for k in KEYS] == [b[k] for k in KEYS]
        for key in COMPARED:
            if a[key] is None:
                assert b[key] is None, key
            else:
                assert b[key] == pytest.approx(a[key], abs=1e-6), key
        assert b["missing"] == 0


def assert_same_final_models(out_dir, runners):
    """Each party's saved final models (one array per runner) equal in-process."""
    for i in range(len(runners[0].parties)):
        with np.load(out_dir / f"party_{i}.npz") as z:
            for k, runner in enumerate(runners):
                np.testing.assert_allclose(
                    z[f"r{k}"], runner.parties[i].flat().numpy(), rtol=0, atol=1e-6
                )
