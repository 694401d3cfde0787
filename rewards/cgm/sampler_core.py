"""The torch-free core of reward sampling: the loop, its state, worker entry points.

docs/cgm.md §7.1–§7.2 (Tay, Xu, Foo, Low, AAAI 2022, Algorithm 1). Party i receives
candidates one at a time from its own copy of the pool G, drawn with probability
softmax(β·w) of the min–max scaled value gains w, until v(D_i ⊎ R) reaches its
reward value r_i (or the gains stall, or the pool runs out).

The loop keeps the unnormalised sums A = Σ_{S×S} k, B = Σ_{S×T} k and the vector
s_c = Σ_{x∈S} k(c, x) in float64 and adds one kernel column k(G, c*) per addition,
so a step costs O(n_G·d). The one-off sums t, s, A, B come from
`rewards.cgm.sampling`, which also holds the batched torch path.

This module imports neither torch nor `valuation.kernels`: the worker processes of
`run_parties` import only this module, so a spawned worker starts in a fraction of a
second instead of paying torch's import (seconds) per process.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from data.checks import check_int, check_interval, check_number

# "excluded": a party with φ ≤ 0 receives nothing (docs/cgm.md §6.4).
StopReason = Literal["target", "stall", "exhausted", "excluded"]

#: Stall limit L = ceil(0.1·n_G) (docs/cgm.md §7.1, the reference code's patience).
STALL_FRACTION = 0.1


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
        stop_reason: ``"target"``, ``"stall"``, ``"exhausted"``, or
            ``"excluded"`` (φ_i ≤ 0, no rows; docs/cgm.md §6.4).
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
        """v(D_i ⊎ R) after the last addition (v(D_i) when R is empty)."""
        if self.value_trace.shape[0] == 0:
            return float(self.start_value)
        return float(self.value_trace[-1])

    @property
    def n_rewards(self) -> int:
        """Number of candidates received."""
        return int(self.candidate_index.shape[0])


# --------------------------------------------------------------------------- loop


def run_party(
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
    """The loop of docs/cgm.md §7.1 on running float64 sums (§7.2), checked inputs.

    Args:
        g: (n_G, d) float64 candidate features.
        t: (n_G,) float64, t_c = Σ_{y∈T} k(c, y).
        n_t: n_T = |T|.
        lengthscale: ℓ > 0.
        target: r_i.
        beta: β ≥ 0 or ``math.inf``.
        rng: the party's generator.
        state: the sums of D_i.
        progress: show a progress bar over additions.

    Returns:
        The chosen candidates, the value trace and the stop reason.

    Example:
        >>> g = np.array([[0.0], [1.0], [5.0]])
        >>> ref = np.vstack([[[0.0]], g])  # T = D_i ⊎ G with D_i = {0}, ℓ = 1
        >>> k = lambda a, b: np.exp(-((a - b.T) ** 2) / 2)
        >>> st = InitialState(s=k(g, ref[:1]).sum(1), A=1.0,
        ...                   B=float(k(ref[:1], ref).sum()), n_party=1)
        >>> res = run_party(g, k(g, ref).sum(1), 4, 1.0, 0.0, math.inf, None, st)
        >>> res.candidate_index.tolist(), res.stop_reason  # v(D_i) > 0 = target
        ([1], 'target')
    """
    n_g = g.shape[0]
    stall_limit = math.ceil(STALL_FRACTION * n_g)
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
        v = candidate_values(s, t, a_sum, b_sum, m, n_t)
        c = choose(v, taken, mu, beta, greedy, rng)
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
        s += kernel_column(gc, g2, c, inv_two_l2)
    bar.close()
    return SamplingResult(
        candidate_index=np.asarray(chosen, dtype=np.int64),
        value_trace=np.asarray(trace, dtype=np.float64),
        stop_reason=reason,
        start_value=float(start),
        best_value=float(max(trace)),
    )


def candidate_values(
    s: NDArray[np.float64],
    t: NDArray[np.float64],
    a_sum: float,
    b_sum: float,
    m: int,
    n_t: int,
) -> NDArray[np.float64]:
    """v'(c) = 2(B + t_c)/((m+1)·n_T) − (A + 2 s_c + 1)/(m+1)² for every c.

    Example:
        >>> candidate_values(np.zeros(1), np.ones(1), 1.0, 1.0, 1, 2).round(6)
        array([0.5])
    """
    return 2.0 * (b_sum + t) / ((m + 1) * n_t) - (a_sum + 2.0 * s + 1.0) / (
        (m + 1) * (m + 1)
    )


def choose(
    v: NDArray[np.float64],
    taken: NDArray[np.bool_],
    mu: float,
    beta: float,
    greedy: bool,
    rng: np.random.Generator,
) -> int:
    """Pick c* among the untaken candidates (``v`` is overwritten where taken).

    Greedy takes the first maximum (ties go to the lowest index); otherwise the
    gains v − μ over the available candidates, in ascending order, are min–max
    scaled to w ∈ [0, 1] (w ≡ 0 if all equal) and c* is drawn with
    p = softmax(β·w) by ``rng``.

    Example:
        >>> v = np.array([0.3, 0.9, 0.9])
        >>> choose(v, np.array([False, False, True]), 0.0, math.inf, True, None)
        1
    """
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


def kernel_column(
    gc: NDArray[np.float64], g2: NDArray[np.float64], c: int, inv_two_l2: float
) -> NDArray[np.float64]:
    """k(G, g_c) from centred features gc and their squared norms g2.

    Centring keeps ‖x‖² + ‖y‖² − 2x·y accurate (docs/cgm.md §5.4); clamped at 0.

    Example:
        >>> gc = np.array([[0.0], [1.0]])
        >>> kernel_column(gc, (gc**2).sum(1), 0, 0.5).round(6)
        array([1.      , 0.606531])
    """
    d2 = g2 + g2[c] - 2.0 * (gc @ gc[c])
    np.maximum(d2, 0.0, out=d2)
    return np.exp(-d2 * inv_two_l2)


# ------------------------------------------------------------------ process pool


def run_parties(
    g: NDArray[np.float64],
    t: NDArray[np.float64],
    n_t: int,
    lengthscale: float,
    targets: Sequence[float],
    beta: float,
    seeds: Sequence[int | np.random.SeedSequence],
    states: Sequence[InitialState],
    *,
    workers: int = 1,
    progress: bool = False,
) -> list[SamplingResult]:
    """`run_party` for every party, in-process or in ``workers`` spawned processes.

    Party i always uses ``np.random.default_rng(seeds[i])``, so the results do not
    depend on ``workers``. The workers import this module only (no torch).

    Args:
        g: (n_G, d) float64 candidate features.
        t: (n_G,) float64 reference sums.
        n_t: n_T.
        lengthscale: ℓ > 0.
        targets: r_i per party.
        beta: β ≥ 0 or ``math.inf``.
        seeds: one seed per party.
        states: one `InitialState` per party.
        workers: processes (1 runs in-process).
        progress: show a progress bar over parties.

    Returns:
        One result per party, in party order.
    """
    n = len(states)
    if workers == 1 or n == 1:
        return [
            run_party(g, t, n_t, lengthscale, targets[i], beta,
                      np.random.default_rng(sd), st)
            for i, (sd, st) in enumerate(
                tqdm(zip(seeds, states, strict=True), total=n, disable=not progress)
            )
        ]  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, n),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(g, t, n_t, lengthscale, beta),
    ) as pool:
        futures = [
            pool.submit(_worker_task, targets[i], seeds[i], states[i]) for i in range(n)
        ]
        return [f.result() for f in tqdm(futures, total=n, disable=not progress)]


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
    return run_party(
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


def as_features(name: str, x: ArrayLike) -> NDArray[np.float64]:
    """``x`` as a contiguous float64 (n, d) array with n, d ≥ 1 and finite entries.

    Raises:
        ValueError: on another shape or a NaN/inf entry.
    """
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty 2-D array (n, d), got shape "
            f"{arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"Argument `{name}` must be finite, got NaN or inf entries")
    return arr


def check_same_dim(*named: tuple[str, NDArray]) -> None:
    """Refuse (name, array) pairs whose feature dimensions differ."""
    dims = {name: arr.shape[1] for name, arr in named}
    if len(set(dims.values())) > 1:
        shown = ", ".join(f"`{k}` d={v}" for k, v in dims.items())
        raise ValueError(f"Arguments must share one feature dimension, got {shown}")


def check_pool(g: NDArray) -> None:
    """Refuse a pool of fewer than 2 candidates."""
    if g.shape[0] < 2:
        raise ValueError(
            f"Argument `candidate_features` must hold at least 2 candidates, got "
            f"{g.shape[0]}"
        )


def check_t(t: ArrayLike, n_g: int) -> NDArray[np.float64]:
    """``t`` as a finite float64 vector of shape (n_G,)."""
    arr = np.ascontiguousarray(t, dtype=np.float64)
    if arr.shape != (n_g,) or not np.isfinite(arr).all():
        raise ValueError(
            f"Argument `t` must be a finite vector of shape ({n_g},), got shape "
            f"{arr.shape}"
        )
    return arr


def check_state(state: InitialState, n_i: int, n_g: int) -> None:
    """Refuse sums that describe another party size or pool size."""
    if state.n_party != n_i or np.shape(state.s) != (n_g,):
        raise ValueError(
            f"Argument `state` must describe {n_i} party rows and {n_g} candidates, "
            f"got n_party={state.n_party} and s of shape {np.shape(state.s)}"
        )


def check_reference_size(n_reference: int, n_i: int, n_g: int) -> int:
    """n_T as an int ≥ n_i + n_G (T holds the party data and the whole pool)."""
    n_reference = check_int("n_reference", n_reference)
    if n_reference < n_i + n_g:
        raise ValueError(
            f"Argument `n_reference` must be >= n_i + n_G = {n_i + n_g} (T holds the "
            f"party data and the whole pool), got {n_reference}"
        )
    return n_reference


def check_target(target: float) -> float:
    """r_i as a float: any number but NaN (±inf allowed)."""
    out = check_number("target", target)
    if math.isnan(out):
        raise ValueError(f"Argument `target` must not be NaN, got {target!r}")
    return out


def check_inv_temp(inv_temp: float) -> float:
    """β as a float in [0, inf] (inf = greedy)."""
    return check_interval("inv_temp", inv_temp, 0, math.inf)


__all__ = [
    "STALL_FRACTION",
    "InitialState",
    "SamplingResult",
    "StopReason",
    "as_features",
    "candidate_values",
    "check_inv_temp",
    "check_pool",
    "check_reference_size",
    "check_same_dim",
    "check_state",
    "check_t",
    "check_target",
    "choose",
    "kernel_column",
    "run_parties",
    "run_party",
]
