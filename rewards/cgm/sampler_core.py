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

import logging
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

logger = logging.getLogger(__name__)

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

    Each step performs the operations of `candidate_values`, `choose` and
    `kernel_column` in the same order on preallocated buffers (`_Workspace`), so the
    candidates, the random stream and the value trace are bitwise those of the
    allocating formulation. Taken candidates get t_c = −inf in a private copy of t,
    which makes their v'(c) = −inf without a masking pass.

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
    t_live = np.array(t, dtype=np.float64)  # own copy: −inf where taken
    gc = g - g.mean(0)
    g2 = np.einsum("ij,ij->i", gc, gc)
    a_sum, b_sum, m = float(state.A), float(state.B), int(state.n_party)
    mu = 2.0 * b_sum / (m * n_t) - a_sum / (m * m)
    start, mu_max, stall = mu, mu, 0
    greedy = math.isinf(beta)
    ws = _Workspace.for_pool(n_g)
    chosen: list[int] = []
    trace: list[float] = []
    reason: StopReason = "exhausted"
    bar = tqdm(total=n_g - 1, disable=not progress)
    while True:
        n_avail = n_g - len(chosen)
        if n_avail <= 1:
            reason = "exhausted"
            break
        v = _values_into(ws.v, ws.scratch, s, t_live, a_sum, b_sum, m, n_t)
        if greedy:
            c = int(np.argmax(v))  # first maximum; taken candidates are −inf
        else:
            avail = ws.avail[:n_avail]
            p = np.take(v, avail, out=ws.p[:n_avail], mode="clip")  # v[avail]
            c = int(avail[_draw_position(p, ws.cdf[:n_avail], mu, beta, rng)])
            _remove_sorted(ws.avail, n_avail, c)
        mu = float(v[c])
        a_sum += 2.0 * s[c] + 1.0
        b_sum += t[c]
        m += 1
        t_live[c] = -math.inf
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
        s += _kernel_column_into(ws.column, ws.scratch, gc, g2, c, inv_two_l2)
    bar.close()
    return SamplingResult(
        candidate_index=np.asarray(chosen, dtype=np.int64),
        value_trace=np.asarray(trace, dtype=np.float64),
        stop_reason=reason,
        start_value=float(start),
        best_value=float(max(trace)),
    )


@dataclass(frozen=True)
class _Workspace:
    """Buffers one party's loop reuses at every step (no per-step allocation).

    Attributes:
        v: (n_G,) v'(c) for every candidate.
        scratch: (n_G,) the second operand of `_values_into` / `_kernel_column_into`.
        column: (n_G,) the kernel column k(G, g_c*).
        p: (n_G,) the weights over the available candidates (first n_avail used).
        cdf: (n_G,) their cumulative sums (first n_avail used).
        avail: (n_G,) int64 available candidates, ascending (first n_avail used).
    """

    v: NDArray[np.float64]
    scratch: NDArray[np.float64]
    column: NDArray[np.float64]
    p: NDArray[np.float64]
    cdf: NDArray[np.float64]
    avail: NDArray[np.int64]

    @classmethod
    def for_pool(cls, n_g: int) -> _Workspace:
        """Buffers for a pool of ``n_g`` candidates, all available."""
        return cls(
            *(np.empty(n_g, dtype=np.float64) for _ in range(5)),
            avail=np.arange(n_g, dtype=np.int64),
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
    shape = np.broadcast(s, t).shape
    return _values_into(np.empty(shape), np.empty(shape), s, t, a_sum, b_sum, m, n_t)


def _values_into(
    out: NDArray[np.float64],
    scratch: NDArray[np.float64],
    s: NDArray[np.float64],
    t: NDArray[np.float64],
    a_sum: float,
    b_sum: float,
    m: int,
    n_t: int,
) -> NDArray[np.float64]:
    """`candidate_values` written into ``out`` (``scratch`` is overwritten).

    The operations and their order are those of the expression
    ``2.0 * (b_sum + t) / ((m + 1) * n_t) - (a_sum + 2.0 * s + 1.0) / ((m + 1) ** 2)``
    (addition and multiplication swapped only in their operands), so the result is
    bitwise the same.
    """
    np.add(t, b_sum, out=out)
    out *= 2.0
    out /= (m + 1) * n_t
    np.multiply(s, 2.0, out=scratch)
    scratch += a_sum
    scratch += 1.0
    scratch /= (m + 1) * (m + 1)
    out -= scratch
    return out


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
    p = softmax(β·w) by ``rng``, exactly as ``rng.choice(n_avail, p=p / p.sum())``
    would draw it (`_draw_position`).

    Example:
        >>> v = np.array([0.3, 0.9, 0.9])
        >>> choose(v, np.array([False, False, True]), 0.0, math.inf, True, None)
        1
    """
    if greedy:
        v[taken] = -np.inf
        return int(np.argmax(v))  # first maximum: ties go to the lowest index
    avail = np.flatnonzero(~taken)  # ascending, as the naive sampler lists them
    p = v[avail]
    return int(avail[_draw_position(p, np.empty_like(p), mu, beta, rng)])


def _draw_position(
    p: NDArray[np.float64],
    cdf: NDArray[np.float64],
    mu: float,
    beta: float,
    rng: np.random.Generator,
) -> int:
    """Position drawn with probability softmax(β·w) of the min–max scaled gains.

    ``p`` holds v'(c) over the available candidates on entry and is overwritten
    (``cdf`` too). The steps are those of the formulation
    ``delta = v - mu``, ``w = (delta - lo) / (hi - lo)`` (or 0), ``z = beta * w``,
    ``p = exp(z - z.max())``, done in place, so every intermediate is bitwise the
    same; the draw is that of ``rng.choice(len(p), p=p / p.sum())``
    (`_softmax_draw`).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> _draw_position(np.array([0.0, 1.0, 1.0]), np.empty(3), 0.0, 0.0, rng)
        1
    """
    p -= mu
    lo, hi = p.min(), p.max()
    if hi > lo:
        p -= lo
        p /= hi - lo
    else:
        p.fill(0.0)
    p *= beta
    p -= p.max()  # max-subtraction: no overflow for large β
    np.exp(p, out=p)
    return _softmax_draw(p, cdf, rng)


#: Weights per block of the blocked prefix sums of `_softmax_draw`.
_DRAW_BLOCK = 512


def _softmax_draw(
    p: NDArray[np.float64], cdf: NDArray[np.float64], rng: np.random.Generator
) -> int:
    """The index ``rng.choice(n, p=p / p.sum())`` returns, for weights p ≥ 0.

    `numpy.random.Generator.choice` (``replace=True``, ``size=None``) checks q =
    p / p.sum() (NaN, sign, sum ≈ 1; no random numbers drawn), then inverts its
    CDF: ``cdf = q.cumsum(); cdf /= cdf[-1]`` and the index is
    ``cdf.searchsorted(u, side="right")`` for one ``u = rng.random()``, i.e. the
    number of cdf_j ≤ u (cdf is non-decreasing). Here u is drawn the same way,
    and the index is first located on cheap blocked prefix sums R̃_j ≈ P_j / P_n
    of p (pairwise block sums, their cumsum, one block's cumsum). Every sum is of
    non-negative terms along at most n + 1 additions, so each of cdf_j and R̃_j is
    within about (2n+3)·u_r of P_j / P_n ≤ 1 (u_r = 2⁻⁵³; Higham, *Accuracy and
    Stability of Numerical Algorithms*, §4.2), hence |cdf_j − R̃_j| < E =
    8(n+8)·u_r, with a margin for the rounding of the comparisons themselves.
    When R̃_{j−1} + E ≤ u < R̃_j − E the index is certainly j; otherwise (u within
    E of a step of the CDF: probability about 2E per draw) `_exact_draw` repeats
    numpy's computation. Either way the index and the generator state afterwards
    equal those of ``rng.choice`` (tested on random and on constructed p).

    Args:
        p: (n,) float64 weights, non-negative, max 1 (as ``exp(z - z.max())``).
        cdf: (n,) float64 buffer for the exact path, overwritten.
        rng: the generator (one double drawn).

    Returns:
        The drawn index in [0, n).

    Example:
        >>> p = np.array([0.2, 1.0, 0.3])
        >>> a, b = np.random.default_rng(7), np.random.default_rng(7)
        >>> _softmax_draw(p, np.empty(3), a) == b.choice(3, p=p / p.sum())
        True
        >>> a.bit_generator.state == b.bit_generator.state
        True
    """
    n = p.shape[0]
    head = n - n % _DRAW_BLOCK
    sums = np.empty(head // _DRAW_BLOCK + 1)
    np.add.reduce(p[:head].reshape(-1, _DRAW_BLOCK), axis=1, out=sums[:-1])
    sums[-1] = p[head:].sum()
    np.cumsum(sums, out=sums)
    total = float(sums[-1])
    if not (math.isfinite(total) and total > 0.0):
        return int(rng.choice(n, p=p / p.sum()))  # raises numpy's own error
    u = rng.random()
    b = min(int(sums.searchsorted(u * total, side="right")), sums.shape[0] - 1)
    start = b * _DRAW_BLOCK
    before = float(sums[b - 1]) if b > 0 else 0.0
    local = np.cumsum(p[start : start + _DRAW_BLOCK])
    local += before
    local /= total  # R̃ over block b
    j = int(local.searchsorted(u, side="right"))
    bound = 8.0 * (n + 8) * 2.0**-53
    if j < local.shape[0] and local[j] - bound > u:
        prev = local[j - 1] if j > 0 else (before / total if b > 0 else -math.inf)
        if prev + bound <= u:
            return start + j
    return _exact_draw(p, cdf, u)


def _exact_draw(p: NDArray[np.float64], cdf: NDArray[np.float64], u: float) -> int:
    """The inversion numpy's ``choice(n, p=p / p.sum())`` performs, for uniform ``u``.

    Example:
        >>> _exact_draw(np.array([1.0, 1.0]), np.empty(2), 0.5)
        1
    """
    np.divide(p, p.sum(), out=cdf)  # q = p / p.sum()
    np.cumsum(cdf, out=cdf)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(u, side="right"))


def _remove_sorted(avail: NDArray[np.int64], n_avail: int, c: int) -> None:
    """Remove ``c`` from the ascending ``avail[:n_avail]``, keeping the order.

    Example:
        >>> a = np.array([1, 4, 6, 9]); _remove_sorted(a, 4, 4); a[:3].tolist()
        [1, 6, 9]
    """
    pos = int(np.searchsorted(avail[:n_avail], c))
    avail[pos : n_avail - 1] = avail[pos + 1 : n_avail]


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
    n_g = gc.shape[0]
    return _kernel_column_into(np.empty(n_g), np.empty(n_g), gc, g2, c, inv_two_l2)


def _kernel_column_into(
    out: NDArray[np.float64],
    scratch: NDArray[np.float64],
    gc: NDArray[np.float64],
    g2: NDArray[np.float64],
    c: int,
    inv_two_l2: float,
) -> NDArray[np.float64]:
    """`kernel_column` written into ``out`` (``scratch`` is overwritten).

    The operations of ``d2 = g2 + g2[c] - 2.0 * (gc @ gc[c])``, clamp at 0,
    ``exp(-d2 * inv_two_l2)``, in that order; ``(-d2)·x`` is computed as
    ``d2·(−x)``, the same double since rounding is symmetric in sign.
    """
    np.matmul(gc, gc[c], out=scratch)
    scratch *= 2.0
    np.add(g2, g2[c], out=out)
    out -= scratch
    np.maximum(out, 0.0, out=out)
    out *= -inv_two_l2
    np.exp(out, out=out)
    return out


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
    logger.info("sampling %d parties in %d worker processes", n, min(workers, n))
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
