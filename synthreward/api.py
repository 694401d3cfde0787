"""The Python API: the synthetic-data reward chain as plain functions on arrays.

A thin layer over the library (docs/api.md): :func:`pool_from_arrays` splits
arrays into parties and a held-out test set (docs/cgm.md §2), :func:`value`
computes the Shapley values (§5), :func:`reward` the ρ-Shapley fair reward values
(§6), :func:`sample` the reward sets (§7) and :func:`evaluate` each party's MMD²
to the reference before and after its reward (§8.1). Nothing here reads or writes
a run folder. The library modules are imported inside the functions, so
``import synthreward`` does not load torch or scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from data.seeding import Seed, as_seed_sequence

if TYPE_CHECKING:
    from rewards.cgm.allocation import RewardAllocation
    from rewards.cgm.sampler_core import SamplingResult
    from valuation.result import PartyValues


@dataclass(frozen=True)
class Pool:
    """Parties and a held-out test set, as the ``pool`` stage writes them.

    Attributes:
        parties: one (x, y) pair per party: float32 samples, int64 labels.
        test: the held-out test set (x, y).
        n_classes: C, the number of classes.
    """

    parties: list[tuple[NDArray[np.float32], NDArray[np.int64]]]
    test: tuple[NDArray[np.float32], NDArray[np.int64]]
    n_classes: int


def pool_from_arrays(
    x: ArrayLike,
    y: ArrayLike,
    n_parties: int,
    *,
    split: str = "uniform",
    party_size: int | Literal["auto"] = "auto",
    test_fraction: float = 0.2,
    dirichlet_alpha: float = 0.5,
    seed: Seed = None,
) -> Pool:
    """Hold out a stratified test set, then split the rest into parties.

    The same steps as the ``pool`` stage on a built-in source (docs/cgm.md §2.3):
    ``data.sources.stratified_test_split`` then ``data.splits.split_indices``.

    Args:
        x: (n, ...) samples: vectors (n, d) or images (n, H, W) / NCHW in [0, 1]
            (uint8 images are divided by 255).
        y: (n,) integer labels in 0..C-1.
        n_parties: N ≥ 2.
        split: ``uniform``, ``powerlaw``, ``classimbalance``, ``dirichlet``,
            ``equaldisjoint`` or ``unequal`` (the last two need C = 5 or 10 and
            N = 5).
        party_size: rows per party, or ``"auto"``.
        test_fraction: share of each class held out, in [0, 1).
        dirichlet_alpha: concentration of the ``dirichlet`` split.
        seed: seeds the test split and the party split.

    Returns:
        The parties, the test set and C.

    Raises:
        ValueError: on bad samples or labels, a bad argument, or a split
            impossible for the data (the message says which).

    Example:
        >>> x = np.arange(40, dtype=np.float32).reshape(20, 2)
        >>> pool = pool_from_arrays(x, np.arange(20) % 2, 2, seed=0)
        >>> [len(y) for _, y in pool.parties], len(pool.test[1]), pool.n_classes
        ([8, 8], 4, 2)
    """
    from data.sources import check_labels, normalise_user_x, stratified_test_split
    from data.splits import split_indices

    x32 = normalise_user_x(np.asarray(x), "x")
    labels = check_labels(np.asarray(y), x32.shape[0], "y")
    n_classes = int(labels.max()) + 1
    test_ss, split_ss = as_seed_sequence(seed).spawn(2)
    train, test = stratified_test_split(labels, test_fraction, seed=test_ss)
    parts = split_indices(
        labels[train],
        n_parties,
        split,
        party_size=party_size,
        n_classes=n_classes,
        dirichlet_alpha=dirichlet_alpha,
        seed=split_ss,
    )
    xs, ys = x32[train], labels[train]
    return Pool([(xs[p], ys[p]) for p in parts], (x32[test], labels[test]), n_classes)


def value(
    party_features: Sequence[ArrayLike],
    candidate_features: ArrayLike,
    *,
    lengthscale: float | Literal["auto"] = "auto",
    shapley: Literal["exact", "permutation"] = "exact",
    n_permutations: int = 1000,
    seed: Seed = None,
    device: str = "cpu",
) -> PartyValues:
    """Shapley values of the parties' data against the reference (docs/cgm.md §5).

    The value of a coalition is the negative MMD² of its data to the reference
    T = D_1 ⊎ … ⊎ D_N ⊎ G (up to a constant), with an SE kernel of lengthscale ℓ.
    Wraps ``valuation.api.value_parties``.

    Args:
        party_features: N arrays (n_i, d): the parties' feature vectors (for
            images, a feature map such as PCA; for small vectors, the data).
        candidate_features: (n_G, d) features of the candidate pool G (the
            synthetic points rewards are drawn from).
        lengthscale: ``"auto"`` (the rule of docs/cgm.md §5.3) or a fixed ℓ > 0.
        shapley: ``"exact"`` (N ≤ 16) or ``"permutation"``.
        n_permutations: random orders for ``"permutation"`` (≥ 2).
        seed: seeds the permutations (unused by ``"exact"``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for the kernel pass.

    Returns:
        ``PartyValues``: ``shapley`` (φ), ``alpha`` (φ / max φ), ``lengthscale``,
        the coalition values and the bounds :func:`reward` needs.

    Raises:
        ValueError: on bad input (naming the argument), or if max φ ≤ 0
            (``valuation.api.NonPositiveShapleyError``).
        TypeError: if ``party_features`` is not a list of arrays.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> parties = [rng.normal(size=(20, 2)) for _ in range(3)]
        >>> vals = value(parties, rng.normal(size=(60, 2)), lengthscale=1.0)
        >>> vals.n_parties, round(max(vals.alpha), 6)
        (3, 1.0)
    """
    from valuation.api import value_parties

    return value_parties(
        list(party_features),
        np.asarray(candidate_features),
        lengthscale=lengthscale,
        shapley=shapley,
        n_permutations=n_permutations,
        seed=seed,
        device=device,
    )


def reward(
    values: PartyValues,
    *,
    rho: float | Literal["auto"] = "auto",
    condition: Literal["stable", "individual"] = "stable",
) -> RewardAllocation:
    """ρ-Shapley fair reward values r_i = α_i^ρ · v* (docs/cgm.md §6).

    With ``rho="auto"`` (u = log v*, ρ) solve the LP of §6.1; with a number, v* is
    the largest attainable value (§6.2). Wraps ``rewards.cgm.allocation``.

    Args:
        values: the result of :func:`value`.
        rho: ``"auto"`` or ρ ∈ [0, 1].
        condition: ``"stable"`` (r_i ≥ v(C_i)) or ``"individual"`` (r_i ≥ v(D_i)).

    Returns:
        ``RewardAllocation``: ``reward_values`` (r), ``rho``, ``v_star`` and the
        lower bounds and violations.

    Raises:
        ValueError: on a bad ρ or condition, or an α_i ≤ 0.
        InfeasibleRewardError: if the LP has no solution (a ValueError whose
            message names the parties and the fix).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> parties = [rng.normal(size=(20, 2)) for _ in range(3)]
        >>> vals = value(parties, rng.normal(size=(60, 2)), lengthscale=1.0)
        >>> alloc = reward(vals, rho=0.5)
        >>> len(alloc.reward_values), alloc.rho
        (3, 0.5)
    """
    from rewards.cgm.allocation import fixed_rho, solve_rho

    args = (values.alpha, values.v_single, values.v_stable_lower, values.v_max)
    if rho == "auto":
        return solve_rho(*args, condition=condition)
    if isinstance(rho, str):
        raise ValueError(f"Argument `rho` must be 'auto' or a number, got {rho!r}")
    return fixed_rho(*args, rho, condition=condition)


def _reference(
    party_features: Sequence[ArrayLike], candidate_features: ArrayLike
) -> tuple[list[NDArray[np.float64]], NDArray[np.float64], NDArray[np.float64]]:
    xs = [np.asarray(x, dtype=np.float64) for x in party_features]
    g = np.asarray(candidate_features, dtype=np.float64)
    return xs, g, np.concatenate([*xs, g]) if xs else g


def sample(
    party_features: Sequence[ArrayLike],
    candidate_features: ArrayLike,
    values: PartyValues,
    allocation: RewardAllocation,
    *,
    inv_temp: float = 1.0,
    seed: Seed = None,
    device: str = "cpu",
) -> list[SamplingResult]:
    """Draw each party's reward set from the candidate pool (docs/cgm.md §7).

    Party i receives candidates one at a time, drawn without replacement with
    probability softmax(β·w) over the scaled value gains, until the value of its
    data plus the reward reaches r_i (or the gains stall, or the pool runs out).
    Wraps ``rewards.cgm.sampling.sample_parties``.

    Args:
        party_features: the N arrays given to :func:`value`.
        candidate_features: the candidate features given to :func:`value`.
        values: the result of :func:`value` (its lengthscale is used).
        allocation: the result of :func:`reward` (its reward values are the
            targets).
        inv_temp: β ≥ 0 (0: uniform draws; ``math.inf``: greedy).
        seed: seeds the draws (one child seed per party).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns:
        One ``SamplingResult`` per party: ``candidate_index`` (the rows of the
        candidates it receives, in order), ``value_trace``, ``stop_reason``.

    Raises:
        ValueError: on mismatched shapes or a bad β.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> parties = [rng.normal(size=(20, 2)) for _ in range(3)]
        >>> cands = rng.normal(size=(60, 2))
        >>> vals = value(parties, cands, lengthscale=1.0)
        >>> got = sample(parties, cands, vals, reward(vals), seed=0)
        >>> [r.candidate_index.ndim for r in got]
        [1, 1, 1]
    """
    from rewards.cgm.sampling import sample_parties

    xs, g, ref = _reference(party_features, candidate_features)
    return sample_parties(
        xs,
        g,
        ref,
        values.lengthscale,
        allocation.reward_values,
        inv_temp=inv_temp,
        seeds=as_seed_sequence(seed).spawn(len(xs)),
        device=device,
        kernel_device=device,
    )


def evaluate(
    party_features: Sequence[ArrayLike],
    candidate_features: ArrayLike,
    values: PartyValues,
    samples: Sequence[SamplingResult],
    *,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Each party's unbiased MMD² to the reference before and after its reward.

    MMD²(X, T) with X = D_i (before) and X = D_i ⊎ R_i (after), T the reference
    and ℓ the lengthscale of :func:`value` (docs/cgm.md §8.1). Smaller is closer;
    the unbiased estimate can be slightly negative when X is very close to T.
    The full set of metrics and downstream accuracy is the ``evaluate`` stage's.

    Args:
        party_features: the N arrays given to :func:`value`.
        candidate_features: the candidate features given to :func:`value`.
        values: the result of :func:`value`.
        samples: the result of :func:`sample`.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for the kernel sums.

    Returns:
        Per party: ``mmd2_before``, ``mmd2_after`` and ``n_rewards``.

    Raises:
        ValueError: if ``samples`` does not hold one result per party.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> parties = [rng.normal(size=(20, 2)) for _ in range(3)]
        >>> cands = rng.normal(size=(60, 2))
        >>> vals = value(parties, cands, lengthscale=1.0)
        >>> got = sample(parties, cands, vals, reward(vals), seed=0)
        >>> rows = evaluate(parties, cands, vals, got)
        >>> sorted(rows[0])
        ['mmd2_after', 'mmd2_before', 'n_rewards']
    """
    from rewards.cgm.evaluation import Reference
    from valuation.mmd import kernel_sum, unbiased_mmd2_from_sums

    xs, g, t = _reference(party_features, candidate_features)
    if len(samples) != len(xs):
        raise ValueError(
            f"Argument `samples` must hold one result per party ({len(xs)}), "
            f"got {len(samples)}"
        )
    ref = Reference(t, values.lengthscale, values.v_reference * t.shape[0] ** 2)

    def mmd2(x: NDArray[np.float64]) -> float:
        k_xx = kernel_sum(x, x, ref.lengthscale, device=device)
        k_xt = kernel_sum(x, ref.features, ref.lengthscale, device=device)
        return unbiased_mmd2_from_sums(k_xx, ref.k_tt, k_xt, len(x), len(t))

    rows = []
    for x, res in zip(xs, samples, strict=True):
        after = np.concatenate([x, g[res.candidate_index]])
        rows.append(
            {
                "mmd2_before": mmd2(x),
                "mmd2_after": mmd2(after),
                "n_rewards": res.n_rewards,
            }
        )
    return rows


def downstream_accuracy(
    own: tuple[ArrayLike, ArrayLike],
    reward: tuple[ArrayLike, ArrayLike],
    test: tuple[ArrayLike, ArrayLike],
    n_classes: int,
    *,
    reward_weight: float = 1.0,
    classifier: Literal["auto", "cnn", "mlp"] = "auto",
    epochs: int = 5,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Test accuracy of a classifier trained on own rows, then with the reward.

    The evaluate stage's downstream check (docs/cgm.md §8.2) on arrays: the same
    classifier (``cnn`` for 28×28 images, else ``mlp``), seed and batches for both
    runs, Adam 1e-3, batch 64. Each reward row's loss counts ``reward_weight`` of an
    own row's, so a party whose reward does not help can down-weight it.

    Args:
        own: (x, y) of the party's own rows, in the data space.
        reward: (x, y) of its reward rows (``candidates[result.candidate_index]``);
            may have 0 rows.
        test: (x, y) of a held-out test set.
        n_classes: C.
        reward_weight: loss weight of a reward row, in (0, 1] (1: plain training).
        classifier: ``"auto"``, ``"cnn"`` or ``"mlp"``.
        epochs: training epochs.
        seed: seeds initialisation and shuffling.
        device: torch device.

    Returns:
        ``acc_own`` (trained on ``own``) and ``acc_with_reward`` (on own ⊎ reward).

    Raises:
        ValueError: on mismatched shapes, bad labels or a bad ``reward_weight``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(60, 4)); y = (x[:, 0] > 0).astype(int)
        >>> acc = downstream_accuracy((x[:20], y[:20]), (x[20:40], y[20:40]),
        ...                           (x[40:], y[40:]), 2, epochs=2)
        >>> sorted(acc)
        ['acc_own', 'acc_with_reward']
    """
    from rewards.cgm.evaluation import weighted_accuracy
    from rewards.classifiers import accuracy, fit_classifier

    x_own, y_own = np.asarray(own[0]), np.asarray(own[1])
    x_rew, y_rew = np.asarray(reward[0]), np.asarray(reward[1])
    train = {"kind": classifier, "epochs": epochs, "seed": seed, "device": device}
    model, pre = fit_classifier(x_own, y_own, n_classes, **train)
    acc_own = accuracy(model, pre.transform(np.asarray(test[0])), np.asarray(test[1]))
    if len(x_rew) == 0:
        return {"acc_own": acc_own, "acc_with_reward": acc_own}
    combined = (np.concatenate([x_own, x_rew]), np.concatenate([y_own, y_rew]))
    is_reward = np.r_[np.zeros(len(x_own), bool), np.ones(len(x_rew), bool)]
    acc = weighted_accuracy(
        combined, is_reward, (np.asarray(test[0]), np.asarray(test[1])), n_classes,
        reward_weight=reward_weight, **train,
    )  # fmt: skip
    return {"acc_own": acc_own, "acc_with_reward": acc}
