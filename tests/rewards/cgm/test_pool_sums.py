"""Sampling from the value stage's stored sums = the old path (docs/cgm.md §7.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewards.cgm.evaluation import Reference, beta_sweep
from rewards.cgm.sampling import (
    candidate_reference_sums,
    initial_state,
    pool_sums,
    sample_parties,
    sample_parties_except,
)
from valuation.kernels import kernel_block_row_sums
from valuation.mmd import kernel_sum

ELL = 0.9


def _problem(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    parties = [
        rng.normal(m, 1.0, size=(n, 3)) for m, n in ((0.5, 14), (-0.4, 9), (0.0, 11))
    ]
    g = rng.normal(0.0, 1.3, size=(90, 3))
    ref = np.vstack([*parties, g])
    one_pass = kernel_block_row_sums([*parties, g], ELL, chunk_size=8)
    n_own = sum(len(x) for x in parties)
    sums = pool_sums(one_pass.row_sums[n_own:], one_pass.block_sums,
                     [len(x) for x in parties])  # fmt: skip
    return {"parties": parties, "g": g, "ref": ref, "sums": sums}


def test_pool_sums_equal_the_old_kernel_passes(seed: int) -> None:
    # Prepare
    p = _problem(seed)
    g, ref = p["g"], p["ref"]
    # Execute
    t = candidate_reference_sums(g, ref, ELL)
    states = [initial_state(x, g, ref, ELL) for x in p["parties"]]
    # Assert: the same sums up to summation order (rel 1e-12).
    np.testing.assert_allclose(p["sums"].t, t, rtol=1e-12)
    for got, old in zip(p["sums"].states, states, strict=True):
        np.testing.assert_allclose(got.s, old.s, rtol=1e-12)
        np.testing.assert_allclose([got.A, got.B], [old.A, old.B], rtol=1e-12)
        assert got.n_party == old.n_party


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beta", [1.0, 8.0, math.inf])
@pytest.mark.parametrize("excluded", [(), (1,)])
def test_sample_with_stored_sums_equals_old_path(
    seed: int, beta: float, excluded: tuple[int, ...]
) -> None:
    # Prepare: targets mixing reachable (stop on target) and not (stall, exhausted).
    p = _problem(seed)
    targets = [0.05, 0.09, 0.2]
    kw = {"inv_temp": beta, "seeds": [11 + seed, 12, 13]}
    args = (excluded, p["parties"], p["g"], p["ref"], ELL, targets)
    # Execute
    old = sample_parties_except(*args, **kw)
    new = sample_parties_except(*args, sums=p["sums"], **kw)
    # Assert: the same draws; value traces to rounding of the sums.
    for a, b in zip(old, new, strict=True):
        np.testing.assert_array_equal(b.candidate_index, a.candidate_index)
        assert b.stop_reason == a.stop_reason
        np.testing.assert_allclose(b.value_trace, a.value_trace, rtol=1e-12)
        assert b.start_value == pytest.approx(a.start_value, rel=1e-12)
    assert "target" in {r.stop_reason for r in old}  # a real run, not all stalls


@pytest.mark.parametrize("beta", [1.0, math.inf])
def test_guard_selects_rows_of_the_stored_sums(seed: int, beta: float) -> None:
    # Prepare: the privacy guard drops candidates; T keeps them all (§8.5).
    p = _problem(seed)
    keep = np.flatnonzero(np.random.default_rng(seed).random(len(p["g"])) < 0.7)
    args = (p["parties"], p["g"][keep], p["ref"], ELL, [0.05, 0.09, 0.2])
    kw = {"inv_temp": beta, "seeds": [1, 2, 3]}
    # Execute
    old = sample_parties(*args, **kw)
    new = sample_parties(*args, sums=p["sums"].select(keep), **kw)
    # Assert
    for a, b in zip(old, new, strict=True):
        np.testing.assert_array_equal(b.candidate_index, a.candidate_index)
        assert b.stop_reason == a.stop_reason
        np.testing.assert_allclose(b.value_trace, a.value_trace, rtol=1e-12)


def test_sums_and_t_together_refused(seed: int) -> None:
    p = _problem(seed)
    with pytest.raises(ValueError, match="not both"):
        sample_parties(p["parties"], p["g"], p["ref"], ELL, [0.3, 0.3, 0.3],
                       inv_temp=1.0, seeds=[1, 2, 3], sums=p["sums"],
                       t=p["sums"].t)  # fmt: skip


def test_pool_sums_refuses_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="for 2 parties"):
        pool_sums(np.ones((4, 2)), np.ones((3, 3)), [1, 2])


def test_beta_sweep_with_stored_sums_equals_old_path(seed: int) -> None:
    # Prepare
    p = _problem(seed)
    labels = np.random.default_rng(seed).integers(0, 2, size=len(p["ref"]))
    cuts = np.cumsum([len(x) for x in p["parties"]])
    parties = list(zip(p["parties"], np.split(labels[: cuts[-1]], cuts[:-1]),
                       strict=True))  # fmt: skip
    cand = (p["g"], labels[cuts[-1] :])
    ref = Reference(p["ref"], ELL, kernel_sum(p["ref"], p["ref"], ELL))
    args = ([1.0, math.inf], parties, cand, ref, [1.0, 0.5, 0.7], [0.05, 0.09, 0.2], 2)
    kw = {"seeds": [[1, 2, 3], [4, 5, 6]], "excluded": [2]}
    # Execute
    old = beta_sweep(*args, **kw)
    new = beta_sweep(*args, sums=p["sums"], **kw)
    # Assert: the same reward sets, so the same counts; MMD² to rounding.
    assert new["n_rewards"] == old["n_rewards"]
    np.testing.assert_allclose(new["mmd2"], old["mmd2"], rtol=1e-12)
