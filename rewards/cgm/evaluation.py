"""Evaluation of synthetic-data rewards (docs/cgm.md §8; Tay et al., AAAI 2022, §6).

Per party, compares X = D_i (before) and X = D_i ⊎ R_i (after) with the reference
T in feature space (unbiased MMD², k-NN KL, Gaussian W2, class imbalance, |R_i|),
correlates the after-values with α, and measures the downstream accuracy gain of a
classifier trained on D_i ⊎ R_i over one trained on D_i alone. `beta_sweep` reruns
the sampler for several β in memory (docs/cgm.md §8.3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from data.checks import check_interval
from rewards.cgm.sampling import (
    PoolSums,
    candidate_reference_sums,
    initial_state,
    sample_parties_except,
)
from rewards.classifiers import accuracy, fit_classifier
from rewards.metrics import mean_and_se, pearson_or_none
from valuation.divergences import class_imbalance, gaussian_w2, knn_kl_divergence
from valuation.mmd import kernel_sum, unbiased_mmd2_from_sums

logger = logging.getLogger(__name__)

#: The distribution metrics of docs/cgm.md §8.1, in report order.
METRICS = ("mmd2", "knn_kl", "w2", "class_imbalance", "n_rewards")


@dataclass(frozen=True)
class Reference:
    """The reference T and its own kernel sum, computed once per run.

    Attributes:
        features: (n_T, d) reference features.
        lengthscale: ℓ of the value stage.
        k_tt: Σ_{y,y'∈T} k(y, y') (diagonal included), = v_reference · n_T².
    """

    features: NDArray[np.float32]
    lengthscale: float
    k_tt: float


def distribution_metrics(
    x: NDArray,
    y: NDArray,
    ref: Reference,
    n_classes: int,
    *,
    n_rewards: int,
    chunk_size: int = 4096,
    device: str = "cpu",
) -> dict[str, float]:
    """The metrics of docs/cgm.md §8.1 for one set X ⊂ T.

    Args:
        x: (m, d) features of X (m ≥ 7 for the k-NN estimator).
        y: (m,) labels of X.
        ref: the reference.
        n_classes: C of the pool.
        n_rewards: |R_i| (0 for "before").
        chunk_size: kernel tile rows.
        device: kernel device.

    Returns:
        ``mmd2``, ``knn_kl``, ``knn_kl_skipped``, ``w2``, ``class_imbalance``,
        ``n_rewards``.
    """
    t = ref.features
    m, n = len(x), len(t)
    kw = {"chunk_size": chunk_size, "device": device}
    k_xx = kernel_sum(x, x, ref.lengthscale, **kw)
    k_xt = kernel_sum(x, t, ref.lengthscale, **kw)
    kl = knn_kl_divergence(x, t)
    return {
        "mmd2": unbiased_mmd2_from_sums(k_xx, ref.k_tt, k_xt, m, n),
        "knn_kl": kl.value,
        "knn_kl_skipped": kl.skipped,
        "w2": gaussian_w2(x, t),
        "class_imbalance": class_imbalance(y, n_classes),
        "n_rewards": n_rewards,
    }


def alpha_correlations(
    alpha: Sequence[float], rows: Sequence[dict[str, float]]
) -> dict[str, float | None]:
    """Pearson corr(α, metric) over parties for every metric of ``METRICS``.

    Args:
        alpha: (N,) normalised Shapley values α_i = φ_i / max φ.
        rows: per party, the metrics after rewards.

    Returns:
        metric -> correlation (``None`` when a vector has zero variance).
    """
    return {m: pearson_or_none(alpha, [r[m] for r in rows]) for m in METRICS}


def sweep_summary(
    inv_temps: Sequence[float],
    per_beta: Sequence[dict[str, float | None]],
    n_rewards: Sequence[Sequence[int]],
    mmd2: Sequence[Sequence[float]],
) -> dict[str, object]:
    """Mean ± s.e. over β of each corr(α, ·), and corr(β, ·) averaged over parties.

    corr(β, ·) is a Pearson correlation over the **finite** β values only: β = inf
    (greedy) has no place on a linear β axis, so its rows are left out of corr(β, ·)
    but still count in corr(α, ·). With fewer than two finite β the correlation is
    undefined and reported as None. A party whose row is the same at every β (an
    excluded party: 0 rewards, MMD² unchanged) has no correlation; it is left out of
    the mean with one info line instead of a warning per party.

    Args:
        inv_temps: the β values of the sweep (``math.inf`` = greedy).
        per_beta: for each β, the correlations of :func:`alpha_correlations`.
        n_rewards: [β][party] number of rewards.
        mmd2: [β][party] unbiased MMD² after rewards.

    Returns:
        ``corr_alpha`` {metric: {mean, se}}, ``corr_beta_n_rewards`` and
        ``corr_beta_mmd2`` (means over parties of corr(β, ·) over the finite β;
        None if undefined).
    """
    out: dict[str, object] = {
        "corr_alpha": {
            m: dict(
                zip(("mean", "se"), mean_and_se([c[m] for c in per_beta]), strict=True)
            )
            for m in METRICS
        }
    }
    finite = [k for k, beta in enumerate(inv_temps) if math.isfinite(beta)]
    betas = [inv_temps[k] for k in finite]
    for name, table in (("n_rewards", n_rewards), ("mmd2", mmd2)):
        arr = np.asarray(table, dtype=np.float64)[finite]  # (finite β, N)
        if len(betas) < 2:
            out[f"corr_beta_{name}"] = None
            continue
        flat = [i for i in range(arr.shape[1]) if np.all(arr[:, i] == arr[0, i])]
        if flat:
            logger.info(
                "corr(beta, %s) leaves out parties %s: the same value at every beta "
                "(such as an excluded party, which gets no reward)",
                name,
                flat,
            )
        per_party = [
            pearson_or_none(betas, arr[:, i])
            for i in range(arr.shape[1])
            if i not in flat
        ]
        out[f"corr_beta_{name}"] = mean_and_se(per_party)[0]
    return out


def downstream_accuracy(
    own: tuple[NDArray, NDArray],
    combined: tuple[NDArray, NDArray],
    test: tuple[NDArray, NDArray],
    n_classes: int,
    *,
    kind: str = "auto",
    epochs: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, float]:
    """Accuracy on the test set of a classifier trained on D_i vs on D_i ⊎ R_i.

    Both runs use the same seeded initialisation and shuffling seed (docs/cgm.md §8.2),
    Adam 1e-3, batch 64; each fits its input standardisation on its own training
    data, as a user would.

    Args:
        own: (x, y) of D_i in the data space.
        combined: (x, y) of D_i ⊎ R_i in the data space.
        test: (x, y) of the held-out test set.
        n_classes: C.
        kind: ``auto``, ``cnn`` or ``mlp``.
        epochs: training epochs.
        seed: seeds initialisation and shuffling.
        device: torch device.

    Returns:
        ``acc_before``, ``acc_after``, ``gain``.
    """
    accs = []
    for x, y in (own, combined):
        model, pre = fit_classifier(
            x, y, n_classes, kind=kind, epochs=epochs, seed=seed, device=device
        )
        accs.append(accuracy(model, pre.transform(test[0]), test[1]))
    return {"acc_before": accs[0], "acc_after": accs[1], "gain": accs[1] - accs[0]}


def weighted_accuracy(
    combined: tuple[NDArray, NDArray],
    is_reward: NDArray,
    test: tuple[NDArray, NDArray],
    n_classes: int,
    *,
    reward_weight: float,
    kind: str = "auto",
    epochs: int,
    seed: int,
    device: str = "cpu",
) -> float:
    """Test accuracy of training on D_i ⊎ R_i with the reward rows down-weighted.

    The classifier, seeds and batches of `downstream_accuracy`; each reward row's
    loss counts ``reward_weight`` and each own row's 1 (docs/cgm.md §8.2), so
    ``reward_weight = 1`` is the plain "after" training up to float rounding.

    Args:
        combined: (x, y) of D_i ⊎ R_i in the data space.
        is_reward: (n,) bool, True for a reward row of ``combined``.
        test: (x, y) of the held-out test set.
        n_classes: C.
        reward_weight: the loss weight of a reward row, in (0, 1].
        kind: ``auto``, ``cnn`` or ``mlp``.
        epochs: training epochs.
        seed: seeds initialisation and shuffling.
        device: torch device.

    Returns:
        The test accuracy.
    """
    w = check_interval("reward_weight", reward_weight, 0.0, 1.0, closed="right")
    weights = np.where(np.asarray(is_reward, dtype=bool), w, 1.0)
    model, pre = fit_classifier(
        combined[0], combined[1], n_classes, kind=kind, epochs=epochs, seed=seed,
        device=device, sample_weight=weights,
    )  # fmt: skip
    return accuracy(model, pre.transform(test[0]), test[1])


def beta_sweep(
    inv_temps: Sequence[float],
    parties: Sequence[tuple[NDArray, NDArray]],
    candidates: tuple[NDArray, NDArray],
    ref: Reference,
    alpha: Sequence[float],
    targets: ArrayLike,
    n_classes: int,
    *,
    seeds: Sequence[Sequence[int]],
    excluded: Sequence[int] = (),
    workers: int = 1,
    device: str = "cpu",
    kernel_device: str = "cpu",
    kernel_precision: str = "float64",
    chunk_size: int = 4096,
    progress: bool = False,
    sums: PoolSums | None = None,
) -> dict[str, object]:
    """Rerun the sampler in memory per β and measure the rewards (docs/cgm.md §8.3).

    The kernel sums t and each party's initial sums are computed once for every β
    (or taken from ``sums``) and handed to `sample_parties`; the metrics after
    rewards are those of `distribution_metrics`, on ``kernel_device`` with
    ``chunk_size``.

    Args:
        inv_temps: the β values (``math.inf`` = greedy).
        parties: per party, (features, labels) of its own data D_i.
        candidates: (features, labels) of the candidates G.
        ref: the reference T and its lengthscale.
        alpha: (N,) normalised Shapley values α_i = φ_i / max φ.
        targets: (N,) reward values r_i.
        n_classes: C of the pool.
        seeds: per β, one integer seed per party.
        excluded: parties that get no reward (φ_i ≤ 0, docs/cgm.md §6.4).
        workers: sampling processes (see `sample_parties`).
        device: device of the additions.
        kernel_device: device of the one-off kernel pass and of the metrics.
        kernel_precision: dtype of kernel values in the one-off pass.
        chunk_size: rows per kernel tile.
        progress: show progress bars.
        sums: t and the parties' initial sums for the rows of ``candidates``
            (`rewards.cgm.sampling.pool_sums`, the value stage's pass); computed
            here when None.

    Returns:
        ``{}`` when ``inv_temps`` is empty; else ``per_beta`` (β and its
        `alpha_correlations`), ``n_rewards`` and ``mmd2`` ([β][party]) and
        ``summary`` (`sweep_summary`).
    """
    betas = list(inv_temps)
    if not betas:
        return {}
    feats = [f for f, _ in parties]
    g, t_ref, ell = candidates[0], ref.features, ref.lengthscale
    given: dict[str, object] = {"sums": sums}
    if sums is None:
        kernel = {
            # the mean of T as stored (float32 in a run), as the sweep always used
            "center": t_ref.mean(0),
            "device": kernel_device,
            "kernel_precision": kernel_precision,
            "chunk_size": chunk_size,
        }
        skip = set(excluded)
        given = {
            "t": candidate_reference_sums(g, t_ref, ell, **kernel),
            "states": [
                None if i in skip else initial_state(x, g, t_ref, ell, **kernel)
                for i, x in enumerate(feats)
            ],
        }
    kw = {"chunk_size": chunk_size, "device": kernel_device}
    per_beta, n_rew, mmd = [], [], []
    for beta, beta_seeds in zip(betas, seeds, strict=True):
        results = sample_parties_except(
            excluded, feats, g, t_ref, ell, targets,
            inv_temp=beta, seeds=beta_seeds, workers=workers, device=device,
            kernel_device=kernel_device, kernel_precision=kernel_precision,
            chunk_size=chunk_size, progress=progress, **given,
        )  # fmt: skip
        rows = []
        for (x, y), res in zip(parties, results, strict=True):
            idx = res.candidate_index
            f_all = np.concatenate([x, g[idx]])
            y_all = np.concatenate([y, candidates[1][idx]])
            rows.append(
                distribution_metrics(
                    f_all, y_all, ref, n_classes, n_rewards=len(idx), **kw
                )
            )
        per_beta.append({"inv_temp": beta, **alpha_correlations(alpha, rows)})
        n_rew.append([r["n_rewards"] for r in rows])
        mmd.append([r["mmd2"] for r in rows])
        logger.info("sweep β = %g: rewards %s", beta, n_rew[-1])
    summary = sweep_summary(betas, per_beta, n_rew, mmd)
    return {"per_beta": per_beta, "n_rewards": n_rew, "mmd2": mmd, "summary": summary}
