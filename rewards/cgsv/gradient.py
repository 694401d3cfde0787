"""The pure per-round math of the cosine gradient Shapley value (CGSV), docs/cgsv.md §2.

Source: Xu, Lyu, Ma, Miao, Foo, Low, "Gradient Driven Rewards to Guarantee Fairness in
Collaborative Machine Learning", NeurIPS 2021. One round of docs/cgsv.md §2 reads,
step by step, in these functions (step 1, local training, is `FLParty.fit`):

    u_i = normalise_update(Δ_i, Γ)                      (step 2)
    w   = aggregation_weights(kind, n, r, U, t)         (step 3, §5)
    u_N = Σ_i w_i u_i                                   (step 4, the strategy)
    ψ   = cosine_contributions(U, u_N)                  (step 5)
    r   = update_importance(r, ψ, α)                    (step 6; α is the CGSV decay)
    q   = reward_fractions(r, β)                        (step 7)
    g_i = layer_topk(u_N by layer, q_i)                 (step 8; `flat_layer_topk`
                                                         for all parties at once)

Parameters and updates stay in the model dtype (float32); ψ, r, q and all cosines are
float64. The cosine game of docs/cgsv.md §8 is in `rewards.cgsv.cosine_game`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from data.checks import check_int, check_interval, check_positive
from rewards.nash import bargaining
from rewards.nash.bargaining import NbsResult

logger = logging.getLogger(__name__)

#: Added to ‖Δ‖ before dividing, so a zero update stays finite (docs/cgsv.md §2 step 2).
UPLOAD_EPS = 1e-7
#: Floor of the norms in a cosine (docs/cgsv.md §2 step 5).
COSINE_EPS = 1e-10
#: Floor of the importance r before renormalising (docs/cgsv.md §2 step 6).
IMPORTANCE_FLOOR = 1e-3

AggregatorKind = Literal["cgsv", "fedavg", "nash"]
#: ``nbs(G)`` of docs/nash.md §2 for G = U (N, D) float64: an `NbsResult` (``alpha``
#: is ``None`` unless ``success``).
NbsSolver = Callable[[NDArray[np.float64]], NbsResult]


def check_gamma(gamma: Any) -> float:
    """Return Γ as a float if it is a finite number > 0 (docs/cgsv.md §5).

    Args:
        gamma: the upload norm Γ.

    Returns:
        ``float(gamma)``.

    Raises:
        TypeError: if Γ is not a number.
        ValueError: if Γ is not a finite number > 0.

    Example:
        >>> check_gamma(1)
        1.0
    """
    return check_positive("gamma", gamma)


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
        >>> u = normalise_update(torch.tensor([3.0, 4.0]), 0.5)  # 0.5·(3, 4)/5
        >>> [round(v, 6) for v in u.tolist()], u.dtype
        ([0.3, 0.4], torch.float32)
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
        nbs: the bargaining solver for ``nash`` (tests pass a stub); default
            `rewards.nash.bargaining.nbs`.

    Returns:
        (w, nbs_failed): (N,) float64 weights and whether the bargaining failed.

    Raises:
        TypeError: if ``round`` is not an integer.
        ValueError: on an unknown kind, bad sizes, a negative round, or an r that is
            not a distribution.

    Example:
        >>> u = np.zeros((2, 1))
        >>> w, failed = aggregation_weights("cgsv", [1, 3], [0.0, 0.0], u, 0)
        >>> w.tolist(), failed
        ([0.25, 0.75], False)
    """
    sizes = _check_sizes(n)
    check_int("round", round, 0)
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
    """α of ``nbs(U)`` (docs/nash.md §2), or ``None`` when the bargaining failed."""
    solver = bargaining.nbs if nbs is None else nbs
    if isinstance(uploads, Tensor):
        g = uploads.detach().to("cpu", torch.float64).numpy()
    else:
        g = np.asarray(uploads, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != n_parties:
        raise ValueError(
            f"Argument `uploads` must be ({n_parties}, D), got shape {g.shape}"
        )
    result = solver(g)
    if not result.success or result.alpha is None:
        return None
    a = np.asarray(result.alpha, dtype=np.float64)
    if a.shape != (n_parties,) or not np.all(np.isfinite(a)) or not np.all(a > 0):
        return None
    return a


def cosine_contributions(
    uploads: Tensor | ArrayLike, aggregate: Tensor | ArrayLike
) -> NDArray:
    """Contributions ψ_i = ⟨u_i, u_N⟩ / (max(‖u_i‖, ε) · max(‖u_N‖, ε)).

    docs/cgsv.md §2 step 5, with ε = 1e-10. Computed in float64. A zero upload (or
    aggregate) gives ψ = 0 and a warning.

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
    """Importance r ← normalise(max(α r_{t−1} + (1−α) ψ, floor)), docs/cgsv.md §2.

    Step 6. ``alpha`` here is the CGSV decay α of `fl.alpha`, not a normalised
    Shapley value. Mixing a normalised r with raw cosines is intended (the reference
    does it).

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
        >>> update_importance(np.zeros(5), np.full(5, 0.5), 0.95).round(6).tolist()
        [0.2, 0.2, 0.2, 0.2, 0.2]
    """
    check_interval("alpha", alpha, 0, 1, closed="left")
    check_positive("floor", floor)
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
    check_positive("beta", beta, allow_inf=True)
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
    check_interval("q", q, 0, 1, closed="right")
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
    """LayerTopK(u, q_i) for all parties at once on the flat vector (docs/cgsv.md §2).

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
