"""Pure functions of the cosine gradient Shapley value (CGSV), docs/cgsv.md §2, §5, §8, §9.

Source: Xu, Lyu, Ma, Miao, Foo, Low, "Gradient Driven Rewards to Guarantee Fairness in
Collaborative Machine Learning", NeurIPS 2021. One round of §2 reads, in these
functions:

    u_i = normalise_update(Δ_i, Γ)                      (step 2)
    w   = aggregation_weights(kind, n, r, U, t)         (step 3, §5)
    ψ   = cosine_contributions(U, u_N = Σ w_i u_i)      (step 5)
    r   = update_importance(r, ψ, α)                    (step 6; α is the CGSV decay)
    q   = reward_fractions(r, β)                        (step 7)
    g_i = layer_topk(u_N by layer, q_i)                 (step 8)

Parameters and updates stay in the model dtype (float32); ψ, r, q and all cosines are
float64. The exactness check of §8 compares ψ with the exact Shapley value of the cosine
game v(S) = cos(Σ_{i∈S} u_i, u_N) (`exact_shapley_cosine`, which builds the value table
and calls `valuation.shapley.exact_shapley`) and with its Monte-Carlo estimate
(`mc_shapley_cosine`); `sv_check` runs the whole table.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor
from tqdm.auto import tqdm

from data.seeding import Seed
from rewards.metrics import pearson_or_none
from valuation.shapley import exact_shapley

logger = logging.getLogger(__name__)

#: Added to ‖Δ‖ before dividing, so a zero update stays finite (docs/cgsv.md §2 step 2).
UPLOAD_EPS = 1e-7
#: Floor of the norms in a cosine (docs/cgsv.md §2 step 5).
COSINE_EPS = 1e-10
#: Floor of the importance r before renormalising (docs/cgsv.md §2 step 6).
IMPORTANCE_FLOOR = 1e-3
#: Largest N for the 2^N value table of the cosine game (2^N × N float64 running sums).
MAX_COSINE_GAME_PARTIES = 20

AggregatorKind = Literal["cgsv", "fedavg", "nash"]
#: ``nbs(G)`` of docs/nash.md §2 for G = U (N, D) float64. Either a tuple ``(alpha, info)``
#: with ``alpha = None`` on failure, or an object with ``alpha`` and ``success``.
NbsSolver = Callable[[NDArray[np.float64]], Any]


def check_gamma(gamma: Any) -> float:
    """Return Γ as a float if it is a finite number > 0 (docs/cgsv.md §5).

    Args:
        gamma: the upload norm Γ.

    Returns:
        ``float(gamma)``.

    Raises:
        ValueError: if Γ is not a finite number > 0.

    Example:
        >>> check_gamma(1)
        1.0
    """
    if isinstance(gamma, bool) or not (isinstance(gamma, int | float) and gamma > 0):
        raise ValueError(f"Argument `gamma` must be > 0, got {gamma!r}")
    if not math.isfinite(gamma):
        raise ValueError(f"Argument `gamma` must be finite, got {gamma!r}")
    return float(gamma)


def normalise_update(delta: Tensor, gamma: float) -> Tensor:
    """Upload u = Γ · Δ / (‖Δ‖₂ + 1e-7) (docs/cgsv.md §2 step 2).

    The rescaling is unconditional, so every non-zero upload has norm Γ (to 1e-7/‖Δ‖
    relative). A zero Δ gives u = 0 and a warning; the party then gets ψ = 0.

    Args:
        delta: (D,) flat update θ_new − θ_old, float32 (any float dtype is kept).
        gamma: Γ > 0.

    Returns:
        (D,) tensor u of the dtype and device of ``delta``.

    Raises:
        ValueError: if ``gamma`` ≤ 0 or ``delta`` is not 1-D and finite.

    Example:
        >>> normalise_update(torch.tensor([3.0, 4.0]), 0.5).tolist()  # 0.5·(3, 4)/5
        [0.30000001192092896, 0.4000000059604645]
    """
    check_gamma(gamma)
    if delta.ndim != 1:
        raise ValueError(
            f"Argument `delta` must be 1-D, got shape {tuple(delta.shape)}"
        )
    norm = float(torch.linalg.vector_norm(delta, dtype=torch.float64))
    if not math.isfinite(norm):
        raise ValueError(f"Argument `delta` must be finite, got norm {norm!r}")
    if norm == 0.0:
        logger.warning("Zero parameter update: the upload is 0 and its psi will be 0")
        return torch.zeros_like(delta)
    return delta * (gamma / (norm + UPLOAD_EPS))


def _check_sizes(n: ArrayLike) -> NDArray[np.float64]:
    sizes = np.asarray(n, dtype=np.float64)
    if sizes.ndim != 1 or sizes.size < 2 or not np.all(sizes > 0):
        raise ValueError(
            "Argument `n` must be >= 2 positive party sizes, got "
            f"{np.asarray(n).tolist()}"
        )
    return sizes


def aggregation_weights(
    kind: AggregatorKind,
    n: ArrayLike,
    r: ArrayLike,
    uploads: Tensor | ArrayLike,
    round: int,
    *,
    nbs: NbsSolver | None = None,
) -> tuple[NDArray[np.float64], bool]:
    """Server weights w of docs/cgsv.md §2 step 3 and §5; Σ w = 1.

    - ``cgsv``: w = n/Σn in round 0, else w = r_{t−1}.
    - ``fedavg``: w = n/Σn in every round (CGSV rewards kept).
    - ``nash``: w = α/Σα with α = nbs(U) (docs/nash.md §2, §6), in every round; when the
      bargaining fails, the ``cgsv`` weights and ``nbs_failed = True``.

    Args:
        kind: ``"cgsv"``, ``"fedavg"`` or ``"nash"``.
        n: (N,) party sizes n_i > 0, N ≥ 2.
        r: (N,) previous importance r_{t−1} (ignored in round 0 and by ``fedavg``).
        uploads: (N, D) uploads u_i (used only by ``nash``).
        round: the round t ≥ 0.
        nbs: the bargaining solver for ``nash``; default
            ``rewards.nash.bargaining.nbs``.

    Returns:
        (w, nbs_failed): (N,) float64 weights and whether the bargaining failed.

    Raises:
        ValueError: on an unknown kind, bad sizes, a negative round, an r that is not a
            distribution, or ``nash`` without an available solver.

    Example:
        >>> u = np.zeros((2, 1))
        >>> w, failed = aggregation_weights("cgsv", [1, 3], [0.0, 0.0], u, 0)
        >>> w.tolist(), failed
        ([0.25, 0.75], False)
    """
    sizes = _check_sizes(n)
    if isinstance(round, bool) or not isinstance(round, int | np.integer) or round < 0:
        raise ValueError(f"Argument `round` must be an integer >= 0, got {round!r}")
    if kind not in ("cgsv", "fedavg", "nash"):
        raise ValueError(
            f"Argument `kind` must be 'cgsv', 'fedavg' or 'nash', got {kind!r}"
        )
    by_size = sizes / sizes.sum()
    if kind == "fedavg":
        return by_size, False
    if round == 0:
        cgsv_w = by_size
    else:
        prev = np.asarray(r, dtype=np.float64)
        if (
            prev.shape != sizes.shape
            or np.any(prev < 0)
            or abs(prev.sum() - 1.0) > 1e-6
        ):
            raise ValueError(
                f"Argument `r` must be a distribution over {sizes.size} parties after "
                f"round 0, got {prev.tolist()}"
            )
        cgsv_w = prev.copy()
    if kind == "cgsv":
        return cgsv_w, False
    alpha = _nbs_alpha(nbs, uploads, sizes.size)
    if alpha is None:
        logger.warning(
            "Nash bargaining failed in round %s: using the cgsv weights", round
        )
        return cgsv_w, True
    return alpha / alpha.sum(), False


def _nbs_alpha(
    nbs: NbsSolver | None, uploads: Tensor | ArrayLike, n_parties: int
) -> NDArray[np.float64] | None:
    if nbs is None:
        try:
            from rewards.nash.bargaining import nbs as default_nbs
        except ImportError as e:
            raise ValueError(
                "Argument `kind` is 'nash' but no solver is available: pass `nbs` or "
                "provide rewards.nash.bargaining.nbs (docs/nash.md §2)"
            ) from e
        nbs = default_nbs
    if isinstance(uploads, Tensor):
        g = uploads.detach().to("cpu", torch.float64).numpy()
    else:
        g = np.asarray(uploads, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != n_parties:
        raise ValueError(
            f"Argument `uploads` must be ({n_parties}, D), got shape {g.shape}"
        )
    result = nbs(g)
    if isinstance(result, tuple):
        alpha, info = result[0], (result[1] if len(result) > 1 else None)
    else:
        alpha, info = getattr(result, "alpha", None), result
    success = getattr(info, "success", None)
    if success is None and isinstance(info, dict):
        success = info.get("success")
    if alpha is None or success is False:
        return None
    a = np.asarray(alpha, dtype=np.float64)
    if a.shape != (n_parties,) or not np.all(np.isfinite(a)) or not np.all(a > 0):
        return None
    return a


def cosine_contributions(
    uploads: Tensor | ArrayLike, aggregate: Tensor | ArrayLike
) -> NDArray:
    """Contributions ψ_i = ⟨u_i, u_N⟩ / (max(‖u_i‖, ε) · max(‖u_N‖, ε)) (docs/cgsv.md §2).

    Step 5, with ε = 1e-10. Computed in float64. A zero upload (or aggregate) gives
    ψ = 0 and a warning.

    Args:
        uploads: (N, D) uploads u_i.
        aggregate: (D,) the aggregate u_N (it includes each u_i).

    Returns:
        (N,) float64 cosines ψ.

    Raises:
        ValueError: on mismatched shapes.

    Example:
        >>> u = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
        >>> cosine_contributions(u, [3.0, 0.0])
        array([ 1.,  0., -1.])
    """
    if isinstance(uploads, Tensor) or isinstance(aggregate, Tensor):
        u = torch.as_tensor(uploads).detach().to(torch.float64)
        a = torch.as_tensor(aggregate).detach().to(u.device, torch.float64)
        _check_cosine_shapes(tuple(u.shape), tuple(a.shape))
        norms = torch.linalg.vector_norm(u, dim=1)
        agg_norm = float(torch.linalg.vector_norm(a))
        any_zero = bool((norms == 0).any())
        psi = (u @ a) / (norms.clamp_min(COSINE_EPS) * max(agg_norm, COSINE_EPS))
        out = psi.cpu().numpy()
    else:  # plain arrays stay in NumPy: no tensor round trip for small inputs
        un = np.asarray(uploads, dtype=np.float64)
        an = np.asarray(aggregate, dtype=np.float64)
        _check_cosine_shapes(un.shape, an.shape)
        norms_np = np.sqrt(np.einsum("ij,ij->i", un, un))
        agg_norm = math.sqrt(float(an @ an))
        any_zero = bool(np.any(norms_np == 0))
        out = (un @ an) / (np.maximum(norms_np, COSINE_EPS) * max(agg_norm, COSINE_EPS))
    if agg_norm == 0.0 or any_zero:
        logger.warning("Zero vector in a cosine: its psi is 0")
    return out


def _check_cosine_shapes(u_shape: tuple[int, ...], a_shape: tuple[int, ...]) -> None:
    if len(u_shape) != 2 or len(a_shape) != 1 or u_shape[1] != a_shape[0]:
        raise ValueError(
            "Arguments `uploads` (N, D) and `aggregate` (D,) must agree, got shapes "
            f"{u_shape} and {a_shape}"
        )


def update_importance(
    r: ArrayLike, psi: ArrayLike, alpha: float, floor: float = IMPORTANCE_FLOOR
) -> NDArray[np.float64]:
    """Importance r ← normalise(max(α r_{t−1} + (1−α) ψ, floor)) (docs/cgsv.md §2 step 6).

    ``alpha`` here is the CGSV decay α of `fl.alpha`, not a normalised Shapley value.
    Mixing a normalised r with raw cosines is intended (the reference does it).

    Args:
        r: (N,) previous importance r_{t−1} (zeros before round 0).
        psi: (N,) cosines ψ in [−1, 1].
        alpha: 0 ≤ α < 1.
        floor: the floor > 0 applied before normalising.

    Returns:
        (N,) float64 r, positive and summing to 1.

    Raises:
        ValueError: on bad α, floor, or mismatched / non-finite inputs.

    Example:
        >>> update_importance(np.zeros(5), np.full(5, 0.5), 0.95).tolist()  # equal ψ
        [0.2, 0.2, 0.2, 0.2, 0.2]
    """
    if isinstance(alpha, bool) or not (0.0 <= alpha < 1.0):
        raise ValueError(f"Argument `alpha` must satisfy 0 <= alpha < 1, got {alpha!r}")
    if not floor > 0:
        raise ValueError(f"Argument `floor` must be > 0, got {floor!r}")
    prev = np.asarray(r, dtype=np.float64)
    p = np.asarray(psi, dtype=np.float64)
    if prev.ndim != 1 or prev.shape != p.shape or prev.size == 0:
        raise ValueError(
            "Arguments `r` and `psi` must be equal-length 1-D, got "
            f"{prev.shape} and {p.shape}"
        )
    if not (np.all(np.isfinite(prev)) and np.all(np.isfinite(p))):
        raise ValueError(f"Arguments `r` and `psi` must be finite, got {prev} and {p}")
    mixed = np.maximum(alpha * prev + (1.0 - alpha) * p, floor)
    return mixed / mixed.sum()


def reward_fractions(r: ArrayLike, beta: float) -> NDArray[np.float64]:
    """q_i = tanh(β r_i) / max_j tanh(β r_j) ∈ (0, 1] (docs/cgsv.md §2 step 7).

    The top party gets q = 1; as β → ∞ (``inf`` allowed), q = 1 for everyone.

    Args:
        r: (N,) importance, r_i ≥ 0 with a positive entry.
        beta: β > 0.

    Returns:
        (N,) float64 q.

    Raises:
        ValueError: if β ≤ 0 or NaN, or r is negative, non-finite or all zero.

    Example:
        >>> reward_fractions([0.1, 0.2], 1.0).round(4).tolist()  # .09967 / .19738
        [0.505, 1.0]
    """
    if isinstance(beta, bool) or not (isinstance(beta, int | float) and beta > 0):
        raise ValueError(f"Argument `beta` must be > 0, got {beta!r}")
    rr = np.asarray(r, dtype=np.float64)
    if rr.ndim != 1 or rr.size == 0 or not np.all(np.isfinite(rr)) or np.any(rr < 0):
        raise ValueError(f"Argument `r` must be finite and >= 0, got {rr.tolist()}")
    t = np.tanh(beta * rr) if math.isfinite(beta) else np.where(rr > 0, 1.0, 0.0)
    top = t.max()
    if not top > 0:
        raise ValueError(f"Argument `r` must have a positive entry, got {rr.tolist()}")
    return t / top


def topk_count(q: float, n_entries: int) -> int:
    """k_l = min(⌈q·n_l⌉, max(n_l − 1, 1)) of LayerTopK (docs/cgsv.md §2).

    ⌈·⌉ is taken of q·n_l·(1 − 1e-12), so that float round-up (0.3 · 10 =
    3.0000000000000004) does not add an entry.

    Args:
        q: reward fraction, 0 < q ≤ 1.
        n_entries: n_l ≥ 1.

    Returns:
        k_l.

    Example:
        >>> topk_count(0.3, 10), topk_count(1.0, 10), topk_count(1.0, 1)
        (3, 9, 1)
    """
    return min(math.ceil(q * n_entries * (1.0 - 1e-12)), max(n_entries - 1, 1))


def layer_topk(update_by_layer: Sequence[Tensor], q: float) -> list[Tensor]:
    """LayerTopK(u, q) of docs/cgsv.md §2: per tensor, keep the entries with |u| ≥ τ_l.

    τ_l is the k_l-th largest |u^l|, with k_l = `topk_count` (q, n_l). Ties at τ_l are
    kept, so more than k_l entries may survive. A one-entry tensor is always kept.

    Args:
        update_by_layer: the tensors u^l of u_N, in ``named_parameters()`` order.
        q: reward fraction, 0 < q ≤ 1.

    Returns:
        Tensors of the same shapes, dtypes and devices, zero outside the kept entries.

    Raises:
        ValueError: if q ∉ (0, 1] or a tensor is empty.

    Example:
        >>> [t.tolist() for t in layer_topk([torch.tensor([3.0, -1.0, 2.0, 0.5])], 0.5)]
        [[3.0, 0.0, 2.0, 0.0]]
    """
    if isinstance(q, bool) or not (0.0 < q <= 1.0):
        raise ValueError(f"Argument `q` must satisfy 0 < q <= 1, got {q!r}")
    out = []
    for layer in update_by_layer:
        n_l = layer.numel()
        if n_l == 0:
            raise ValueError("Argument `update_by_layer` holds an empty tensor")
        mag = layer.detach().abs()
        k = topk_count(float(q), n_l)
        # τ_l is the k-th largest |u|, i.e. the (n_l − k + 1)-th smallest
        tau = torch.kthvalue(mag.reshape(-1), n_l - k + 1).values
        out.append(torch.where(mag >= tau, layer, torch.zeros_like(layer)))
    return out


def flat_layer_topk(update: Tensor, sizes: Sequence[int], q: ArrayLike) -> Tensor:
    """LayerTopK(u, q_i) for all parties at once on the flat vector (docs/cgsv.md §2 step 8).

    The fast path of `layer_topk` used by the server: each layer's |u^l| is sorted
    once, τ_l(q_i) is read off at position k_l − 1 for every party, and the rewards
    are masked in one vectorised step.

    Args:
        update: (D,) flat u_N.
        sizes: the layer sizes n_l (``named_parameters()`` order), summing to D.
        q: (N,) reward fractions in (0, 1].

    Returns:
        (N, D) tensor; row i is the flat g_i, equal to ``cat(layer_topk(u by layer,
        q_i))``.

    Raises:
        ValueError: on sizes that do not sum to D or a q outside (0, 1].

    Example:
        >>> g = flat_layer_topk(torch.tensor([3.0, -1.0, 2.0, 5.0]), [3, 1], [0.5, 1.0])
        >>> g.tolist()  # k = (2, 1) then (2, 1): n_l − 1 caps the first layer at 2
        [[3.0, 0.0, 2.0, 5.0], [3.0, 0.0, 2.0, 5.0]]
    """
    qs = np.asarray(q, dtype=np.float64).reshape(-1)
    if qs.size == 0 or not np.all((qs > 0) & (qs <= 1)):
        raise ValueError(f"Argument `q` must be values in (0, 1], got {qs.tolist()}")
    sizes = [int(s) for s in sizes]
    if update.ndim != 1 or any(s < 1 for s in sizes) or sum(sizes) != update.numel():
        raise ValueError(
            f"Argument `sizes` ({sizes}) must be positive and sum to the "
            f"{update.numel()} entries of `update`"
        )
    mag = update.detach().abs()
    tau = torch.empty((qs.size, len(sizes)), dtype=mag.dtype, device=mag.device)
    for col, layer_mag in enumerate(mag.split(sizes)):
        n_l = layer_mag.numel()
        # position of the k-th largest in ascending order, for every party
        pos = [n_l - topk_count(float(qi), n_l) for qi in qs]
        if layer_mag.device.type == "cpu":
            # one O(n_l) selection pass serves every party
            part = np.partition(layer_mag.numpy(), sorted(set(pos)))
            tau[:, col] = torch.from_numpy(part[pos])
        else:
            ordered = torch.sort(layer_mag).values
            tau[:, col] = ordered[torch.as_tensor(pos, device=mag.device)]
    tau_full = tau.repeat_interleave(torch.as_tensor(sizes, device=mag.device), dim=1)
    return torch.where(mag >= tau_full, update, torch.zeros((), dtype=update.dtype))


# --- The cosine game of docs/cgsv.md §8 --------------------------------------------


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
    """Bitmask value table of v(S) = cos(Σ_{i∈S} u_i, u_N), u_N = Σ_i u_i (docs/cgsv.md §8).

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
    """Monte-Carlo Shapley value φ̄ of the cosine game over permutations (docs/cgsv.md §8).

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
        ValueError: on a bad ``U`` or ``K``.

    Example:
        >>> u = np.array([[2.0, 0.0], [0.0, 1.0]])  # 2! ≤ K: both orders, exact
        >>> mc_shapley_cosine(u, 150, seed=0).round(4).tolist()
        [0.7236, 0.2764]
    """
    u = _check_u(U)
    if isinstance(K, bool) or not isinstance(K, int | np.integer) or K < 1:
        raise ValueError(f"Argument `K` must be an integer >= 1, got {K!r}")
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
        ValueError: on ε ≤ 0 or δ ∉ (0, 1).

    Example:
        >>> mc_permutations()
        150
    """
    if not eps > 0:
        raise ValueError(f"Argument `eps` must be > 0, got {eps!r}")
    if not 0 < delta < 1:
        raise ValueError(f"Argument `delta` must satisfy 0 < delta < 1, got {delta!r}")
    return math.ceil(math.log(2.0 / delta) / (2.0 * eps * eps))


# --- The exactness table of docs/cgsv.md §8 ----------------------------------------

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
        """The row as a plain dict (CSV / JSON friendly)."""
        return asdict(self)


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
        ValueError: on bad sizes.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"Argument `trials` must be an integer >= 1, got {trials!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"Argument `dim` must be an integer >= 1, got {dim!r}")
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
