"""The authors' simulated mixture, drawn as their description says (docs/cgm.md §2.1).

``data.gmm_draw = "authors"`` replaces our seeded gmm source by the draw of Tay,
Xu, Foo, Low (AAAI 2022) for their simulated experiment, written from its
description. Everything comes from one legacy ``np.random.RandomState(2)``
stream, in this order:

1. the 5 means, uniform on [0, 1)², as one 5×2 draw; covariance I/200;
2. class by class, 1,000 points per class from a multivariate normal;
3. the parties by the split's proportion matrix p: party i takes, class by class,
   ⌊p_ij·1,000⌋ points of class j from a running index per class (party 0 first);
4. each party, in party order, shuffled by a permutation of its rows;
5. the candidates: each of the n draws picks a class by ``randint(5)``, then takes
   one multivariate-normal draw of that class.

Steps 1–4 do not depend on the number of candidates, so the pool stage draws the
parties and the gan stage replays the stream to draw the candidates (the first k
of n candidates are the same for any n ≥ k). The authors' experiment has no held-out
test set; ours (only the downstream classifiers use it) is drawn from the same
mixture with a generator seeded by the run, ⌊1,000·f/(1 − f) + 0.5⌋ points per class
for ``data.test_fraction`` = f, so that it makes up the fraction f of each class.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from data.checks import check_int, check_interval
from data.seeding import Seed
from data.sources import GMM_COMPONENTS, GMM_VAR
from data.splits import proportion_matrix

#: The authors' stream seed and points per class (docs/cgm.md §2.1).
AUTHORS_SEED = 2
AUTHORS_PER_CLASS = 1000
#: The splits the authors drew their simulated parties with.
AUTHORS_SPLITS = ("equaldisjoint", "unequal")

Xy = tuple[NDArray[np.float64], NDArray[np.int64]]


def authors_counts(split: str) -> NDArray[np.int64]:
    """n_ij = ⌊p_ij·1,000⌋, computed in floating point as the authors do.

    Args:
        split: ``equaldisjoint`` or ``unequal``.

    Returns:
        (5, 5) int64 counts: row i = party i, column j = class j.

    Raises:
        ValueError: for any other split.

    Example:
        >>> authors_counts("unequal")[2].tolist()
        [580, 390, 10, 10, 10]
        >>> authors_counts("equaldisjoint").sum(axis=0).tolist()
        [1000, 1000, 1000, 1000, 1000]
    """
    if split not in AUTHORS_SPLITS:
        raise ValueError(
            f"the authors' draw exists for the splits {AUTHORS_SPLITS}, got {split!r}"
        )
    p = proportion_matrix(split, GMM_COMPONENTS, GMM_COMPONENTS)
    return np.array(
        [[int(p_ij * AUTHORS_PER_CLASS) for p_ij in row] for row in p], dtype=np.int64
    )


def _cov() -> NDArray[np.float64]:
    return np.eye(2) * GMM_VAR


def _draw_parties(rs: np.random.RandomState, split: str) -> tuple[NDArray, list[Xy]]:
    """Steps 1–4 of the module docstring on ``rs``; returns the means and parties."""
    counts = authors_counts(split)
    means = rs.uniform(0.0, 1.0, size=(GMM_COMPONENTS, 2))
    cov = _cov()
    by_class = [
        rs.multivariate_normal(means[j], cov, size=AUTHORS_PER_CLASS)
        for j in range(GMM_COMPONENTS)
    ]
    start = np.zeros(GMM_COMPONENTS, dtype=np.int64)
    parties: list[Xy] = []
    for row in counts:
        xs, ys = [], []
        for j, n_ij in enumerate(row):
            xs.append(by_class[j][start[j] : start[j] + n_ij])
            ys.append(np.full(n_ij, j, dtype=np.int64))
            start[j] += n_ij
        parties.append((np.concatenate(xs), np.concatenate(ys)))
    shuffled = []
    for x, y in parties:
        perm = rs.permutation(len(y))
        shuffled.append((x[perm], y[perm]))
    return means, shuffled


def authors_parties(split: str) -> tuple[NDArray[np.float64], list[Xy]]:
    """The authors' means and parties (steps 1–4), in float64.

    Args:
        split: ``equaldisjoint`` or ``unequal``.

    Returns:
        ``(means, parties)``: the (5, 2) means and 5 ``(x, y)`` pairs of 1,000 rows.

    Raises:
        ValueError: for a split the authors did not draw.

    Example:
        >>> means, parties = authors_parties("equaldisjoint")
        >>> [len(y) for _, y in parties], np.bincount(parties[1][1]).tolist()
        ([1000, 1000, 1000, 1000, 1000], [10, 960, 10, 10, 10])
    """
    return _draw_parties(np.random.RandomState(AUTHORS_SEED), split)


def authors_candidates(split: str, n_candidates: int) -> Xy:
    """The authors' candidates (step 5), replaying the stream after the parties.

    Args:
        split: ``equaldisjoint`` or ``unequal``. Step 4 draws one permutation per
            party, so the stream depends on the party sizes; both splits give 1,000
            rows to every party, hence the same candidates.
        n_candidates: number of candidates (the authors: 100,000), ≥ 1.

    Returns:
        ``(x, y)``: (n, 2) float64 candidates and their int64 classes.

    Raises:
        ValueError: for a bad split or ``n_candidates`` < 1.

    Example:
        >>> x, y = authors_candidates("unequal", 3)
        >>> x.shape, y.tolist() == authors_candidates("unequal", 5)[1][:3].tolist()
        ((3, 2), True)
    """
    n_candidates = check_int("n_candidates", n_candidates, minimum=1)
    rs = np.random.RandomState(AUTHORS_SEED)
    means, _ = _draw_parties(rs, split)
    cov = _cov()
    x = np.empty((n_candidates, 2))
    y = np.empty(n_candidates, dtype=np.int64)
    for k in range(n_candidates):
        c = rs.randint(GMM_COMPONENTS)
        y[k] = c
        x[k] = rs.multivariate_normal(means[c], cov)
    return x, y


def authors_test_size(test_fraction: float) -> int:
    """Test points per class: ⌊1,000·f/(1 − f) + 0.5⌋ (module docstring).

    Example:
        >>> authors_test_size(0.2)
        250
    """
    f = check_interval("test_fraction", test_fraction, 0.0, 1.0, closed="neither")
    return int(AUTHORS_PER_CLASS * f / (1.0 - f) + 0.5)


def authors_test_set(means: NDArray, test_fraction: float, seed: Seed) -> Xy:
    """Our held-out test set from the authors' mixture (not part of their stream).

    Args:
        means: (5, 2) component means (from :func:`authors_parties`).
        test_fraction: the share f of each class held out, in (0, 1).
        seed: seeds the draw (``np.random.default_rng``).

    Returns:
        ``(x, y)`` of 5·:func:`authors_test_size` rows, sorted by class.

    Example:
        >>> means, _ = authors_parties("unequal")
        >>> x, y = authors_test_set(means, 0.2, seed=0)
        >>> x.shape, np.bincount(y).tolist()
        ((1250, 2), [250, 250, 250, 250, 250])
    """
    per_class = authors_test_size(test_fraction)
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(GMM_COMPONENTS, dtype=np.int64), per_class)
    x = np.asarray(means)[y] + np.sqrt(GMM_VAR) * rng.standard_normal((len(y), 2))
    return x, y


def authors_pool(
    split: str, n_parties: int, party_size: int | str, test_fraction: float, seed: Seed
) -> tuple[list[Xy], Xy, dict]:
    """Parties, test set and pool metadata of the authors' draw (pool stage).

    Args:
        split: ``equaldisjoint`` or ``unequal``.
        n_parties: must be 5.
        party_size: ``"auto"`` or 1000 (the authors' sizes are fixed).
        test_fraction: the share of each class held out for our test set.
        seed: seeds the test set only.

    Returns:
        ``(parties, test, meta)``; ``meta`` holds ``gmm_means``, ``gmm_var`` and
        ``gmm_draw = "authors"`` for the pool files.

    Raises:
        ValueError: naming the argument the authors' draw cannot honour.

    Example:
        >>> parties, test, meta = authors_pool("unequal", 5, "auto", 0.2, seed=0)
        >>> len(parties), len(test[1]), meta["gmm_draw"]
        (5, 1250, 'authors')
    """
    if n_parties != GMM_COMPONENTS:
        raise ValueError(
            f"the authors' draw has 5 parties; set n_parties = 5, got {n_parties}"
        )
    if party_size not in ("auto", AUTHORS_PER_CLASS):
        raise ValueError(
            "the authors' draw has 1,000 rows per party; set party_size = "
            f'"auto" or 1000, got {party_size!r}'
        )
    means, parties = authors_parties(split)
    test = authors_test_set(means, test_fraction, seed)
    meta = {"gmm_means": means.tolist(), "gmm_var": GMM_VAR, "gmm_draw": "authors"}
    return parties, test, meta
