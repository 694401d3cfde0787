"""Reward realisation: weighted sampling of candidates per party (docs/cgm.md §7).

Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine Learning via Synthetic
Data Rewards" (AAAI 2022), Algorithm 1: party i receives candidates one at a time,
drawn without replacement from its own copy of the pool G with probability
softmax(β·w), w the min–max scaled value gains, until v(D_i ⊎ R) reaches its reward
value r_i (or the gains stall, or the pool runs out). v is the value of docs/cgm.md §5.1,
v(S) = S_XY(S) − S_X(S) against the reference T = D_1 ⊎ … ⊎ D_N ⊎ G.

The fast path of §7.2 keeps the unnormalised sums A = Σ_{S×S} k, B = Σ_{S×T} k and
the vector s_c = Σ_{x∈S} k(c, x) in float64 and adds one kernel column k(G, c*) per
addition, so a step costs O(n_G·d); t_c = Σ_{y∈T} k(c, y) is computed once.
`naive_sample_party` recomputes every sum from the features at every step and is the
reference the fast path is tested against.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from data.seeding import Seed

if TYPE_CHECKING:
    import torch

# torch and valuation.kernels (which imports torch) are imported inside the functions
# that use them: a spawned sampling worker then starts in a fraction of a second
# instead of paying torch's import (seconds) per process.

logger = logging.getLogger(__name__)

StopReason = Literal["target", "stall", "exhausted"]

# Stall limit L = ceil(0.1·n_G) (docs/cgm.md §7.1, the reference code's patience).
_STALL_FRACTION = 0.1


@dataclass(frozen=True)
class InitialState:
    """Unnormalised sums of a party's own data D_i (docs/cgm.md §7.1).

    Attributes:
        s: (n_G,) float64, s_c = Σ_{x∈D_i} k(c, x).
        A: Σ_{x,x'∈D_i} k(x, x') (diagonal included).
        B: Σ_{x∈D_i, y∈T} k(x, y).
        n_party: n_i = |D_i|.
    """

    s: NDArray[np.float64]
    A: float
    B: float
    n_party: int


@dataclass(frozen=True)
class SamplingResult:
    """What one party receives (docs/cgm.md §7.1, the datasets of §7.3).

    Attributes:
        candidate_index: (n_rewards,) int64 candidate rows in the order of addition.
        value_trace: (n_rewards,) float64, v(D_i ⊎ R) after each addition.
        stop_reason: ``"target"``, ``"stall"`` or ``"exhausted"``.
        start_value: v(D_i).
        best_value: max of ``value_trace``.
    """

    candidate_index: NDArray[np.int64]
    value_trace: NDArray[np.float64]
    stop_reason: StopReason
    start_value: float
    best_value: float

    @property
    def achieved_value(self) -> float:
        """v(D_i ⊎ R) after the last addition."""
        return float(self.value_trace[-1])

    @property
    def n_rewards(self) -> int:
        """Number of candidates received."""
        return int(self.candidate_index.shape[0])


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
        >>> candidate_reference_sums(np.zeros((2, 1)), np.zeros((3, 1)), 1.0)
        array([3., 3.])
    """
    from valuation.kernels import kernel_row_sums

    g = _features("candidate_features", candidate_features)
    ref = _features("reference", reference)
    _same_dim(("candidate_features", g), ("reference", ref))
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
        >>> st.s.tolist(), st.A, st.B  # every kernel value is 1
        ([2.0, 2.0, 2.0], 4.0, 10.0)
    """
    from valuation.kernels import kernel_row_sums

    x = _features("party_features", party_features)
    g = _features("candidate_features", candidate_features)
    ref = _features("reference", reference)
    _same_dim(("party_features", x), ("candidate_features", g), ("reference", ref))
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
    x = _features("party_features", party_features)
    g = _features("candidate_features", candidate_features)
    _same_dim(("party_features", x), ("candidate_features", g))
    _check_pool(g)
    t = _check_t(t, g.shape[0])
    _check_reference_size(n_reference, x.shape[0], g.shape[0])
    _check_lengthscale(lengthscale)
    target = _check_target(target)
    beta = _check_inv_temp(inv_temp)
    if state is None:
        if reference is None:
            raise ValueError(
                "Arguments `state` and `reference` are both None; give one"
            )
        ref = _features("reference", reference)
        if ref.shape[0] != n_reference:
            raise ValueError(
                f"Argument `reference` must have n_reference = {n_reference} rows, "
                f"got {ref.shape[0]}"
            )
        state = initial_state(x, g, ref, lengthscale)
    _check_state(state, x.shape[0], g.shape[0])
    rng = np.random.default_rng(seed)
    result = _run_party(
        g, t, int(n_reference), float(lengthscale), target, beta, rng, state, progress
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

    Returns:
        One result per party, in party order.

    Raises:
        ValueError: on bad arguments (see `sample_party`), mismatched lengths of
            ``parties``, ``targets`` and ``seeds``, or ``workers`` < 1.
        TypeError: if a seed is not an int or a SeedSequence.
    """
    from data.devices import resolve_device

    xs = [_features(f"parties[{i}]", p) for i, p in enumerate(parties)]
    g = _features("candidate_features", candidate_features)
    ref = _features("reference", reference)
    if not xs:
        raise ValueError("Argument `parties` must hold at least one party, got none")
    _same_dim(("candidate_features", g), ("reference", ref))
    _same_dim(*((f"parties[{i}]", x) for i, x in enumerate(xs)), ("reference", ref))
    _check_pool(g)
    _check_lengthscale(lengthscale)
    _check_reference_size(ref.shape[0], sum(x.shape[0] for x in xs), g.shape[0])
    r = np.asarray(targets, dtype=np.float64).reshape(-1)
    for name, seq in (("targets", r), ("seeds", seeds)):
        if len(seq) != len(xs):
            raise ValueError(
                f"Argument `{name}` must have one entry per party ({len(xs)}), "
                f"got {len(seq)}"
            )
    targets_ = [_check_target(float(ri)) for ri in r]
    for i, sd in enumerate(seeds):
        if isinstance(sd, bool) or not isinstance(
            sd, (int, np.integer, np.random.SeedSequence)
        ):
            raise TypeError(
                f"Argument `seeds` must hold an int or SeedSequence per party, got "
                f"{sd!r} for party {i}"
            )
    beta = _check_inv_temp(inv_temp)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"Argument `workers` must be an int >= 1, got {workers!r}")
    dev = resolve_device(device)
    use_batched = dev.type == "cuda" if batched is None else bool(batched)

    kw = {
        "center": ref.mean(0),
        "chunk_size": chunk_size,
        "device": kernel_device,
        "kernel_precision": kernel_precision,
    }
    if t is None:
        t = candidate_reference_sums(g, ref, lengthscale, **kw)
    t = _check_t(t, g.shape[0])
    if states is None:
        states = [initial_state(x, g, ref, lengthscale, **kw) for x in xs]
    if len(states) != len(xs):
        raise ValueError(
            f"Argument `states` must have one entry per party ({len(xs)}), "
            f"got {len(states)}"
        )
    for x, st in zip(xs, states, strict=True):
        _check_state(st, x.shape[0], g.shape[0])
    n_t = ref.shape[0]
    ell = float(lengthscale)

    if use_batched:
        results = _run_batched(
            g, t, n_t, ell, targets_, beta, seeds, states, dev, progress
        )
    elif workers == 1 or len(xs) == 1:
        results = [
            _run_party(g, t, n_t, ell, targets_[i], beta, np.random.default_rng(sd), st)
            for i, (sd, st) in enumerate(
                tqdm(
                    zip(seeds, states, strict=True), total=len(xs), disable=not progress
                )
            )
        ]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(xs)),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(g, t, n_t, ell, beta),
        ) as pool:
            futures = [
                pool.submit(_worker_task, targets_[i], seeds[i], states[i])
                for i in range(len(xs))
            ]
            results = [
                f.result() for f in tqdm(futures, total=len(xs), disable=not progress)
            ]
    for i, res in enumerate(results):
        _warn_if_short(res, targets_[i], i)
    return results


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
    stopping rules are those of `sample_party`. Used by the tests and the bench.

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
    from valuation.kernels import rbf_kernel

    x = _features("party_features", party_features)
    g = _features("candidate_features", candidate_features)
    ref = _features("reference", reference)
    _same_dim(("party_features", x), ("candidate_features", g), ("reference", ref))
    _check_pool(g)
    _check_lengthscale(lengthscale)
    target = _check_target(target)
    beta = _check_inv_temp(inv_temp)
    rng = np.random.default_rng(seed)
    n_g, n_t = g.shape[0], ref.shape[0]
    stall_limit = math.ceil(_STALL_FRACTION * n_g)
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
        >>> direct_value(np.zeros((1, 1)), np.zeros((2, 1)), 1.0)  # 2·2/(1·2) − 1
        1.0
    """
    from valuation.kernels import rbf_kernel

    s_set = _features("features", features)
    ref = _features("reference", reference)
    _same_dim(("features", s_set), ("reference", ref))
    m, n_t = s_set.shape[0], ref.shape[0]
    s_xy = 2.0 * rbf_kernel(s_set, ref, lengthscale).sum() / (m * n_t)
    s_x = rbf_kernel(s_set, s_set, lengthscale).sum() / (m * m)
    return float(s_xy - s_x)


# --------------------------------------------------------------------------- core


def _run_party(
    g: NDArray[np.float64],
    t: NDArray[np.float64],
    n_t: int,
    lengthscale: float,
    target: float,
    beta: float,
    rng: np.random.Generator,
    state: InitialState,
    progress: bool = False,
) -> SamplingResult:
    """The loop of docs/cgm.md §7.1 on running float64 sums (§7.2)."""
    n_g = g.shape[0]
    stall_limit = math.ceil(_STALL_FRACTION * n_g)
    inv_two_l2 = 1.0 / (2.0 * lengthscale**2)
    s = np.array(state.s, dtype=np.float64)  # own copy: updated in place
    gc = g - g.mean(0)
    g2 = np.einsum("ij,ij->i", gc, gc)
    a_sum, b_sum, m = float(state.A), float(state.B), int(state.n_party)
    taken = np.zeros(n_g, dtype=bool)
    mu = 2.0 * b_sum / (m * n_t) - a_sum / (m * m)
    start, mu_max, stall = mu, mu, 0
    greedy = math.isinf(beta)
    chosen: list[int] = []
    trace: list[float] = []
    reason: StopReason = "exhausted"
    bar = tqdm(total=n_g - 1, disable=not progress)
    while True:
        if n_g - len(chosen) <= 1:
            reason = "exhausted"
            break
        v = _candidate_values(s, t, a_sum, b_sum, m, n_t)
        c = _choose(v, taken, mu, beta, greedy, rng)
        mu = float(v[c])
        a_sum += 2.0 * s[c] + 1.0
        b_sum += t[c]
        m += 1
        taken[c] = True
        chosen.append(c)
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
        s += _kernel_column(gc, g2, c, inv_two_l2)
    bar.close()
    return SamplingResult(
        candidate_index=np.asarray(chosen, dtype=np.int64),
        value_trace=np.asarray(trace, dtype=np.float64),
        stop_reason=reason,
        start_value=float(start),
        best_value=float(max(trace)),
    )


def _candidate_values(
    s: NDArray[np.float64],
    t: NDArray[np.float64],
    a_sum: float,
    b_sum: float,
    m: int,
    n_t: int,
) -> NDArray[np.float64]:
    """v'(c) = 2(B + t_c)/((m+1)·n_T) − (A + 2 s_c + 1)/(m+1)² for every c."""
    return 2.0 * (b_sum + t) / ((m + 1) * n_t) - (a_sum + 2.0 * s + 1.0) / (
        (m + 1) * (m + 1)
    )


def _choose(
    v: NDArray[np.float64],
    taken: NDArray[np.bool_],
    mu: float,
    beta: float,
    greedy: bool,
    rng: np.random.Generator,
) -> int:
    """Pick c* among the untaken candidates (``v`` is overwritten where taken)."""
    if greedy:
        v[taken] = -np.inf
        return int(np.argmax(v))  # first maximum: ties go to the lowest index
    avail = np.flatnonzero(~taken)  # ascending, as the naive sampler lists them
    delta = v[avail] - mu
    lo, hi = delta.min(), delta.max()
    w = (delta - lo) / (hi - lo) if hi > lo else np.zeros_like(delta)
    z = beta * w
    p = np.exp(z - z.max())  # max-subtraction: no overflow for large β
    return int(avail[rng.choice(avail.shape[0], p=p / p.sum())])


def _kernel_column(
    gc: NDArray[np.float64], g2: NDArray[np.float64], c: int, inv_two_l2: float
) -> NDArray[np.float64]:
    """k(G, g_c) from centred features gc and their squared norms g2.

    Centring keeps ‖x‖² + ‖y‖² − 2x·y accurate (docs/cgm.md §5.4); clamped at 0.
    """
    d2 = g2 + g2[c] - 2.0 * (gc @ gc[c])
    np.maximum(d2, 0.0, out=d2)
    return np.exp(-d2 * inv_two_l2)


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

    Each running party follows `_run_party` step for step; the draws use the
    party's numpy generator on the CPU with the same probabilities.
    """
    import torch

    n_parties, n_g = len(states), g.shape[0]
    stall_limit = math.ceil(_STALL_FRACTION * n_g)
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
                _choose(v_np[k], taken[i], mu[i], beta, greedy, rngs[i])
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


# ------------------------------------------------------------------ process pool

# Per-process copy of the arrays all tasks share (set by the pool's initializer).
_WORKER: dict[str, Any] = {}


def _init_worker(
    g: NDArray[np.float64],
    t: NDArray[np.float64],
    n_t: int,
    lengthscale: float,
    beta: float,
) -> None:
    """Hold the shared arrays once per worker process."""
    _WORKER.update(g=g, t=t, n_t=n_t, lengthscale=lengthscale, beta=beta)


def _worker_task(
    target: float, seed: int | np.random.SeedSequence, state: InitialState
) -> SamplingResult:
    """Run one party in a worker process on the shared arrays."""
    w = _WORKER
    return _run_party(
        w["g"],
        w["t"],
        w["n_t"],
        w["lengthscale"],
        target,
        w["beta"],
        np.random.default_rng(seed),
        state,
    )


# ------------------------------------------------------------------- validation


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


def _features(name: str, x: ArrayLike) -> NDArray[np.float64]:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty 2-D array (n, d), got shape "
            f"{arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"Argument `{name}` must be finite, got NaN or inf entries")
    return arr


def _same_dim(*named: tuple[str, NDArray]) -> None:
    dims = {name: arr.shape[1] for name, arr in named}
    if len(set(dims.values())) > 1:
        shown = ", ".join(f"`{k}` d={v}" for k, v in dims.items())
        raise ValueError(f"Arguments must share one feature dimension, got {shown}")


def _check_pool(g: NDArray) -> None:
    if g.shape[0] < 2:
        raise ValueError(
            f"Argument `candidate_features` must hold at least 2 candidates, got "
            f"{g.shape[0]}"
        )


def _check_t(t: ArrayLike, n_g: int) -> NDArray[np.float64]:
    arr = np.ascontiguousarray(t, dtype=np.float64)
    if arr.shape != (n_g,) or not np.isfinite(arr).all():
        raise ValueError(
            f"Argument `t` must be a finite vector of shape ({n_g},), got shape "
            f"{arr.shape}"
        )
    return arr


def _check_state(state: InitialState, n_i: int, n_g: int) -> None:
    if state.n_party != n_i or np.shape(state.s) != (n_g,):
        raise ValueError(
            f"Argument `state` must describe {n_i} party rows and {n_g} candidates, "
            f"got n_party={state.n_party} and s of shape {np.shape(state.s)}"
        )


def _check_reference_size(n_reference: int, n_i: int, n_g: int) -> None:
    if isinstance(n_reference, bool) or not isinstance(n_reference, (int, np.integer)):
        raise ValueError(f"Argument `n_reference` must be an int, got {n_reference!r}")
    if n_reference < n_i + n_g:
        raise ValueError(
            f"Argument `n_reference` must be >= n_i + n_G = {n_i + n_g} (T holds the "
            f"party data and the whole pool), got {n_reference}"
        )


def _check_lengthscale(lengthscale: float) -> None:
    if isinstance(lengthscale, bool) or not (
        isinstance(lengthscale, (int, float, np.floating, np.integer))
        and math.isfinite(lengthscale)
        and lengthscale > 0
    ):
        raise ValueError(f"Argument `lengthscale` must be > 0, got {lengthscale!r}")


def _check_target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(
        target, (int, float, np.floating, np.integer)
    ):
        raise ValueError(f"Argument `target` must be a number, got {target!r}")
    if math.isnan(target):
        raise ValueError(f"Argument `target` must not be NaN, got {target!r}")
    return float(target)


def _check_inv_temp(inv_temp: float) -> float:
    if isinstance(inv_temp, bool) or not isinstance(
        inv_temp, (int, float, np.floating, np.integer)
    ):
        raise ValueError(f"Argument `inv_temp` must be a number >= 0, got {inv_temp!r}")
    if math.isnan(inv_temp) or inv_temp < 0:
        raise ValueError(
            f"Argument `inv_temp` must be >= 0 (inf = greedy), got {inv_temp!r}"
        )
    return float(inv_temp)


__all__ = [
    "InitialState",
    "SamplingResult",
    "candidate_reference_sums",
    "direct_value",
    "initial_state",
    "naive_sample_party",
    "sample_parties",
    "sample_party",
]
