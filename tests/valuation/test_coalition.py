"""Tests of valuation/coalition.py (docs/cgm.md §5.1, §5.2, §5.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from valuation.coalition import (
    coalition_key,
    coalition_values_from_blocks,
    mask_of,
    members_of,
    parse_coalition_key,
    reference_value,
    v_with_pool,
    value_of_set,
    value_table,
)
from valuation.kernels import kernel_block_sums, rbf_kernel
from valuation.mmd import mmd2_biased
from valuation.shapley import exact_shapley


def _random_parties(
    rng: np.random.Generator, n: int, d: int = 3
) -> tuple[list[np.ndarray], np.ndarray]:
    parties = [
        rng.normal(loc=0.2 * i, size=(int(rng.integers(4, 15)), d)) for i in range(n)
    ]
    return parties, rng.normal(size=(40, d))


# --- keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "key"),
    [({0}, "0"), ({3, 0, 2}, "0,2,3"), ([10, 2], "2,10"), (set(), "")],
)
def test_coalition_key_round_trip(members: set[int], key: str) -> None:
    assert coalition_key(members) == key
    assert parse_coalition_key(key) == frozenset(members)


@pytest.mark.parametrize("key", ["0,0", "2,1", " 1", "01", "a", "1,", "-1", "1, 2"])
def test_parse_coalition_key_refuses_non_canonical(key: str) -> None:
    with pytest.raises(ValueError, match="`key`"):
        parse_coalition_key(key)


@pytest.mark.parametrize(
    ("members", "error", "match"),
    [
        ([1, 1], ValueError, "repeated"),
        ([-1], ValueError, ">= 0"),
        ([1.0], TypeError, "ints"),
        ([True], TypeError, "ints"),
    ],
)
def test_coalition_key_bad_members(members: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        coalition_key(members)


def test_masks_and_members_are_inverse() -> None:
    assert [sorted(members_of(m)) for m in range(4)] == [[], [0], [1], [0, 1]]
    assert all(mask_of(members_of(m)) == m for m in range(64))


# --- values ------------------------------------------------------------------


def test_value_of_set_hand_computed() -> None:
    # Prepare: S = {0, 1}, T = {0, 1, 3} on the line, ℓ = 1.
    t = np.array([[0.0], [1.0], [3.0]])
    k = {d: math.exp(-(d**2) / 2) for d in (0, 1, 2, 3)}
    s_xy = 2 / (2 * 3) * (k[0] + k[1] + k[3] + k[1] + k[0] + k[2])
    s_x = (2 * k[0] + 2 * k[1]) / 4
    # Execute
    v = value_of_set(t[:2], t, 1.0)
    # Assert: rel 1e-12 covers a handful of float operations.
    assert v == pytest.approx(s_xy - s_x, rel=1e-12)
    assert value_of_set(t[:0], t, 1.0) == 0.0  # v(∅) = 0


@pytest.mark.parametrize("n", [4, 5])
def test_block_values_equal_direct_recomputation(seed: int, n: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed + n)
    parties, pool = _random_parties(rng, n)
    t = np.concatenate([*parties, pool])
    sizes = np.array([p.shape[0] for p in parties] + [pool.shape[0]])
    kbar = kernel_block_sums([*parties, pool], 1.3, chunk_size=16)
    # Execute
    table = coalition_values_from_blocks(kbar, sizes)
    # Assert: the acceptance criterion of docs/cgm.md §5.4 (float64, rel 1e-9).
    assert table[0] == 0.0
    for mask in range(1, 1 << n):
        s = np.concatenate([parties[i] for i in sorted(members_of(mask))])
        assert table[mask] == pytest.approx(value_of_set(s, t, 1.3), rel=1e-9)


def test_chunked_masks_equal_plain_loop(seed: int) -> None:
    # Prepare: N = 13 gives 8192 masks, i.e. two chunks of 4096.
    rng = np.random.default_rng(seed)
    a = rng.random((14, 14))
    kbar = a + a.T
    sizes = rng.integers(1, 9, size=14)
    b = kbar.sum(axis=1)
    n_t = sizes.sum()
    # Execute
    table = coalition_values_from_blocks(kbar, sizes)
    # Assert: the formula of §5.4 evaluated one coalition at a time; rel 1e-12
    # covers different summation orders.
    for mask in [1, 4095, 4096, 4097, 8191, *rng.integers(1, 8192, 50).tolist()]:
        c = sorted(members_of(mask))
        m = sizes[c].sum()
        expected = 2 * b[c].sum() / (m * n_t) - kbar[np.ix_(c, c)].sum() / m**2
        assert table[mask] == pytest.approx(expected, rel=1e-12)


def test_masks_argument_selects_entries(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    parties, pool = _random_parties(rng, 4)
    sizes = np.array([p.shape[0] for p in parties] + [pool.shape[0]])
    kbar = kernel_block_sums([*parties, pool], 1.0)
    masks = np.array([15, 1, 6, 0])
    # Execute
    some = coalition_values_from_blocks(kbar, sizes, masks)
    # Assert: same arithmetic, same numbers.
    np.testing.assert_array_equal(
        some, coalition_values_from_blocks(kbar, sizes)[masks]
    )


def test_v_with_pool_and_reference_equal_direct(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    parties, pool = _random_parties(rng, 3)
    t = np.concatenate([*parties, pool])
    sizes = np.array([p.shape[0] for p in parties] + [pool.shape[0]])
    kbar = kernel_block_sums([*parties, pool], 0.8)
    # Execute
    v_max = v_with_pool(kbar, sizes)
    k_tt = reference_value(kbar, sizes)
    # Assert: rel 1e-9 as for every coalition value (docs/cgm.md §5.4).
    for i, p in enumerate(parties):
        direct = value_of_set(np.concatenate([p, pool]), t, 0.8)
        assert v_max[i] == pytest.approx(direct, rel=1e-9)
    assert k_tt == pytest.approx(rbf_kernel(t, t, 0.8).mean(), rel=1e-12)
    assert k_tt == pytest.approx(value_of_set(t, t, 0.8), rel=1e-9)  # v(T) = K̄_TT


def test_shift_to_minus_mmd_changes_shapley_by_constant(seed: int) -> None:
    # Prepare: w = −MMD_b²(S, T) on non-empty S, w(∅) = 0 (docs/cgm.md §5.2).
    rng = np.random.default_rng(seed)
    parties, pool = _random_parties(rng, 4, d=2)
    t = np.concatenate([*parties, pool])
    sizes = np.array([p.shape[0] for p in parties] + [pool.shape[0]])
    kbar = kernel_block_sums([*parties, pool], 0.7)
    k_tt = reference_value(kbar, sizes)

    def w(c: frozenset[int]) -> float:
        if not c:
            return 0.0
        return -mmd2_biased(np.concatenate([parties[i] for i in sorted(c)]), t, 0.7)

    # Execute
    phi_v = exact_shapley(coalition_values_from_blocks(kbar, sizes))
    phi_w = exact_shapley(value_table(w, 4))
    # Assert: φ^w_i = φ_i − K̄_TT/N; atol 1e-10 on O(1) values for two routes.
    np.testing.assert_allclose(phi_w, phi_v - k_tt / 4, rtol=0, atol=1e-10)
    s = np.concatenate(parties[:2])
    assert value_of_set(s, t, 0.7) == pytest.approx(
        k_tt - mmd2_biased(s, t, 0.7), abs=1e-12
    )


# --- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"s": np.zeros((2, 2))}, "`s`"),
        ({"t": np.zeros((0, 1))}, "`t`"),
        ({"t": np.zeros(3)}, "`t`"),
        ({"lengthscale": 0.0}, "`lengthscale`"),
        ({"lengthscale": -1.0}, "`lengthscale`"),
    ],
)
def test_value_of_set_bad_input(kwargs: dict, match: str) -> None:
    args = {"s": np.zeros((2, 1)), "t": np.zeros((3, 1)), "lengthscale": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        value_of_set(**args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_sums": np.eye(1)}, "`block_sums`"),
        ({"block_sums": np.full((3, 3), np.nan)}, "NaN"),
        ({"sizes": np.array([1.0, 1.0, 1.0])}, "`sizes`"),
        ({"sizes": np.array([1, 0, 1])}, "`sizes`"),
        ({"masks": np.array([8])}, "`masks`"),
        ({"masks": np.array([-1])}, "`masks`"),
    ],
)
def test_coalition_values_bad_input(kwargs: dict, match: str) -> None:
    args = {"block_sums": np.eye(3), "sizes": np.array([1, 1, 1]), "masks": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        coalition_values_from_blocks(**args)


def test_value_table_bad_n_players() -> None:
    with pytest.raises(ValueError, match="`n_players`"):
        value_table(lambda c: 0.0, 0)
