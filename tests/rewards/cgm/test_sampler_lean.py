"""The preallocated sampling loop of rewards/cgm/sampler_core.py against the old one.

docs/cgm.md §7.1–§7.2. `_old_run_party` and its helpers are the allocating loop as it
was before the buffers (kept here verbatim as the slow obvious reference). The lean
loop performs the same floating-point operations in the same order, so the claim is
bitwise identity: the same candidates, the same stop reason, the same value trace
(``np.array_equal``) and the same generator state afterwards.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewards.cgm import sampler_core
from rewards.cgm.sampler_core import (
    STALL_FRACTION,
    InitialState,
    _exact_draw,
    _remove_sorted,
    _softmax_draw,
    candidate_values,
    choose,
    kernel_column,
    run_party,
)

# ------------------------------------------------------- the old loop (reference)


def _old_run_party(g, t, n_t, lengthscale, target, beta, rng, state):
    n_g = g.shape[0]
    stall_limit = math.ceil(STALL_FRACTION * n_g)
    inv_two_l2 = 1.0 / (2.0 * lengthscale**2)
    s = np.array(state.s, dtype=np.float64)
    gc = g - g.mean(0)
    g2 = np.einsum("ij,ij->i", gc, gc)
    a_sum, b_sum, m = float(state.A), float(state.B), int(state.n_party)
    taken = np.zeros(n_g, dtype=bool)
    mu = 2.0 * b_sum / (m * n_t) - a_sum / (m * m)
    start, mu_max, stall = mu, mu, 0
    greedy = math.isinf(beta)
    chosen, trace = [], []
    reason = "exhausted"
    while True:
        if n_g - len(chosen) <= 1:
            reason = "exhausted"
            break
        v = _old_candidate_values(s, t, a_sum, b_sum, m, n_t)
        c = _old_choose(v, taken, mu, beta, greedy, rng)
        mu = float(v[c])
        a_sum += 2.0 * s[c] + 1.0
        b_sum += t[c]
        m += 1
        taken[c] = True
        chosen.append(c)
        trace.append(mu)
        if mu > mu_max:
            mu_max, stall = mu, 0
        else:
            stall += 1
        if mu >= target:
            reason = "target"
            break
        if stall >= stall_limit:
            reason = "stall"
            break
        s += _old_kernel_column(gc, g2, c, inv_two_l2)
    return np.asarray(chosen, dtype=np.int64), np.asarray(trace), reason, start


def _old_candidate_values(s, t, a_sum, b_sum, m, n_t):
    return 2.0 * (b_sum + t) / ((m + 1) * n_t) - (a_sum + 2.0 * s + 1.0) / (
        (m + 1) * (m + 1)
    )


def _old_choose(v, taken, mu, beta, greedy, rng):
    if greedy:
        v[taken] = -np.inf
        return int(np.argmax(v))
    avail = np.flatnonzero(~taken)
    delta = v[avail] - mu
    lo, hi = delta.min(), delta.max()
    w = (delta - lo) / (hi - lo) if hi > lo else np.zeros_like(delta)
    z = beta * w
    p = np.exp(z - z.max())
    return int(avail[rng.choice(avail.shape[0], p=p / p.sum())])


def _old_kernel_column(gc, g2, c, inv_two_l2):
    d2 = g2 + g2[c] - 2.0 * (gc @ gc[c])
    np.maximum(d2, 0.0, out=d2)
    return np.exp(-d2 * inv_two_l2)


# ------------------------------------------------------------------- problems


def _rbf(a: np.ndarray, b: np.ndarray, ell: float) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * ell**2))


def _problem(seed: int, n_g: int, n_dup: int) -> tuple:
    """Pool with ``n_dup`` duplicated rows (exact ties), party D, T = D ⊎ G."""
    rng = np.random.default_rng([seed, n_g])
    g = rng.normal(size=(n_g, 2)) * rng.choice([0.5, 1.5], size=(n_g, 1))
    dup = rng.choice(n_g, size=(n_dup, 2), replace=False)
    g[dup[:, 1]] = g[dup[:, 0]]
    party = rng.normal(0.4, 1.0, size=(12, 2))
    ref = np.vstack([party, g])
    ell = float(rng.uniform(0.3, 1.5))
    t = _rbf(g, ref, ell).sum(1)
    state = InitialState(
        s=_rbf(g, party, ell).sum(1),
        A=float(_rbf(party, party, ell).sum()),
        B=float(_rbf(party, ref, ell).sum()),
        n_party=party.shape[0],
    )
    return g, t, ref.shape[0], ell, state


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("beta", [0.0, 1.0, 8.0, math.inf])
@pytest.mark.parametrize(("seed", "n_g"), [(0, 50), (1, 137), (2, 400), (3, 64)])
def test_run_party_is_bitwise_the_old_loop(seed: int, n_g: int, beta: float) -> None:
    # Prepare: a probe run to stall/exhaustion, then a target inside its trace
    g, t, n_t, ell, state = _problem(seed, n_g, n_dup=n_g // 5)
    probe = _old_run_party(
        g, t, n_t, ell, math.inf, beta, np.random.default_rng(seed), state
    )
    stop_at = len(probe[1]) // 2
    for target in (math.inf, float(probe[1][stop_at]), -math.inf):
        old_rng, new_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        # Execute
        ref = _old_run_party(g, t, n_t, ell, target, beta, old_rng, state)
        new = run_party(g, t, n_t, ell, target, beta, new_rng, state)
        # Assert: the same computation, so identical bits and the same stream
        np.testing.assert_array_equal(new.candidate_index, ref[0])
        assert np.array_equal(new.value_trace, ref[1])
        assert new.stop_reason == ref[2]
        assert new.start_value == ref[3]
        assert new_rng.bit_generator.state == old_rng.bit_generator.state
    assert probe[2] in ("stall", "exhausted")


def test_run_party_greedy_ties_go_to_the_lowest_index() -> None:
    # Prepare: every candidate twice (rows i and i + 30): v'(c) ties exactly
    rng = np.random.default_rng(11)
    half = rng.normal(size=(30, 2))
    g = np.vstack([half, half])
    party = rng.normal(size=(5, 2))
    ref = np.vstack([party, g])
    t = _rbf(g, ref, 1.0).sum(1)
    state = InitialState(
        s=_rbf(g, party, 1.0).sum(1),
        A=float(_rbf(party, party, 1.0).sum()),
        B=float(_rbf(party, ref, 1.0).sum()),
        n_party=5,
    )
    # Execute
    new = run_party(g, t, ref.shape[0], 1.0, math.inf, math.inf, None, state)
    old = _old_run_party(g, t, ref.shape[0], 1.0, math.inf, math.inf, None, state)
    # Assert: the first pick is the lower twin, and the whole run matches
    assert new.candidate_index[0] < 30
    np.testing.assert_array_equal(new.candidate_index, old[0])
    assert np.array_equal(new.value_trace, old[1])


def _count_exact(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the exact fallback of `_softmax_draw`."""
    calls: list[int] = []
    exact = sampler_core._exact_draw

    def counted(p: np.ndarray, cdf: np.ndarray, u: float) -> int:
        calls.append(1)
        return exact(p, cdf, u)

    monkeypatch.setattr(sampler_core, "_exact_draw", counted)
    return calls


@pytest.mark.parametrize("seed", range(4))
def test_softmax_draw_is_generator_choice(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: softmax-like, spiky, zero-containing and flat weights of sizes
    # around the block length
    calls = _count_exact(monkeypatch)
    maker = np.random.default_rng(100 + seed)
    n_draws = 0
    for n in (1, 2, 3, 8, 129, 511, 512, 513, 1024, 1500, 4099):
        for kind in range(4):
            z = maker.normal(size=n) * (1.0, 30.0, 3.0, 0.0)[kind]
            p = np.exp(z - z.max())
            if kind == 2:
                p[maker.random(n) < 0.3] = 0.0
                p[int(maker.integers(n))] = 1.0
            a = np.random.default_rng([seed, n, kind])
            b = np.random.default_rng([seed, n, kind])
            # Execute
            fast = [_softmax_draw(p, np.empty(n), a) for _ in range(4)]
            slow = [int(b.choice(n, p=p / p.sum())) for _ in range(4)]
            n_draws += 4
            # Assert: the same indices and the same generator state afterwards
            assert fast == slow
            assert a.bit_generator.state == b.bit_generator.state
    assert len(calls) < n_draws // 10  # the blocked path decided almost all


@pytest.mark.parametrize("seed", range(6))
def test_softmax_draw_falls_back_on_a_step_of_the_cdf(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: weights whose CDF passes within rounding of the uniform u that the
    # draw will use, at position j (a step the blocked sums cannot resolve)
    calls = _count_exact(monkeypatch)
    u = np.random.default_rng(seed).random()
    maker = np.random.default_rng(50 + seed)
    n = int(maker.integers(600, 3000))
    p = maker.random(n)
    j = int(maker.integers(1, n - 1))
    head = p[: j + 1].sum()
    p[j + 1 :] *= head * (1.0 - u) / u / p[j + 1 :].sum()
    p /= p.max()
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    # Execute
    fast = _softmax_draw(p, np.empty(n), a)
    slow = int(b.choice(n, p=p / p.sum()))
    # Assert: the exact path ran and agrees with numpy
    assert calls == [1]
    assert fast == slow
    assert fast in (j, j + 1)
    assert a.bit_generator.state == b.bit_generator.state


@pytest.mark.parametrize("seed", range(8))
def test_exact_draw_on_the_boundaries(seed: int) -> None:
    # Prepare: the uniform u the draw will use, and p built around it:
    # cdf[0] == u exactly (side="right" matters), and a sum of 1 + 1e-9 with
    # cdf[0] > u only before the normalisation by cdf[-1] (the division matters)
    u = np.random.default_rng(seed).random()
    x = u * (1.0 + 0.5e-9)
    for p in (np.array([u, 1.0 - u]), np.array([x, 1.0 + 1e-9 - x])):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        # Execute
        fast = _softmax_draw(p, np.empty(2), a)
        exact = _exact_draw(p, np.empty(2), u)
        slow = int(b.choice(2, p=p / p.sum()))
        # Assert
        assert fast == exact == slow == 1
        assert a.bit_generator.state == b.bit_generator.state


@pytest.mark.parametrize("beta", [0.0, 2.0, math.inf])
def test_choose_matches_the_old_choose(beta: float) -> None:
    # Prepare (choose is what the batched torch path calls per party)
    maker = np.random.default_rng(5)
    for n in (2, 10, 300):
        v = maker.normal(size=n)
        v[: n // 3] = v[n // 3 : 2 * (n // 3)]  # ties
        taken = maker.random(n) < 0.4
        taken[int(maker.integers(n))] = False
        a, b = np.random.default_rng(n), np.random.default_rng(n)
        # Execute
        new = choose(v.copy(), taken, 0.1, beta, math.isinf(beta), a)
        old = _old_choose(v.copy(), taken, 0.1, beta, math.isinf(beta), b)
        # Assert
        assert new == old
        if not math.isinf(beta):
            assert a.bit_generator.state == b.bit_generator.state


def test_choose_all_equal_gains_is_uniform_and_matches() -> None:
    # Prepare: hi == lo, so w ≡ 0 and p is uniform
    v = np.full(9, 0.25)
    taken = np.zeros(9, dtype=bool)
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    # Execute / Assert
    picks = [choose(v.copy(), taken, 0.0, 3.0, False, a) for _ in range(50)]
    assert picks == [
        _old_choose(v.copy(), taken, 0.0, 3.0, False, b) for _ in range(50)
    ]
    assert len(set(picks)) > 3


def test_public_helpers_are_bitwise_the_old_expressions() -> None:
    # Prepare
    maker = np.random.default_rng(9)
    g = maker.normal(size=(257, 3))
    gc = g - g.mean(0)
    g2 = np.einsum("ij,ij->i", gc, gc)
    s, t = maker.random(257) * 40.0, maker.random(257) * 90.0 + 1.0
    # Execute / Assert
    for c in (0, 17, 256):
        assert np.array_equal(
            kernel_column(gc, g2, c, 0.37), _old_kernel_column(gc, g2, c, 0.37)
        )
    assert np.array_equal(
        candidate_values(s, t, 123.4, 567.8, 41, 900),
        _old_candidate_values(s, t, 123.4, 567.8, 41, 900),
    )


def test_remove_sorted_keeps_the_ascending_order() -> None:
    # Prepare
    maker = np.random.default_rng(2)
    avail = np.arange(40, dtype=np.int64)
    ref = list(range(40))
    # Execute
    for n_avail in range(40, 1, -1):
        c = int(maker.choice(ref))
        _remove_sorted(avail, n_avail, c)
        ref.remove(c)
        # Assert
        assert avail[: n_avail - 1].tolist() == ref
