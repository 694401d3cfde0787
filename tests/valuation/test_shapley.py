"""Tests of valuation/shapley.py (docs/cgm.md §5.5)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from valuation.coalition import coalition_values_from_blocks, value_table
from valuation.kernels import kernel_block_sums
from valuation.shapley import (
    block_marginals,
    exact_shapley,
    permutation_shapley,
    permutation_shapley_game,
    popcounts,
    shapley_weights,
)


def _naive_shapley(values: np.ndarray) -> np.ndarray:
    """Average of marginal contributions over all n! orders (the definition)."""
    n = int(math.log2(values.shape[0]))
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        mask = 0
        for p in order:
            phi[p] += values[mask | (1 << p)] - values[mask]
            mask |= 1 << p
    return phi / math.factorial(n)


def _kernel_game(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = [
        rng.normal(loc=i * 0.3, size=(int(rng.integers(5, 12)), 2)) for i in range(n)
    ]
    blocks.append(rng.normal(size=(30, 2)))
    kbar = kernel_block_sums(blocks, 1.0)
    return kbar, np.array([b.shape[0] for b in blocks])


# --- known answers -----------------------------------------------------------


def test_glove_game_known_answer() -> None:
    # Prepare: party 0 holds a left glove, 1 and 2 right gloves; a pair is worth 1.
    table = value_table(lambda c: float(0 in c and bool(c & {1, 2})), 3)
    # Execute
    phi = exact_shapley(table)
    # Assert: textbook values (2/3, 1/6, 1/6); rel 1e-12 covers summation rounding.
    np.testing.assert_allclose(phi, [2 / 3, 1 / 6, 1 / 6], rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_symmetric_game_gives_equal_shares(n: int) -> None:
    # Prepare: v depends only on |S| (v(S) = |S|²).
    table = popcounts(n).astype(float) ** 2
    # Execute
    phi = exact_shapley(table)
    # Assert: v(N)/n each; rel 1e-12 covers summation rounding.
    np.testing.assert_allclose(phi, np.full(n, n**2 / n), rtol=1e-12)


def test_null_party_gets_zero(seed: int) -> None:
    # Prepare: random game on parties 0, 1, 3 in which party 2 adds nothing.
    rng = np.random.default_rng(seed)
    base = rng.normal(size=16)
    base[0] = 0.0
    table = np.array([base[m & ~(1 << 2)] for m in range(16)])
    # Execute
    phi = exact_shapley(table)
    # Assert: every marginal of party 2 is exactly 0, so φ_2 is exactly 0.
    assert phi[2] == 0.0
    assert abs(phi.sum() - table[-1]) < 1e-12  # efficiency; rounding of 4 sums


def test_symmetric_parties_get_equal_values(seed: int) -> None:
    # Prepare: parties 0 and 2 interchangeable (v depends on the set of "types").
    rng = np.random.default_rng(seed)
    kinds = {0: "a", 1: "b", 2: "a", 3: "c"}
    weights = {"a": 1.3, "b": 0.4, "c": 2.0}
    noise = {frozenset(): 0.0}

    def v(c: frozenset[int]) -> float:
        key = frozenset((kinds[i], sum(kinds[j] == kinds[i] for j in c)) for i in c)
        if key not in noise:
            noise[key] = float(rng.normal())
        return sum(weights[kinds[i]] for i in c) + noise[key]

    table = value_table(v, 4)
    # Execute
    phi = exact_shapley(table)
    # Assert: rel 1e-12 covers different summation orders.
    assert phi[0] == pytest.approx(phi[2], rel=1e-12)


def test_exact_matches_definition_over_all_orders(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    table = rng.normal(size=32)
    table[0] = 0.7  # v(∅) need not be 0
    # Execute
    phi = exact_shapley(table)
    # Assert: rel 1e-12 covers different summation orders.
    np.testing.assert_allclose(phi, _naive_shapley(table), rtol=1e-12)
    assert phi.sum() == pytest.approx(table[-1] - table[0], rel=1e-12)


def test_weights_sum_to_one_per_player() -> None:
    # Prepare
    n = 6
    # Execute: Σ_s C(n−1, s)·w(s) must be 1 (weights form a distribution).
    total = sum(math.comb(n - 1, s) * w for s, w in enumerate(shapley_weights(n)))
    # Assert: rel 1e-12 covers 6 float additions.
    assert total == pytest.approx(1.0, rel=1e-12)


def test_efficiency_failure_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: corrupt the weights so Σφ ≠ v(N) − v(∅).
    monkeypatch.setattr("valuation.shapley.shapley_weights", lambda n: np.full(n, 0.3))
    # Execute / Assert
    with pytest.raises(RuntimeError, match="efficiency"):
        exact_shapley(np.array([0.0, 1.0, 2.0, 4.0]))


# --- permutation Shapley -----------------------------------------------------


def test_all_orders_from_block_sums_equal_exact(seed: int) -> None:
    # Prepare
    kbar, sizes = _kernel_game(np.random.default_rng(seed), 4)
    perms = np.array(list(itertools.permutations(range(4))))
    # Execute
    marginals = block_marginals(kbar, sizes, perms)
    # Assert: rel 1e-10: running sums vs. the indicator-matrix table, same data.
    exact = exact_shapley(coalition_values_from_blocks(kbar, sizes))
    np.testing.assert_allclose(marginals.mean(axis=0), exact, rtol=1e-10)


def test_block_marginals_match_table_differences(seed: int) -> None:
    # Prepare
    kbar, sizes = _kernel_game(np.random.default_rng(seed), 5)
    table = coalition_values_from_blocks(kbar, sizes)
    order = np.array([[3, 0, 4, 1, 2]])
    # Execute
    marginals = block_marginals(kbar, sizes, order)[0]
    # Assert: each marginal is v(C ⊎ {p}) − v(C); atol 1e-12 on O(1) values.
    mask = 0
    for p in order[0]:
        assert marginals[p] == pytest.approx(
            table[mask | 1 << p] - table[mask], abs=1e-12
        )
        mask |= 1 << p


def test_permutation_shapley_approaches_exact(seed: int) -> None:
    # Prepare
    kbar, sizes = _kernel_game(np.random.default_rng(seed), 4)
    exact = exact_shapley(coalition_values_from_blocks(kbar, sizes))
    # Execute
    phi, stderr = permutation_shapley(kbar, sizes, 20_000, seed=seed)
    # Assert: Monte-Carlo error within 5 standard errors (fixed seed, deterministic).
    assert np.all(np.abs(phi - exact) <= 5 * stderr + 1e-12)
    # Assert: every order sums to v(N), so Σφ is exact; rel 1e-10 for rounding.
    assert phi.sum() == pytest.approx(exact.sum(), rel=1e-10)


def test_permutation_stderr_shrinks_with_more_orders(seed: int) -> None:
    # Prepare
    kbar, sizes = _kernel_game(np.random.default_rng(seed), 4)
    # Execute
    _, se_small = permutation_shapley(kbar, sizes, 100, seed=seed)
    _, se_large = permutation_shapley(kbar, sizes, 10_000, seed=seed)
    # Assert: 100× the orders gives ~10× smaller errors; 3× leaves a wide margin.
    assert np.all(se_large * 3 < se_small)


def test_permutation_seed_pairs(seed: int, seed_alt: int) -> None:
    # Prepare
    kbar, sizes = _kernel_game(np.random.default_rng(seed), 4)
    # Execute
    a = permutation_shapley(kbar, sizes, 50, seed=seed)[0]
    b = permutation_shapley(kbar, sizes, 50, seed=seed)[0]
    c = permutation_shapley(kbar, sizes, 50, seed=seed_alt)[0]
    # Assert
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generic_game_matches_block_version(seed: int) -> None:
    # Prepare: the same kernel game through a value function; same seed, same orders.
    kbar, sizes = _kernel_game(np.random.default_rng(seed), 5)
    table = coalition_values_from_blocks(kbar, sizes)
    calls: list[frozenset[int]] = []

    def value_fn(c: frozenset[int]) -> float:
        calls.append(c)
        return float(table[sum(1 << i for i in c)])

    # Execute
    phi_game, se_game = permutation_shapley_game(value_fn, 5, 2000, seed=seed)
    phi_block, se_block = permutation_shapley(kbar, sizes, 2000, seed=seed)
    # Assert: rel 1e-10: two evaluations of the same marginals.
    np.testing.assert_allclose(phi_game, phi_block, rtol=1e-10)
    np.testing.assert_allclose(se_game, se_block, rtol=1e-8)
    assert frozenset() in calls  # v(∅) is asked, never assumed
    assert len(calls) == len(set(calls))  # memoised


def test_generic_game_over_many_orders_approaches_exact(seed: int) -> None:
    # Prepare
    table = value_table(lambda c: float(len(c) ** 2 + 3 * (0 in c)), 3)
    # Execute
    phi, stderr = permutation_shapley_game(
        lambda c: table[sum(1 << i for i in c)], 3, 5000, seed=seed
    )
    # Assert: within 5 standard errors of exact (fixed seed).
    assert np.all(np.abs(phi - exact_shapley(table)) <= 5 * stderr + 1e-12)


# --- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.zeros(3), "`values`"),
        (np.zeros(1), "`values`"),
        (np.zeros((2, 2)), "`values`"),
        (np.array([0.0, np.nan]), "NaN"),
        (np.array([0.0, np.inf]), "NaN or inf"),
    ],
)
def test_exact_shapley_bad_input(values: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        exact_shapley(values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_permutations": 1}, "`n_permutations`"),
        ({"sizes": np.array([1, 1])}, "`sizes`"),
        ({"sizes": np.array([0, 1, 1])}, "`sizes`"),
        ({"block_sums": np.ones((3, 2))}, "`block_sums`"),
        ({"block_sums": np.array([[1.0, 2, 0], [0, 1, 0], [0, 0, 1]])}, "symmetric"),
    ],
)
def test_permutation_shapley_bad_input(kwargs: dict, match: str) -> None:
    args = {"block_sums": np.eye(3), "sizes": np.array([1, 1, 1]), "n_permutations": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        permutation_shapley(**args, seed=0)


def test_block_marginals_bad_permutations() -> None:
    with pytest.raises(ValueError, match="`permutations`"):
        block_marginals(np.eye(3), np.array([1, 1, 1]), np.array([[0, 0]]))
