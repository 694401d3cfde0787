"""The cosine game of docs/cgsv.md §8: exact and Monte-Carlo Shapley values, sv_check.

Source: Xu, Lyu, Ma, Miao, Foo, Low, "Gradient Driven Rewards to Guarantee Fairness in
Collaborative Machine Learning", NeurIPS 2021. The exactness check compares the CGSV
ψ_i = cos(u_i, u_N) with the exact Shapley value of the game
v(S) = cos(Σ_{i∈S} u_i, u_N), u_N = Σ_i u_i, and with its Monte-Carlo estimate:

- `cosine_game_values` builds the 2^N value table;
- `exact_shapley_cosine` hands it to `valuation.shapley.exact_shapley`, the one
  Shapley implementation;
- `mc_shapley_cosine` averages marginals over random orders;
- `sv_check` runs the whole table of docs/cgsv.md §8, one `SvCheckRow` per setting.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from data.checks import check_interval, check_positive, check_positive_int
from data.seeding import Seed
from rewards.cgsv.gradient import COSINE_EPS, cosine_contributions
from rewards.metrics import pearson_or_none
from valuation.shapley import exact_shapley

#: Largest N for the 2^N value table of the cosine game (2^N × N float64 running sums).
MAX_COSINE_GAME_PARTIES = 20


def _check_u(u: ArrayLike) -> NDArray[np.float64]:
    mat = np.asarray(u, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] < 2 or mat.shape[1] < 1:
        raise ValueError(
            f"Argument `U` must be (N, d) with N >= 2, got shape {mat.shape}"
        )
    if not np.all(np.isfinite(mat)):
        raise ValueError("Argument `U` must be finite")
    return mat


def cosine_game_values(U: ArrayLike) -> NDArray[np.float64]:
    """Value table of v(S) = cos(Σ_{i∈S} u_i, u_N), u_N = Σ_i u_i (docs/cgsv.md §8).

    Built with incremental sums over the Gram matrix M = UUᵀ: adding party i to a
    coalition S' (all of whose members have lower index) gives
    ⟨s, u_N⟩ = ⟨s', u_N⟩ + ⟨u_i, u_N⟩ and ‖s‖² = ‖s'‖² + 2 Σ_{j∈S'} M_ij + M_ii, where
    the row sums Σ_{j∈S'} M_{·j} are carried along. v(∅) = 0.

    Args:
        U: (N, d) vectors u_i (not normalised), 2 ≤ N ≤ 20.

    Returns:
        (2^N,) float64 table; bit i of the index set means party i is in S.

    Raises:
        ValueError: on a bad shape, non-finite entries or N > 20.

    Example:
        >>> cosine_game_values(np.array([[1.0, 0.0], [0.0, 1.0]])).round(4).tolist()
        [0.0, 0.7071, 0.7071, 1.0]
    """
    u = _check_u(U)
    n = u.shape[0]
    if n > MAX_COSINE_GAME_PARTIES:
        raise ValueError(
            f"Argument `U` has N = {n} rows; the cosine game table supports at most "
            f"{MAX_COSINE_GAME_PARTIES}"
        )
    grand = u.sum(axis=0)
    to_grand = u @ grand
    gram = u @ u.T
    grand_norm = max(math.sqrt(max(float(grand @ grand), 0.0)), COSINE_EPS)
    dot = np.zeros(1 << n)
    sq = np.zeros(1 << n)
    row_sums = np.zeros((1 << n, n))
    for i in range(n):
        lo = 1 << i
        dot[lo : 2 * lo] = dot[:lo] + to_grand[i]
        sq[lo : 2 * lo] = sq[:lo] + 2.0 * row_sums[:lo, i] + gram[i, i]
        row_sums[lo : 2 * lo] = row_sums[:lo] + gram[i]
    norms = np.maximum(np.sqrt(np.maximum(sq, 0.0)), COSINE_EPS)
    values = dot / (norms * grand_norm)
    values[0] = 0.0
    return values


def exact_shapley_cosine(U: ArrayLike) -> NDArray[np.float64]:
    """Exact Shapley value φ of the cosine game of docs/cgsv.md §8.

    Builds the table of `cosine_game_values` and calls
    `valuation.shapley.exact_shapley`. Efficiency gives Σφ = v(grand) = 1, which is
    checked.

    Args:
        U: (N, d) vectors u_i, 2 ≤ N ≤ 20; u_N = Σ_i u_i (unweighted).

    Returns:
        (N,) float64 φ.

    Raises:
        ValueError: on a bad ``U``.
        RuntimeError: if Σφ ≠ 1 (to 1e-9), e.g. when u_N = 0.

    Example:
        >>> # v({0}) = 2/√5, v({1}) = 1/√5: φ_0 = (2/√5 + 1 − 1/√5)/2
        >>> exact_shapley_cosine(np.array([[2.0, 0.0], [0.0, 1.0]])).round(4).tolist()
        [0.7236, 0.2764]
    """
    values = cosine_game_values(U)
    phi = exact_shapley(values)
    if abs(float(phi.sum()) - 1.0) > 1e-9:  # 1e-9: float64 sums over 2^N terms
        raise RuntimeError(
            f"Cosine-game Shapley efficiency failed: sum(phi) = {phi.sum()!r}, "
            "expected 1 "
            "(is the grand vector zero?)"
        )
    return phi


def mc_shapley_cosine(
    U: ArrayLike,
    K: int,
    *,
    seed: Seed,
) -> NDArray[np.float64]:
    """Monte-Carlo Shapley value φ̄ of the cosine game (docs/cgsv.md §8).

    Averages marginal contributions v(P + i) − v(P) along K seeded random orders,
    computing each order's prefix sums in R^d as the authors do. When N! ≤ K all N!
    orders are used once (so the result is exact); otherwise orders are drawn one at
    a time and never all materialised.

    Args:
        U: (N, d) vectors u_i, N ≥ 2.
        K: number of permutations ≥ 1 (150 = ⌈ln(2/δ)/(2ε²)⌉ at ε = δ = 0.1).
        seed: seed of the generator drawing the orders.

    Returns:
        (N,) float64 φ̄.

    Raises:
        TypeError: if ``K`` is not an integer.
        ValueError: on a bad ``U`` or ``K`` < 1.

    Example:
        >>> u = np.array([[2.0, 0.0], [0.0, 1.0]])  # 2! ≤ K: both orders, exact
        >>> mc_shapley_cosine(u, 150, seed=0).round(4).tolist()
        [0.7236, 0.2764]
    """
    u = _check_u(U)
    check_positive_int("K", K)
    n = u.shape[0]
    grand = u.sum(axis=0)
    grand_norm = max(float(np.linalg.norm(grand)), COSINE_EPS)
    rng = np.random.default_rng(seed)
    if math.factorial(n) <= K:
        orders: Any = itertools.permutations(range(n))
        count = math.factorial(n)
    else:
        orders = (rng.permutation(n) for _ in range(int(K)))
        count = int(K)
    to_grand = u @ grand  # ⟨s, u_N⟩ of a prefix s is the prefix sum of these
    prefix = np.empty_like(u)
    phi = np.zeros(n)
    for order in orders:
        idx = np.asarray(order)
        np.take(u, idx, axis=0, out=prefix)
        np.cumsum(prefix, axis=0, out=prefix)
        norms = np.sqrt(np.einsum("ij,ij->i", prefix, prefix))
        v = np.cumsum(to_grand[idx]) / (np.maximum(norms, COSINE_EPS) * grand_norm)
        phi[idx] += np.diff(v, prepend=0.0)  # v(∅) = 0
    return phi / count


def mc_permutations(eps: float = 0.1, delta: float = 0.1) -> int:
    """K = ⌈ln(2/δ)/(2ε²)⌉ permutations for an (ε, δ) Hoeffding bound (docs/cgsv.md §8).

    Args:
        eps: ε > 0.
        delta: 0 < δ < 1.

    Returns:
        K.

    Raises:
        TypeError: if ε or δ is not a number.
        ValueError: on ε ≤ 0 or δ ∉ (0, 1).

    Example:
        >>> mc_permutations()
        150
    """
    check_positive("eps", eps)
    check_interval("delta", delta, 0, 1, closed="neither")
    return math.ceil(math.log(2.0 / delta) / (2.0 * eps * eps))


#: (N, d) settings: N = 5..10 at d = 1000, then d = 2^10..2^15 at N = 10.
SV_CHECK_SETTINGS: tuple[tuple[int, int], ...] = tuple(
    [(n, 1000) for n in range(5, 11)] + [(10, 2**k) for k in range(10, 16)]
)


@dataclass(frozen=True)
class SvCheckRow:
    """One row of ``fl/sv_check.csv``: means and stds over trials (docs/cgsv.md §8).

    L1/L2/Pearson compare the sum-1-normalised ψ (``psi_*``) and φ̄ (``mc_*``) with
    the normalised exact φ; ``*_cos_dist`` is the cosine distance 1 − cos(est, φ).
    Times are mean CPU seconds per trial.
    """

    n_parties: int
    dim: int
    trials: int
    n_permutations: int
    psi_l1_mean: float
    psi_l1_std: float
    psi_l2_mean: float
    psi_l2_std: float
    psi_pearson_mean: float
    psi_pearson_std: float
    psi_cos_dist_mean: float
    psi_cos_dist_std: float
    mc_l1_mean: float
    mc_l1_std: float
    mc_l2_mean: float
    mc_l2_std: float
    mc_pearson_mean: float
    mc_pearson_std: float
    mc_cos_dist_mean: float
    mc_cos_dist_std: float
    psi_time_s: float
    mc_time_s: float
    exact_time_s: float

    def to_dict(self) -> dict[str, float | int]:
        """The row as a plain dict (the columns of ``sv_check.csv``)."""
        return asdict(self)

    def summary(self) -> dict[str, float | int | None]:
        """The row for ``summary.json``: an undefined mean (NaN) becomes ``None``.

        JSON has no NaN (docs/interface.md §5).
        """
        return {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in asdict(self).items()
        }


def _sum_to_one(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return v / v.sum()


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std())


def sv_check_setting(
    n_parties: int,
    dim: int,
    *,
    trials: int,
    n_permutations: int = 150,
    seed: Seed,
) -> SvCheckRow:
    """Compare ψ and φ̄ with the exact φ of the cosine game on Gaussian vectors (§8).

    Each trial draws u_1..u_N i.i.d. N(0, I_d), with u_N = Σ u_i (unweighted).

    Args:
        n_parties: N, 2 ≤ N ≤ 20.
        dim: d ≥ 1.
        trials: ≥ 1.
        n_permutations: K for the Monte-Carlo estimate.
        seed: seed of the one generator for the vectors and the permutation seeds.

    Returns:
        The row of statistics. A trial whose Pearson is undefined is left out of the
        Pearson mean (with a warning from `pearson_or_none`).

    Raises:
        TypeError: if ``trials`` or ``dim`` is not an integer.
        ValueError: on bad sizes.
    """
    check_positive_int("trials", trials)
    check_positive_int("dim", dim)
    rng = np.random.default_rng(seed)
    stats: dict[str, list[float]] = {
        f"{est}_{stat}": []
        for est in ("psi", "mc")
        for stat in ("l1", "l2", "pearson", "cos_dist")
    }
    times: dict[str, list[float]] = {"psi": [], "mc": [], "exact": []}
    for _ in range(trials):
        u = rng.standard_normal((n_parties, dim))
        mc_seed = int(rng.integers(0, 2**63 - 1))
        t0 = time.process_time()
        grand = u.sum(axis=0)
        psi = cosine_contributions(u, grand)
        t1 = time.process_time()
        phi_mc = mc_shapley_cosine(u, n_permutations, seed=mc_seed)
        t2 = time.process_time()
        phi = exact_shapley_cosine(u)
        t3 = time.process_time()
        times["psi"].append(t1 - t0)
        times["mc"].append(t2 - t1)
        times["exact"].append(t3 - t2)
        exact = _sum_to_one(phi)
        for name, est in (("psi", _sum_to_one(psi)), ("mc", _sum_to_one(phi_mc))):
            diff = est - exact
            stats[f"{name}_l1"].append(float(np.abs(diff).sum()))
            stats[f"{name}_l2"].append(float(np.sqrt(diff @ diff)))
            cos = est @ exact / (np.linalg.norm(est) * np.linalg.norm(exact))
            stats[f"{name}_cos_dist"].append(float(1.0 - cos))
            corr = pearson_or_none(est, exact)
            if corr is not None:
                stats[f"{name}_pearson"].append(corr)
    means_stds: dict[str, float] = {}
    for key, values in stats.items():
        means_stds[f"{key}_mean"], means_stds[f"{key}_std"] = _mean_std(values)
    return SvCheckRow(
        n_parties=n_parties,
        dim=dim,
        trials=trials,
        n_permutations=n_permutations,
        **means_stds,
        **{f"{k}_time_s": _mean_std(v)[0] for k, v in times.items()},
    )


def sv_check(
    settings: Sequence[tuple[int, int]] = SV_CHECK_SETTINGS,
    *,
    trials: int = 50,
    n_permutations: int = 150,
    seed: Seed,
    progress: bool = False,
) -> list[SvCheckRow]:
    """The exactness table of docs/cgsv.md §8, one `SvCheckRow` per (N, d) setting.

    Each setting gets its own child of ``SeedSequence(seed)`` (spawned in order), so
    a row does not depend on the other settings' trials (unlike the authors' running
    means).

    Args:
        settings: (N, d) pairs; default N = 5..10 at d = 1000 and d = 2^10..2^15 at
            N = 10.
        trials: trials per setting.
        n_permutations: K for the Monte-Carlo estimate.
        seed: root seed.
        progress: show a progress bar over settings.

    Returns:
        The rows, in the order of ``settings``.

    Raises:
        ValueError: on bad settings or trials.
    """
    root = seed if isinstance(seed, np.random.SeedSequence) else None
    if root is None:
        root = np.random.SeedSequence(
            int(np.random.default_rng(seed).integers(0, 2**63 - 1))
            if not isinstance(seed, int)
            else seed
        )
    children = root.spawn(len(settings))
    return [
        sv_check_setting(n, d, trials=trials, n_permutations=n_permutations, seed=child)
        for (n, d), child in tqdm(
            list(zip(settings, children, strict=True)),
            disable=not progress,
            desc="sv_check",
        )
    ]
