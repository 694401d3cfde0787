"""Reward realisation: weighted sampling of candidates per party (docs/cgm.md §7).

Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine Learning via Synthetic
Data Rewards" (AAAI 2022), Algorithm 1: party i receives candidates one at a time,
drawn without replacement from its own copy of the pool G with probability
softmax(β·w), w the min–max scaled value gains, until v(D_i ⊎ R) reaches its reward
value r_i (or the gains stall, or the pool runs out). v is the value of docs/cgm.md
§5.1, v(S) = S_XY(S) − S_X(S) against the reference T = D_1 ⊎ … ⊎ D_N ⊎ G.

This module does the one-off kernel pass of §7.2 in the parent process:
t_c = Σ_{y∈T} k(c, y) and each party's sums s, A, B (`candidate_reference_sums`,
`initial_state`), or takes them from the value stage's pass (`pool_sums`), then
hands the additions to the torch-free loop of `rewards.cgm.sampler_core`
(in-process or in worker processes) or to the batched torch path here.
`rewards.cgm.reference.naive_sample_party` recomputes every sum at every step and
is the oracle the fast path is tested against.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from data.checks import check_positive_int, is_int
from data.devices import resolve_device
from data.seeding import Seed
from rewards.cgm.sampler_core import (
    STALL_FRACTION,
    InitialState,
    SamplingResult,
    StopReason,
    as_features,
    check_inv_temp,
    check_pool,
    check_reference_size,
    check_same_dim,
    check_state,
    check_t,
    check_target,
    choose,
    run_parties,
    run_party,
)
from valuation.kernels import check_lengthscale, kernel_row_sums

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSums:
    """t and every party's initial sums, computed before sampling (docs/cgm.md §7.2).

    Attributes:
        t: (n_G,) float64, t_c = Σ_{y∈T} k(c, y).
        states: one `InitialState` (s, A, B) per party, in party order.
    """

    t: NDArray[np.float64]
    states: tuple[InitialState, ...]

    def parties(self, keep: Sequence[int]) -> PoolSums:
        """The sums with the states of the parties ``keep`` only, in that order."""
        return PoolSums(t=self.t, states=tuple(self.states[i] for i in keep))

    def select(self, rows: ArrayLike) -> PoolSums:
        """The sums of the candidates ``rows`` only; T, A and B are unchanged.

        Dropping candidates from the pool (the privacy guard, docs/cgm.md §8.5)
        leaves the reference T, so t_c and s_c of a kept candidate stay as they are.

        Args:
            rows: candidate indices (or a boolean mask) to keep, in pool order.

        Returns:
            The sums of the kept candidates.
        """
        idx = np.asarray(rows)
        return PoolSums(
            t=self.t[idx],
            states=tuple(
                InitialState(s=st.s[idx], A=st.A, B=st.B, n_party=st.n_party)
                for st in self.states
            ),
        )


def pool_sums(
    candidate_row_sums: ArrayLike, block_sums: ArrayLike, party_sizes: Sequence[int]
) -> PoolSums:
    """t, s, A and B from the value stage's one kernel pass (docs/cgm.md §5.4, §7.2).

    With blocks P_1 … P_N (the parties) and P_{N+1} = G, R[c, b] = Σ_{y∈P_b} k(c, y)
    and K̄ the block sums (`valuation.kernels.kernel_block_row_sums`):
    t_c = Σ_b R[c, b], s^(i) = R[:, i], A_i = K̄_ii and B_i = Σ_b K̄_ib. They agree
    with `candidate_reference_sums` and `initial_state` up to summation order.

    Args:
        candidate_row_sums: (n_G, N+1) the candidates' rows of R.
        block_sums: (N+1, N+1) K̄.
        party_sizes: (N,) n_i.

    Returns:
        The sums of every party.

    Raises:
        ValueError: on shapes that do not fit N parties, or non-finite sums.

    Example:
        >>> ps = pool_sums([[2.0, 1.0]], [[4.0, 2.0], [2.0, 1.0]], [2])
        >>> ps.t.tolist(), ps.states[0].s.tolist(), ps.states[0].A, ps.states[0].B
        ([3.0], [2.0], 4.0, 6.0)
    """
    rows = np.asarray(candidate_row_sums, dtype=np.float64)
    kbar = np.asarray(block_sums, dtype=np.float64)
    n = len(party_sizes)
    if rows.ndim != 2 or rows.shape[1] != n + 1 or kbar.shape != (n + 1, n + 1):
        raise ValueError(
            f"Arguments `candidate_row_sums` and `block_sums` must be (n_G, {n + 1}) "
            f"and ({n + 1}, {n + 1}) for {n} parties, got {rows.shape} and "
            f"{kbar.shape}"
        )
    if not (np.isfinite(rows).all() and np.isfinite(kbar).all()):
        raise ValueError("Arguments `candidate_row_sums` and `block_sums` hold NaN/inf")
    states = tuple(
        InitialState(
            s=np.ascontiguousarray(rows[:, i]),
            A=float(kbar[i, i]),
            B=float(kbar[i].sum()),
            n_party=int(n_i),
        )
        for i, n_i in enumerate(party_sizes)
    )
    return PoolSums(t=rows.sum(1), states=states)


def candidate_reference_sums(
    candidate_features: ArrayLike,
    reference: ArrayLike,
    lengthscale: float,
    *,
    center: ArrayLike | None = None,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "float64",
) -> NDArray[np.float64]:
    """t_c = Σ_{y∈T} k(c, y) for every candidate c, once per run (docs/cgm.md §7.2).

    The candidates are members of T, so t_c includes k(c, c) = 1.

    Args:
        candidate_features: (n_G, d) candidate features G.
        reference: (n_T, d) reference T (all party data and all candidates).
        lengthscale: ℓ > 0.
        center: (d,) centring vector; default the mean of ``reference``.
        chunk_size: rows per kernel tile.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for the kernel pass.
        kernel_precision: dtype of kernel values; sums are float64 regardless.

    Returns:
        (n_G,) float64 vector t.

    Raises:
        ValueError: on a bad lengthscale or mismatched feature dimensions.

    Example:
        >>> candidate_reference_sums(np.zeros((2, 1)), np.zeros((3, 1)), 1.0).round(6)
        array([3., 3.])
    """
    g = as_features("candidate_features", candidate_features)
    ref = as_features("reference", reference)
    check_same_dim(("candidate_features", g), ("reference", ref))
    return kernel_row_sums(  # centre defaults to the mean of ``ref``
        g,
        ref,
        lengthscale,
        center=center,
        chunk_size=chunk_size,
        device=device,
        kernel_precision=kernel_precision,
    )


def initial_state(
    party_features: ArrayLike,
    candidate_features: ArrayLike,
    reference: ArrayLike,
    lengthscale: float,
    *,
    center: ArrayLike | None = None,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "float64",
) -> InitialState:
    """The sums s, A, B of party i's own data before any reward (docs/cgm.md §7.1).

    Args:
        party_features: (n_i, d) party features D_i, n_i ≥ 1.
        candidate_features: (n_G, d) candidate features G.
        reference: (n_T, d) reference T.
        lengthscale: ℓ > 0.
        center: (d,) centring vector; default the mean of ``reference``.
        chunk_size: rows per kernel tile.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for the kernel pass.
        kernel_precision: dtype of kernel values; sums are float64 regardless.

    Returns:
        s = Σ_{x∈D_i} k(G, x), A = Σ_{D_i×D_i} k, B = Σ_{D_i×T} k.

    Raises:
        ValueError: on empty inputs, a bad lengthscale or mismatched dimensions.

    Example:
        >>> z = np.zeros
        >>> st = initial_state(z((2, 1)), z((3, 1)), z((5, 1)), 1.0)
        >>> st.s.round(6).tolist(), round(st.A, 6), round(st.B, 6)  # each k = 1
        ([2.0, 2.0, 2.0], 4.0, 10.0)
    """
    x = as_features("party_features", party_features)
    g = as_features("candidate_features", candidate_features)
    ref = as_features("reference", reference)
    check_same_dim(("party_features", x), ("candidate_features", g), ("reference", ref))
    mu = ref.mean(0) if center is None else np.asarray(center, dtype=np.float64)
    kw = {
        "center": mu,
        "chunk_size": chunk_size,
        "device": device,
        "kernel_precision": kernel_precision,
    }
    s = kernel_row_sums(g, x, lengthscale, **kw)
    a_sum = float(kernel_row_sums(x, x, lengthscale, **kw).sum())
    b_sum = float(kernel_row_sums(x, ref, lengthscale, **kw).sum())
    return InitialState(s=s, A=a_sum, B=b_sum, n_party=x.shape[0])


def sample_party(
    party_features: ArrayLike,
    candidate_features: ArrayLike,
    t: ArrayLike,
    n_reference: int,
    lengthscale: float,
    target: float,
    *,
    inv_temp: float,
    seed: Seed = None,
    state: InitialState | None = None,
    reference: ArrayLike | None = None,
    party_id: int | None = None,
    progress: bool = False,
) -> SamplingResult:
    """Weighted sampling of one party's reward set, fast path (docs/cgm.md §7.1–§7.2).

    Per step: v'(c) = 2(B + t_c)/((m+1)·n_T) − (A + 2 s_c + 1)/(m+1)² for every
    available c; β = inf takes the argmax (ties → lowest index); otherwise the
    gains Δ = v' − μ are min–max scaled to w ∈ [0, 1] (w ≡ 0 if all equal) and c*
    is drawn with p = softmax(β·w) over the available candidates in ascending
    order. Stops (after ≥ 1 addition) on ``target`` (μ ≥ r_i), then ``stall``
    (no new maximum for ceil(0.1·n_G) steps); ``exhausted`` when ≤ 1 candidate
    is left.

    Args:
        party_features: (n_i, d) party features D_i.
        candidate_features: (n_G, d) candidate features G, n_G ≥ 2.
        t: (n_G,) float64 reference sums from `candidate_reference_sums`.
        n_reference: n_T = |T| ≥ n_i + n_G.
        lengthscale: ℓ > 0.
        target: r_i (not NaN; one above what is reachable ends in stall/exhausted).
        inv_temp: β ≥ 0 or ``math.inf`` (greedy).
        seed: the party's seed; the generator is ``np.random.default_rng(seed)``.
        state: the sums of D_i from `initial_state`; computed from ``reference``
            when None.
        reference: (n_T, d) reference T, needed only when ``state`` is None.
        party_id: used in log messages only.
        progress: show a progress bar over additions.

    Returns:
        The chosen candidate indices, the value trace and the stop reason.

    Raises:
        ValueError: on β < 0, NaN target, feature-dimension mismatch, n_G < 2,
            bad ``t``/``state`` shapes, or neither ``state`` nor ``reference``.

    Example:
        >>> g = np.array([[0.0], [1.0], [5.0]])
        >>> ref = np.vstack([np.zeros((1, 1)), g])
        >>> t = candidate_reference_sums(g, ref, 1.0)
        >>> res = sample_party(ref[:1], g, t, 4, 1.0, 0.0, inv_temp=math.inf,
        ...                    reference=ref)
        >>> res.candidate_index.tolist(), res.stop_reason  # v(D_i) > 0 = target
        ([1], 'target')
    """
    x = as_features("party_features", party_features)
    g = as_features("candidate_features", candidate_features)
    check_same_dim(("party_features", x), ("candidate_features", g))
    check_pool(g)
    t = check_t(t, g.shape[0])
    n_reference = check_reference_size(n_reference, x.shape[0], g.shape[0])
    check_lengthscale(lengthscale)
    target = check_target(target)
    beta = check_inv_temp(inv_temp)
    if state is None:
        if reference is None:
            raise ValueError(
                "Arguments `state` and `reference` are both None; give one"
            )
        ref = as_features("reference", reference)
        if ref.shape[0] != n_reference:
            raise ValueError(
                f"Argument `reference` must have n_reference = {n_reference} rows, "
                f"got {ref.shape[0]}"
            )
        state = initial_state(x, g, ref, lengthscale)
    check_state(state, x.shape[0], g.shape[0])
    rng = np.random.default_rng(seed)
    result = run_party(
        g, t, n_reference, float(lengthscale), target, beta, rng, state, progress
    )
    _warn_if_short(result, target, party_id)
    return result


def sample_parties(
    parties: Sequence[ArrayLike],
    candidate_features: ArrayLike,
    reference: ArrayLike,
    lengthscale: float,
    targets: ArrayLike,
    *,
    inv_temp: float,
    seeds: Sequence[int | np.random.SeedSequence],
    workers: int = 1,
    device: str = "cpu",
    batched: bool | None = None,
    kernel_device: str = "cpu",
    kernel_precision: str = "float64",
    chunk_size: int = 4096,
    progress: bool = False,
    t: ArrayLike | None = None,
    states: Sequence[InitialState] | None = None,
    sums: PoolSums | None = None,
) -> list[SamplingResult]:
    """Sample every party's reward set (docs/cgm.md §7.1–§7.2).

    t and each party's initial sums are computed once on ``kernel_device``; the
    additions then run either in ``workers`` processes (numpy, one party per task)
    or as one batched float64 torch state of N × n_G on ``device`` with stopped
    parties masked. Party i always uses ``np.random.default_rng(seeds[i])`` on the
    CPU with the same probabilities, so the results do not depend on ``workers``
    or on the path (up to rounding of the kernel column on another device).
    ``workers`` > 1 starts processes with the "spawn" method, so the calling
    script needs the usual ``if __name__ == "__main__":`` guard; on the batched
    path ``workers`` is ignored.

    Args:
        parties: N arrays (n_i, d) of party features.
        candidate_features: (n_G, d) candidate features G.
        reference: (n_T, d) reference T = all party data ⊎ G.
        lengthscale: ℓ > 0.
        targets: (N,) reward values r_i.
        inv_temp: β ≥ 0 or ``math.inf``.
        seeds: one int or SeedSequence per party.
        workers: processes for the numpy path (1 runs in-process).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for the additions.
        batched: use the batched torch path; default True exactly on CUDA.
        kernel_device: device of the one-off kernel pass (t, s, A, B).
        kernel_precision: dtype of kernel values in that pass.
        chunk_size: rows per kernel tile in that pass.
        progress: show a progress bar over parties.
        t: the candidates' sums against T from `candidate_reference_sums`, when the
            caller reruns the sampler (a β sweep) and computes them once.
        states: the parties' `initial_state` sums, likewise.
        sums: t and the states together (`pool_sums`: from the value stage's
            kernel pass), instead of ``t`` and ``states``.

    Returns:
        One result per party, in party order.

    Raises:
        ValueError: on bad arguments (see `sample_party`), mismatched lengths of
            ``parties``, ``targets`` and ``seeds``, ``workers`` < 1, or ``sums``
            given together with ``t`` or ``states``.
        TypeError: if a seed is not an int or a SeedSequence, or ``workers`` is
            not an int.
    """
    xs = [as_features(f"parties[{i}]", p) for i, p in enumerate(parties)]
    g = as_features("candidate_features", candidate_features)
    ref = as_features("reference", reference)
    if not xs:
        raise ValueError("Argument `parties` must hold at least one party, got none")
    check_same_dim(("candidate_features", g), ("reference", ref))
    check_same_dim(
        *((f"parties[{i}]", x) for i, x in enumerate(xs)), ("reference", ref)
    )
    check_pool(g)
    check_lengthscale(lengthscale)
    check_reference_size(ref.shape[0], sum(x.shape[0] for x in xs), g.shape[0])
    r = np.asarray(targets, dtype=np.float64).reshape(-1)
    for name, seq in (("targets", r), ("seeds", seeds)):
        if len(seq) != len(xs):
            raise ValueError(
                f"Argument `{name}` must have one entry per party ({len(xs)}), "
                f"got {len(seq)}"
            )
    targets_ = [check_target(float(ri)) for ri in r]
    for i, sd in enumerate(seeds):
        if not (is_int(sd) or isinstance(sd, np.random.SeedSequence)):
            raise TypeError(
                f"Argument `seeds` must hold an int or SeedSequence per party, got "
                f"{sd!r} for party {i}"
            )
    beta = check_inv_temp(inv_temp)
    workers = check_positive_int("workers", workers)
    dev = resolve_device(device)
    use_batched = dev.type == "cuda" if batched is None else bool(batched)

    if sums is not None:
        if t is not None or states is not None:
            raise ValueError("Give `sums` or `t` and `states`, not both")
        t, states = sums.t, sums.states
    kw = {
        "center": ref.mean(0),
        "chunk_size": chunk_size,
        "device": kernel_device,
        "kernel_precision": kernel_precision,
    }
    if t is None:
        t = candidate_reference_sums(g, ref, lengthscale, **kw)
    t = check_t(t, g.shape[0])
    if states is None:
        states = [initial_state(x, g, ref, lengthscale, **kw) for x in xs]
    if len(states) != len(xs):
        raise ValueError(
            f"Argument `states` must have one entry per party ({len(xs)}), "
            f"got {len(states)}"
        )
    for x, st in zip(xs, states, strict=True):
        check_state(st, x.shape[0], g.shape[0])
    n_t = ref.shape[0]
    ell = float(lengthscale)

    if use_batched:
        results = _run_batched(
            g, t, n_t, ell, targets_, beta, seeds, states, dev, progress
        )
    else:
        results = run_parties(
            g, t, n_t, ell, targets_, beta, seeds, states,
            workers=workers, progress=progress,
        )  # fmt: skip
    for i, res in enumerate(results):
        _warn_if_short(res, targets_[i], i)
    return results


def _run_batched(
    g: NDArray[np.float64],
    t: NDArray[np.float64],
    n_t: int,
    lengthscale: float,
    targets: list[float],
    beta: float,
    seeds: Sequence[int | np.random.SeedSequence],
    states: list[InitialState],
    device: torch.device,
    progress: bool = False,
) -> list[SamplingResult]:
    """All parties at once: a float64 N × n_G state on ``device`` (docs/cgm.md §7.2).

    Each running party follows `rewards.cgm.sampler_core.run_party` step for step;
    the draws use the party's numpy generator on the CPU with the same
    probabilities.
    """
    n_parties, n_g = len(states), g.shape[0]
    stall_limit = math.ceil(STALL_FRACTION * n_g)
    inv_two_l2 = 1.0 / (2.0 * lengthscale**2)
    greedy = math.isinf(beta)
    rngs = [np.random.default_rng(sd) for sd in seeds]
    gc = g - g.mean(0)
    g_d = torch.from_numpy(gc).to(device)
    g2_d = (g_d * g_d).sum(1)
    t_d = torch.from_numpy(t).to(device)
    s_d = torch.from_numpy(np.stack([st.s for st in states])).to(device)
    a_d = torch.tensor([st.A for st in states], dtype=torch.float64, device=device)
    b_d = torch.tensor([st.B for st in states], dtype=torch.float64, device=device)
    m_d = torch.tensor(
        [float(st.n_party) for st in states], dtype=torch.float64, device=device
    )
    taken_d = torch.zeros(n_parties, n_g, dtype=torch.bool, device=device)
    taken = np.zeros((n_parties, n_g), dtype=bool)
    mu = [2.0 * st.B / (st.n_party * n_t) - st.A / st.n_party**2 for st in states]
    start, mu_max = list(mu), list(mu)
    stall = [0] * n_parties
    chosen: list[list[int]] = [[] for _ in range(n_parties)]
    trace: list[list[float]] = [[] for _ in range(n_parties)]
    reasons: list[StopReason] = ["exhausted"] * n_parties
    active = list(range(n_parties))
    bar = tqdm(total=n_parties, disable=not progress)
    while active:
        still = [i for i in active if n_g - len(chosen[i]) > 1]
        bar.update(len(active) - len(still))  # "exhausted" before a step
        active = still
        if not active:
            break
        rows = torch.tensor(active, device=device)
        m1 = (m_d[rows] + 1.0)[:, None]
        v = 2.0 * (b_d[rows][:, None] + t_d[None, :]) / (m1 * n_t) - (
            a_d[rows][:, None] + 2.0 * s_d[rows] + 1.0
        ) / (m1 * m1)
        if greedy:
            c_d = v.masked_fill(taken_d[rows], -math.inf).argmax(1)
            cs = c_d.cpu().tolist()
        else:
            v_np = v.cpu().numpy()
            cs = [
                choose(v_np[k], taken[i], mu[i], beta, greedy, rngs[i])
                for k, i in enumerate(active)
            ]
            c_d = torch.tensor(cs, device=device)
        ar = torch.arange(len(active), device=device)
        mu_new = v[ar, c_d].cpu().tolist()
        a_d[rows] += 2.0 * s_d[rows, c_d] + 1.0
        b_d[rows] += t_d[c_d]
        m_d[rows] += 1.0
        taken_d[rows, c_d] = True
        going: list[int] = []
        for k, i in enumerate(active):
            c, mu[i] = cs[k], mu_new[k]
            taken[i, c] = True
            chosen[i].append(c)
            trace[i].append(mu[i])
            if mu[i] > mu_max[i]:
                mu_max[i], stall[i] = mu[i], 0
            else:
                stall[i] += 1
            if mu[i] >= targets[i]:
                reasons[i] = "target"
            elif stall[i] >= stall_limit:
                reasons[i] = "stall"
            else:
                going.append(k)
        bar.update(len(active) - len(going))
        if going:
            k_d = torch.tensor(going, device=device)
            c_go = c_d[k_d]
            d2 = g2_d[None, :] + g2_d[c_go][:, None] - 2.0 * (g_d[c_go] @ g_d.T)
            s_d[rows[k_d]] += torch.exp(-d2.clamp_min_(0.0) * inv_two_l2)
        active = [active[k] for k in going]
    bar.close()
    return [
        SamplingResult(
            candidate_index=np.asarray(chosen[i], dtype=np.int64),
            value_trace=np.asarray(trace[i], dtype=np.float64),
            stop_reason=reasons[i],
            start_value=float(start[i]),
            best_value=float(max(trace[i])),
        )
        for i in range(n_parties)
    ]


def _warn_if_short(result: SamplingResult, target: float, party_id: int | None) -> None:
    if result.stop_reason != "target":
        logger.warning(
            "party %s: sampling stopped (%s) after %d candidates below its reward "
            "value: gap r_i - max value = %.6g (r_i = %.6g, best = %.6g)",
            "?" if party_id is None else party_id,
            result.stop_reason,
            result.n_rewards,
            target - result.best_value,
            target,
            result.best_value,
        )


def sample_parties_except(
    excluded: Sequence[int],
    parties: Sequence[ArrayLike],
    candidate_features: ArrayLike,
    reference: ArrayLike,
    lengthscale: float,
    targets: ArrayLike,
    *,
    seeds: Sequence[int | np.random.SeedSequence],
    states: Sequence[InitialState] | None = None,
    sums: PoolSums | None = None,
    **kwargs: object,
) -> list[SamplingResult]:
    """`sample_parties` for every party not in ``excluded`` (docs/cgm.md §6.4).

    An excluded party (φ_i ≤ 0) receives nothing: its result has no rows,
    ``stop_reason = "excluded"`` and start value r_i = v(D_i), its reward value.
    The others are sampled exactly as by `sample_parties` with their own seeds
    (and initial states), so excluding nobody changes nothing.

    Args:
        excluded: ids of the parties that get no reward.
        parties: (N,) features of each party's own data.
        candidate_features: (n_G, d) candidate features.
        reference: (n_T, d) reference features.
        lengthscale: ℓ > 0.
        targets: (N,) reward values r_i (v(D_i) for an excluded party).
        seeds: (N,) per-party seeds.
        states: optional (N,) initial states, as for `sample_parties`.
        sums: optional t and (N,) initial states (`pool_sums`), as for
            `sample_parties`.
        **kwargs: the other keyword arguments of `sample_parties`.

    Returns:
        One `SamplingResult` per party, in party order.

    Raises:
        ValueError: as `sample_parties`, also if ``sums`` is given with ``t`` or
            ``states``.
    """
    r = np.asarray(targets, dtype=np.float64).reshape(-1)
    skip = set(excluded)
    keep = [i for i in range(len(parties)) if i not in skip]
    sampled = sample_parties(
        [parties[i] for i in keep],
        candidate_features,
        reference,
        lengthscale,
        r[keep],
        seeds=[seeds[i] for i in keep],
        states=None if states is None else [states[i] for i in keep],
        sums=None if sums is None else sums.parties(keep),
        **kwargs,  # type: ignore[arg-type]
    )
    got = dict(zip(keep, sampled, strict=True))
    return [got[i] if i in got else _excluded(float(r[i])) for i in range(len(r))]


def _excluded(own_value: float) -> SamplingResult:
    """The empty reward set of an excluded party: no rows, v stays v(D_i)."""
    return SamplingResult(
        candidate_index=np.zeros(0, dtype=np.int64),
        value_trace=np.zeros(0, dtype=np.float64),
        stop_reason="excluded",
        start_value=own_value,
        best_value=own_value,
    )


__all__ = [
    "InitialState",
    "PoolSums",
    "SamplingResult",
    "candidate_reference_sums",
    "initial_state",
    "pool_sums",
    "sample_parties",
    "sample_parties_except",
    "sample_party",
]
