"""The independent oracle of the reward sampler: every sum recomputed every step.

docs/cgm.md §5.1 and §7.1. `naive_sample_party` rebuilds S = D_i ⊎ R at every step
and evaluates v(S ⊎ {c}) for every available c from kernel matrices formed afresh;
`direct_value` is v(S) = S_XY(S) − S_X(S) straight from the kernel matrices. Both
share no code with the running sums of `rewards.cgm.sampler_core`, so the tests and
``bench/bench_sampler.py`` check the fast path against them.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm

from data.seeding import Seed
from rewards.cgm.sampler_core import (
    STALL_FRACTION,
    SamplingResult,
    StopReason,
    as_features,
    check_inv_temp,
    check_pool,
    check_same_dim,
    check_target,
)
from valuation.kernels import check_lengthscale, rbf_kernel


def naive_sample_party(
    party_features: ArrayLike,
    candidate_features: ArrayLike,
    reference: ArrayLike,
    lengthscale: float,
    target: float,
    *,
    inv_temp: float,
    seed: Seed = None,
    chunk_size: int = 1024,
    progress: bool = False,
) -> SamplingResult:
    """The obvious sampler: recompute v(D_i ⊎ R ⊎ {c}) by §5.1 at every step.

    At each step the set S = D_i ⊎ R is rebuilt and, for every available c,
    v(S ⊎ {c}) = 2(Σ_{S×T} k + Σ_{y∈T} k(c, y))/((m+1)·n_T)
    − (Σ_{S×S} k + 2Σ_{x∈S} k(c, x) + k(c, c))/(m+1)² is formed from kernel
    matrices evaluated afresh, O(n_G·(|S| + n_T)·d) per step. The choice and
    stopping rules are those of `rewards.cgm.sampling.sample_party`.

    Args:
        party_features: (n_i, d) party features D_i.
        candidate_features: (n_G, d) candidate features G.
        reference: (n_T, d) reference T.
        lengthscale: ℓ > 0.
        target: r_i.
        inv_temp: β ≥ 0 or ``math.inf``.
        seed: the party's seed.
        chunk_size: candidate rows per kernel block (memory only).
        progress: show a progress bar over additions.

    Returns:
        The same result `sample_party` gives.

    Raises:
        ValueError: on the bad arguments `sample_party` refuses.
    """
    x = as_features("party_features", party_features)
    g = as_features("candidate_features", candidate_features)
    ref = as_features("reference", reference)
    check_same_dim(("party_features", x), ("candidate_features", g), ("reference", ref))
    check_pool(g)
    check_lengthscale(lengthscale)
    target = check_target(target)
    beta = check_inv_temp(inv_temp)
    rng = np.random.default_rng(seed)
    n_g, n_t = g.shape[0], ref.shape[0]
    stall_limit = math.ceil(STALL_FRACTION * n_g)
    chosen: list[int] = []
    trace: list[float] = []
    mu = direct_value(x, ref, lengthscale)
    start, mu_max, stall = mu, mu, 0
    reason: StopReason = "exhausted"
    bar = tqdm(total=n_g - 1, disable=not progress)
    while True:
        taken = set(chosen)
        avail = [c for c in range(n_g) if c not in taken]
        if len(avail) <= 1:
            reason = "exhausted"
            break
        s_set = np.vstack([x, g[chosen]])
        m = s_set.shape[0]
        a_sum = rbf_kernel(s_set, s_set, lengthscale).sum()
        b_sum = rbf_kernel(s_set, ref, lengthscale).sum()
        v = np.empty(len(avail))
        for lo in range(0, len(avail), chunk_size):
            gc = g[avail[lo : lo + chunk_size]]
            t_c = rbf_kernel(gc, ref, lengthscale).sum(1)
            s_c = rbf_kernel(gc, s_set, lengthscale).sum(1)
            k_cc = 1.0  # k(c, c) = exp(0): no output scale (§5.1)
            v[lo : lo + chunk_size] = 2.0 * (b_sum + t_c) / ((m + 1) * n_t) - (
                a_sum + 2.0 * s_c + k_cc
            ) / ((m + 1) * (m + 1))
        if math.isinf(beta):
            j = int(np.argmax(v))
        else:
            delta = v - mu
            span = delta.max() - delta.min()
            w = (delta - delta.min()) / span if span > 0 else np.zeros_like(delta)
            z = beta * w
            p = np.exp(z - z.max())
            j = int(rng.choice(len(avail), p=p / p.sum()))
        mu = float(v[j])
        chosen.append(avail[j])
        trace.append(mu)
        bar.update(1)
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
    bar.close()
    return SamplingResult(
        candidate_index=np.asarray(chosen, dtype=np.int64),
        value_trace=np.asarray(trace, dtype=np.float64),
        stop_reason=reason,
        start_value=float(start),
        best_value=float(max(trace)),
    )


def direct_value(
    features: ArrayLike, reference: ArrayLike, lengthscale: float
) -> float:
    """v(S) = S_XY(S) − S_X(S) straight from the kernel matrices (docs/cgm.md §5.1).

    Args:
        features: (m, d) the multiset S, m ≥ 1.
        reference: (n_T, d) reference T.
        lengthscale: ℓ > 0.

    Returns:
        v(S) as a float.

    Example:
        >>> round(direct_value(np.zeros((1, 1)), np.zeros((2, 1)), 1.0), 6)  # 2·2/2 − 1
        1.0
    """
    s_set = as_features("features", features)
    ref = as_features("reference", reference)
    check_same_dim(("features", s_set), ("reference", ref))
    m, n_t = s_set.shape[0], ref.shape[0]
    s_xy = 2.0 * rbf_kernel(s_set, ref, lengthscale).sum() / (m * n_t)
    s_x = rbf_kernel(s_set, s_set, lengthscale).sum() / (m * m)
    return float(s_xy - s_x)


__all__ = ["direct_value", "naive_sample_party"]
