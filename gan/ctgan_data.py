"""CTGAN's data side (Xu et al., NeurIPS 2019, §4.2–§4.3), docs/cgm.md §3.5.

- :func:`table_layout`: the plain-dict column layout of a table schema (continuous
  columns z-scored at ``start``, categorical ones one-hot at ``[start, start+size)``).
- :func:`fit_transformer`: *mode-specific normalisation*: one seeded scikit-learn
  ``BayesianGaussianMixture`` per continuous column; a value c becomes
  [α = (c − η_k)/(4σ_k) clipped to ±0.99 ; one-hot(k)], k drawn from the mode
  posterior. Categorical columns and the class label stay one-hot.
- :func:`to_model_space` and :func:`from_model_space`: the two directions.
- :class:`CondSampler` and :class:`CTGANDataModule`: the conditional vector and
  *training-by-sampling* (a discrete column uniformly, a category with probability
  ∝ log(1 + count), a real row with that category); here the row's class label is
  always set in the conditional vector too, so that every step teaches the
  class-conditional generation that candidates need (docs/cgm.md §3.5).

Everything here is plain numpy with explicit seeds; the transformer is a dict of plain
Python values so that it travels inside the Lightning checkpoint.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from torch.utils.data import DataLoader, Dataset

from data.checks import check_int

logger = logging.getLogger(__name__)

N_MODES = 10
"""Components of each Bayesian Gaussian mixture (CTGAN: 10)."""
WEIGHT_PRIOR = 1e-3
"""Dirichlet-process weight concentration prior (CTGAN: 0.001)."""
MODE_MIN_WEIGHT = 5e-3
"""Modes with a smaller mixture weight are dropped (CTGAN: 0.005)."""
MAX_FIT_ROWS = 10_000
"""Rows (a seeded subsample) each mixture is fitted on, for CPU time."""
ALPHA_CLIP = 0.99
"""|α| is clipped here (CTGAN)."""
POINT_MODE_STD = 2e-3
"""A mode with σ below this (twice √reg_covar = 1e-3 of sklearn) is a point mass."""
ATOM_MIN_FRACTION = 0.05
"""A value held by at least this fraction of a column's rows is its own mode (σ 0)."""


def table_layout(schema: Any) -> list[dict[str, Any]]:
    """Plain-dict layout of a table schema's encoded columns (docs/cgm.md §3.5).

    Args:
        schema: an object with ``columns``, each having ``name``, ``kind``
            (``"continuous"`` or ``"categorical"``), ``start``, ``size`` and, for
            continuous columns, ``mean`` and ``std`` (encoded = (value − mean)/std).

    Returns:
        One dict per column: ``name``, ``kind``, ``start``, ``size``, ``mean``, ``std``.

    Raises:
        ValueError: on an unknown kind, a continuous column of size ≠ 1 or
            overlapping / non-contiguous spans.
    """
    out, end = [], 0
    for c in sorted(schema.columns, key=lambda c: c.start):
        if c.kind not in ("continuous", "categorical"):
            raise ValueError(f"Argument `schema` column {c.name!r}: kind {c.kind!r}")
        if c.start != end or c.size < 1 or (c.kind == "continuous" and c.size != 1):
            raise ValueError(
                f"Argument `schema` column {c.name!r}: span [{c.start}, "
                f"{c.start + c.size}) does not follow the previous column at {end}"
            )
        end = c.start + c.size
        out.append(
            {
                "name": str(c.name),
                "kind": str(c.kind),
                "start": int(c.start),
                "size": int(c.size),
                "mean": float(getattr(c, "mean", 0.0)),
                "std": float(getattr(c, "std", 1.0)),
            }
        )
    return out


def _fit_modes(values: NDArray[np.float64], seed: int) -> tuple[list, list, list]:
    """Means, stds and weights of the kept modes of one column's Bayesian GMM."""
    if np.unique(values).size < N_MODES:  # too few distinct values to fit 10 modes
        return [float(values.mean())], [max(float(values.std()), 1e-3)], [1.0]
    bgm = BayesianGaussianMixture(
        n_components=N_MODES,
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=WEIGHT_PRIOR,
        max_iter=100,
        n_init=1,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # few distinct values leave modes empty: expected
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        bgm.fit(values[:, None])
    keep = np.flatnonzero(bgm.weights_ > MODE_MIN_WEIGHT)
    if keep.size == 0:
        keep = np.array([int(np.argmax(bgm.weights_))])
    w = bgm.weights_[keep] / bgm.weights_[keep].sum()
    stds = np.sqrt(bgm.covariances_[keep, 0, 0])
    return bgm.means_[keep, 0].tolist(), stds.tolist(), w.tolist()


def _atoms(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Values that hold at least ``ATOM_MIN_FRACTION`` of the rows (point masses)."""
    uniq, counts = np.unique(v, return_counts=True)
    return uniq[counts >= ATOM_MIN_FRACTION * v.size]


def _fit_column(v: NDArray[np.float64], rng: np.random.Generator, seed: int) -> dict:
    atoms = _atoms(v)
    rest = v[~np.isin(v, atoms)]
    means, stds, weights = [], [], []
    if rest.size:
        fit = (
            rest if rest.size <= MAX_FIT_ROWS else rng.choice(rest, MAX_FIT_ROWS, False)
        )
        means, stds, weights = _fit_modes(fit, seed)
        weights = [w * rest.size / v.size for w in weights]
    for a in atoms:
        means.append(float(a))
        stds.append(0.0)
        weights.append(float(np.mean(v == a)))
    return {"modes_mean": means, "modes_std": stds, "modes_weight": weights}


def fit_transformer(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    layout: Sequence[dict[str, Any]],
    n_classes: int,
    *,
    seed: int,
) -> dict[str, Any]:
    """Fit the mode-specific normalisation of CTGAN §4.2 on encoded rows.

    Each continuous column gets a Bayesian GMM (10 modes, Dirichlet-process prior
    0.001, modes of weight ≤ 0.005 dropped) fitted on ≤ 10,000 seeded rows, with
    ``random_state`` derived from ``seed`` and the column. *Atoms*, values held by
    ≥ 5 % of the rows (the zeros of ``capital-gain``, the 40 of ``hours-per-week``),
    are left out of the fit and become modes of their own with σ = 0. A continuous
    column whose raw values (``encoded·std + mean``) are all integers is marked
    ``integral``: its samples are rounded in the raw space, and every continuous
    sample is clipped to the observed range (SDV's ``enforce_rounding`` /
    ``enforce_min_max_values``).

    Args:
        x: (n, width) encoded rows (z-scored continuous, one-hot categorical).
        y: (n,) int64 labels in [0, n_classes).
        layout: :func:`table_layout` of the schema.
        n_classes: C.
        seed: root seed of the subsamples and mixtures.

    Returns:
        A JSON-ready dict: ``columns`` (the layout plus, for continuous columns,
        ``modes_mean``, ``modes_std``, ``integral``, ``lo``, ``hi``), ``n_classes``,
        ``width``.

    Raises:
        ValueError: if ``x`` does not have the layout's width.
    """
    width = sum(c["size"] for c in layout)
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(
            f"Argument `x` must have shape (n, {width}) for this schema, got {x.shape}"
        )
    n_classes = check_int("n_classes", n_classes, 1)
    ss = np.random.SeedSequence([seed, 7])
    cols = []
    for col, child in zip(layout, ss.spawn(len(layout)), strict=True):
        c = dict(col)
        if c["kind"] == "continuous":
            v = x[:, c["start"]].astype(np.float64)
            sub_ss, bgm_ss = child.spawn(2)
            bgm_seed = int(bgm_ss.generate_state(1)[0] >> 1)
            c |= _fit_column(v, np.random.default_rng(sub_ss), bgm_seed)
            raw = v * c["std"] + c["mean"]
            # float32 z-scores carry ~1e-7 relative error: a loose integer test
            gap = np.abs(raw - np.round(raw))
            c["integral"] = bool(np.all(gap <= 1e-3 + 1e-6 * np.abs(raw)))
            c["lo"], c["hi"] = float(v.min()), float(v.max())
        else:  # per-label category counts: the sampling-time conditional vector
            codes = x[:, c["start"] : c["start"] + c["size"]].argmax(axis=1)
            c["label_counts"] = [
                np.bincount(codes[y == label], minlength=c["size"]).tolist()
                for label in range(n_classes)
            ]
        cols.append(c)
    return {"columns": cols, "n_classes": n_classes, "width": width}


def model_spans(tf: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Spans (activation, start, size) of the model space: per column, then the label.

    Continuous: ("tanh", α) then ("softmax", modes); categorical ("softmax", size);
    the label ("softmax", C) last.
    """
    spans, at = [], 0
    for c in tf["columns"]:
        if c["kind"] == "continuous":
            k = len(c["modes_mean"])
            spans += [("tanh", at, 1), ("softmax", at + 1, k)]
            at += 1 + k
        else:
            spans.append(("softmax", at, c["size"]))
            at += c["size"]
    spans.append(("softmax", at, tf["n_classes"]))
    return spans


def discrete_spans(tf: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(model start, cond start, size) of each discrete column: categoricals, label."""
    out, at, cond = [], 0, 0
    for c in tf["columns"]:
        if c["kind"] == "continuous":
            at += 1 + len(c["modes_mean"])
        else:
            out.append((at, cond, c["size"]))
            at += c["size"]
            cond += c["size"]
    out.append((at, cond, tf["n_classes"]))
    return out


def to_model_space(
    tf: dict[str, Any], x: NDArray[np.float32], y: NDArray[np.int64], *, seed: int
) -> NDArray[np.float32]:
    """Encoded rows and labels → CTGAN's model space (CTGAN §4.2).

    The mode k of each continuous value is drawn from its posterior
    P(k | c) ∝ w_k·N(c; η_k, σ_k) over the kept Gaussian modes (seeded); a value
    that is an atom takes the atom's mode with α = 0.

    Args:
        tf: the :func:`fit_transformer` dict.
        x: (n, width) encoded rows.
        y: (n,) labels.
        seed: seed of the mode draws.

    Returns:
        (n, model width) float32: per column [α ; one-hot mode] or the one-hot, then
        one-hot(y).
    """
    rng = np.random.default_rng(seed)
    parts = []
    for c in tf["columns"]:
        if c["kind"] == "continuous":
            v = x[:, c["start"]].astype(np.float64)[:, None]
            mu, sd = np.asarray(c["modes_mean"]), np.asarray(c["modes_std"])
            w = np.asarray(c["modes_weight"])
            point = sd == 0
            safe = np.where(point, 1.0, sd)
            logp = np.log(w) - 0.5 * ((v - mu) / safe) ** 2 - np.log(safe)
            logp[:, point] = -np.inf  # atoms take only their own value
            hit = (v == mu) & point  # a value that is an atom
            logp[hit.any(axis=1)] = np.where(hit, 0.0, -np.inf)[hit.any(axis=1)]
            p = np.exp(logp - logp.max(axis=1, keepdims=True))
            cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
            u = rng.random((len(v), 1))
            k = np.minimum((cdf < u).sum(axis=1), len(mu) - 1)
            alpha = (v[:, 0] - mu[k]) / (4 * safe[k])
            alpha = np.clip(np.where(point[k], 0.0, alpha), -ALPHA_CLIP, ALPHA_CLIP)
            parts += [alpha[:, None], np.eye(len(mu))[k]]
        else:
            parts.append(x[:, c["start"] : c["start"] + c["size"]])
    parts.append(np.eye(tf["n_classes"])[y])
    return np.concatenate(parts, axis=1).astype(np.float32)


def from_model_space(tf: dict[str, Any], m: torch.Tensor) -> torch.Tensor:
    """Model space → encoded table rows (z-scored continuous, hard one-hot categorical).

    c = η_k + 4σ_k·α with k the arg-max mode (c = η_k for a point-mass mode,
    σ_k < 0.002); integral columns rounded in the raw space; every continuous value
    clipped to the observed range; categoricals the one-hot of their arg-max. The
    label span is dropped.

    Args:
        tf: the :func:`fit_transformer` dict.
        m: (n, model width) activated generator output (any float tensor).

    Returns:
        (n, width) tensor of ``m``'s dtype and device.
    """
    out = []
    spans = iter(model_spans(tf))
    for c in tf["columns"]:
        if c["kind"] == "continuous":
            (_, a, _), (_, s, k) = next(spans), next(spans)
            mode = m[:, s : s + k].argmax(dim=1)
            mu = torch.tensor(c["modes_mean"], dtype=m.dtype, device=m.device)[mode]
            sd = torch.tensor(c["modes_std"], dtype=m.dtype, device=m.device)[mode]
            # a mode at sklearn's covariance floor is a point mass (e.g. the zeros
            # of capital-gain): its samples are the mode itself
            v = mu + torch.where(sd < POINT_MODE_STD, 0.0, 4 * sd) * m[:, a]
            if c["integral"]:
                v = _integral(v, c["mean"], c["std"])
            out.append(v.clamp(c["lo"], c["hi"])[:, None])
        else:
            _, s, k = next(spans)
            idx = m[:, s : s + k].argmax(dim=1)
            out.append(torch.nn.functional.one_hot(idx, k).to(m.dtype))
    return torch.cat(out, dim=1)


def _integral(v: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Round in the raw space and re-encode exactly as the encoder does.

    In float64, then cast: the encoder writes ``float32((value − mean)/std)`` from
    a float64 quotient, so an integer drawn here has bitwise the code of the same
    integer in the real rows (a float32 round trip differs in the last bit, and a
    KS statistic then sees two atoms where there is one).

    Example:
        >>> code = _integral(torch.tensor([0.55]), 40.0, 3.0)  # 41.65 → 42
        >>> bool(code.item() == np.float32((42.0 - 40.0) / 3.0))  # the encoder's code
        True
    """
    raw = torch.round(v.double() * std + mean)
    return ((raw - mean) / std).to(v.dtype)


class CondSampler:
    """The conditional vector and training-by-sampling of CTGAN §4.3.

    Args:
        tf: the :func:`fit_transformer` dict.
        x: (n, width) encoded rows.
        y: (n,) labels.
    """

    def __init__(
        self, tf: dict[str, Any], x: NDArray[np.float32], y: NDArray[np.int64]
    ) -> None:
        cats = [
            x[:, c["start"] : c["start"] + c["size"]].argmax(axis=1)
            for c in tf["columns"]
            if c["kind"] == "categorical"
        ]
        cats.append(y)
        self._labels = np.asarray(y, np.int64)
        sizes = [s for _, _, s in discrete_spans(tf)]
        self.cond_dim = int(sum(sizes))
        self.n_discrete = len(sizes)
        self.cond_start = np.cumsum([0, *sizes[:-1]])
        counts = np.zeros((len(sizes), max(sizes)))
        self._offset = np.zeros((len(sizes), max(sizes)), np.int64)
        order, at = [], 0
        for j, (codes, size) in enumerate(zip(cats, sizes, strict=True)):
            counts[j, :size] = np.bincount(codes, minlength=size)
            for k in range(size):
                self._offset[j, k] = at
                rows = np.flatnonzero(codes == k)
                order.append(rows)
                at += rows.size
        self._rows = np.concatenate(order)
        self._counts = counts.astype(np.int64)
        self._sizes = np.asarray(sizes, np.int64)
        logf = np.log1p(counts)
        self._probs = logf / logf.sum(axis=1, keepdims=True)

    def sample_cond(
        self, n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray, NDArray]:
        """Draw n conditional vectors: column uniform, category ∝ log(1 + count).

        Returns:
            (cond (n, cond_dim), mask (n, n_discrete), column j (n,), category k (n,)).
        """
        j = rng.integers(0, self.n_discrete, n)
        u = rng.random(n)
        k = (np.cumsum(self._probs[j], axis=1) < u[:, None]).sum(axis=1)
        k = np.minimum(k, self._sizes[j] - 1)  # float rounding of the last cumsum
        cond = np.zeros((n, self.cond_dim), np.float32)
        cond[np.arange(n), self.cond_start[j] + k] = 1.0
        mask = np.zeros((n, self.n_discrete), np.float32)
        mask[np.arange(n), j] = 1.0
        return cond, mask, j, k

    def sample_rows(
        self, j: NDArray, k: NDArray, rng: np.random.Generator
    ) -> NDArray[np.int64]:
        """One uniformly drawn real row with category k of column j, per pair."""
        count = self._counts[j, k]
        pick = np.floor(rng.random(len(j)) * count).astype(np.int64)
        return self._rows[self._offset[j, k] + pick]

    def sample_batch(
        self, n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
        """Draw n conditional vectors that carry the label (docs/cgm.md §3.5).

        A discrete *feature* column j uniformly (the label column when there is
        none), its category k ∝ log(1 + count), a real row r with that category;
        then the label y_r is set in the conditional vector too, and both spans are
        marked in the mask.

        Returns:
            (cond (n, cond_dim), mask (n, n_discrete), rows r (n,)).
        """
        n_feat = self.n_discrete - 1
        j = rng.integers(0, n_feat, n) if n_feat else np.full(n, n_feat)
        u = rng.random(n)
        k = (np.cumsum(self._probs[j], axis=1) < u[:, None]).sum(axis=1)
        k = np.minimum(k, self._sizes[j] - 1)  # float rounding of the last cumsum
        rows = self.sample_rows(j, k, rng)
        cond = np.zeros((n, self.cond_dim), np.float32)
        mask = np.zeros((n, self.n_discrete), np.float32)
        cond[np.arange(n), self.cond_start[j] + k] = 1.0
        cond[np.arange(n), self.cond_start[-1] + self._labels[rows]] = 1.0
        mask[np.arange(n), j] = 1.0
        mask[:, -1] = 1.0
        return cond, mask, rows


class _BatchStream(Dataset):
    """``steps_per_epoch`` CTGAN batches per epoch, drawn in index order.

    Item i draws the next batch from the data module's generator (the DataLoader
    asks for 0, 1, 2, … in order: no shuffling, no workers).
    """

    def __init__(self, dm: CTGANDataModule) -> None:
        self.dm = dm

    def __len__(self) -> int:
        return self.dm.steps_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        dm = self.dm
        cond, mask, rows = dm.sampler.sample_batch(dm.batch_size, dm.rng)
        # real packs are not aligned with fake packs (CTGAN's permutation)
        perm = dm.rng.permutation(dm.batch_size)
        return (
            torch.from_numpy(dm.model_x[rows[perm]]),
            torch.from_numpy(cond[perm]),
            torch.from_numpy(cond),
            torch.from_numpy(mask),
        )


class CTGANDataModule(pl.LightningDataModule):
    """Serve CTGAN batches (real rows, their cond, the fake cond, its mask).

    One numpy generator seeded with ``seed`` draws every conditional vector and real
    row in order, so a run is reproducible from ``seed``.

    Args:
        model_x: (n, model width) rows in the model space.
        sampler: the :class:`CondSampler` of the same rows.
        batch_size: rows per batch (≤ n).
        seed: seed of the sampling generator.
    """

    def __init__(
        self,
        model_x: NDArray[np.float32],
        sampler: CondSampler,
        *,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.model_x = model_x
        self.sampler = sampler
        self.batch_size = batch_size
        self.steps_per_epoch = max(1, model_x.shape[0] // batch_size)
        self.rng = np.random.default_rng(seed)

    def train_dataloader(self) -> DataLoader:
        """Whole batches from :class:`_BatchStream` (``batch_size=None``)."""
        return DataLoader(_BatchStream(self), batch_size=None, num_workers=0)
