"""Candidates of ``gan.source = "oracle"``: the true gmm mixture (docs/cgm.md §3).

A pool drawn with ``data.gmm_draw = "ours"`` gets labels in the pooled class
frequencies and exact mixture draws from the pool's ``gmm_means``; a pool drawn
with ``"authors"`` (its files carry ``gmm_draw = "authors"``) gets the authors'
own candidates, replayed from their ``RandomState(2)`` stream (docs/cgm.md §2.1).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from data.gmm_authors import authors_candidates
from gan.sampling import candidate_labels, oracle_sample
from pipeline.inputs import Pool


def oracle_candidates(
    pool: Pool,
    freqs: list[float],
    n_candidates: int,
    label_ss: np.random.SeedSequence,
    z_ss: np.random.SeedSequence,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The oracle's candidates ``(x, y)`` for this pool.

    Args:
        pool: the verified pool (reads ``gmm_draw``, ``split``, ``gmm_means``,
            ``gmm_var``).
        freqs: pooled class frequencies (our draw's labels follow them).
        n_candidates: number of candidates.
        label_ss: seeds our draw's labels.
        z_ss: seeds our draw's points.

    Returns:
        (n, D) float32 candidates and their int64 labels.
    """
    if pool.attrs.get("gmm_draw") == "authors":
        x, y = authors_candidates(str(pool.attrs["split"]), n_candidates)
        return x.astype(np.float32), y
    y_cand = candidate_labels(freqs, n_candidates, seed=label_ss)
    means, var = pool.json_attr("gmm_means"), float(pool.attrs["gmm_var"])
    return oracle_sample(means, var, y_cand, seed=z_ss), y_cand
