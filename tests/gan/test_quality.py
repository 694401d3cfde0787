from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.linalg
import torch

from gan.quality import fid_kid, image_mosaic, principal_axes_2d, sample_grid_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _feature_fn(t: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear 'penultimate layer': flatten, then (x, x²)."""
    flat = t.flatten(1)
    return torch.cat([flat, flat**2], dim=1)


def _naive_fid(fr: np.ndarray, ff: np.ndarray) -> float:
    mu_r, mu_f = fr.mean(0), ff.mean(0)
    cr, cf = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    covmean = scipy.linalg.sqrtm(cr @ cf).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cr + cf - 2 * covmean))


def _naive_kid(fr: np.ndarray, ff: np.ndarray) -> float:
    """torchmetrics' estimator on the full sets: cubic kernel, γ = 1/d, c = 1."""
    m, d = fr.shape
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(fr, fr), k(ff, ff), k(fr, ff)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / m**2)


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 3)).astype(np.float32)
    same = rng.normal(size=(300, 3)).astype(np.float32)
    return real, same


# ----------------------------------------------------------------- known answers
def test_fid_of_identical_sets_is_zero(sets):
    real, _ = sets
    out = fid_kid(real, real, _feature_fn, seed=0)
    # float32 result of a float64 eigen-decomposition: |FID| ~ 1e-6 at most
    assert abs(out["fid"]) < 1e-4


def test_fid_and_kid_match_naive_formulas(sets):
    # Prepare
    real, same = sets
    shifted = same + 0.5
    fr = _feature_fn(torch.from_numpy(real)).double().numpy()
    ff = _feature_fn(torch.from_numpy(shifted)).double().numpy()

    # Execute: subset_size = n -> every subset is the full set, KID is deterministic
    out = fid_kid(real, shifted, _feature_fn, seed=0, subset_size=300, n_subsets=3)

    # Assert: float32 features and float32 output -> rel 1e-4
    assert out["fid"] == pytest.approx(_naive_fid(fr, ff), rel=1e-4)
    assert out["kid_mean"] == pytest.approx(_naive_kid(fr, ff), rel=1e-4)
    assert out["kid_std"] == pytest.approx(0.0, abs=1e-4 * abs(out["kid_mean"]))


def test_metrics_grow_with_shift(sets):
    real, same = sets
    values = [
        fid_kid(real, same + s, _feature_fn, seed=0, subset_size=100, n_subsets=20)
        for s in (0.0, 0.3, 1.0)
    ]
    fids = [v["fid"] for v in values]
    kids = [v["kid_mean"] for v in values]
    assert fids[0] < fids[1] < fids[2]
    assert kids[0] < kids[1] < kids[2]
    # Same distribution: KID is unbiased, so within a few subset s.d. of 0.
    assert abs(kids[0]) < 3 * values[0]["kid_std"]


def test_kid_subsets_seed_pair_and_global_rng_untouched(sets, seed, seed_alt):
    # Prepare
    real, same = sets
    state = torch.get_rng_state()
    kw = {"subset_size": 50, "n_subsets": 5}

    # Execute
    a = fid_kid(real, same, _feature_fn, seed=seed, **kw)
    b = fid_kid(real, same, _feature_fn, seed=seed, **kw)
    c = fid_kid(real, same, _feature_fn, seed=seed_alt, **kw)

    # Assert
    assert a == b
    assert a["kid_mean"] != c["kid_mean"]
    assert a["fid"] == c["fid"]
    assert torch.equal(state, torch.get_rng_state())


def test_features_are_batched(sets):
    real, same = sets
    a = fid_kid(real, same, _feature_fn, seed=0, batch_size=1024)
    b = fid_kid(real, same, _feature_fn, seed=0, batch_size=7)
    # Identical features row by row; the FID sums in float64 agree to float32 output
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-5)
    assert a["kid_mean"] == pytest.approx(b["kid_mean"], rel=1e-5)


# ----------------------------------------------------------------- figures
def test_image_mosaic_places_class_rows():
    # Prepare: image i is constant i/10; labels 1, 0, 1
    x = (np.arange(3, dtype=np.float32) / 10)[:, None, None, None] * np.ones(
        (3, 1, 2, 2)
    )
    y = np.array([1, 0, 1])

    # Execute
    m = image_mosaic(x, y, n_classes=2, n_per_class=2)

    # Assert: row 0 = [img 1, blank], row 1 = [img 0, img 2]; 1 px grey borders
    assert m.shape == (2 * 3 + 1, 2 * 3 + 1, 3)
    assert m[1, 1, 0] == pytest.approx(0.1)
    assert m[1, 4, 0] == 0.5
    assert m[4, 1, 0] == 0.0
    assert m[4, 4, 0] == pytest.approx(0.2)
    assert m[0, 0, 0] == 0.5


def test_principal_axes_2d_known_answer():
    # Points on the line y = x in 3-D (third axis constant): PC 1 is along (1, 1, 0)
    x = np.array([[0.0, 0.0, 5.0], [1.0, 1.0, 5.0], [2.0, 2.0, 5.0]])
    p = principal_axes_2d(x)
    np.testing.assert_allclose(
        np.abs(p[:, 0]), [np.sqrt(2), 0.0, np.sqrt(2)], atol=1e-12
    )
    np.testing.assert_allclose(p[:, 1], 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ("x", "real"),
    [
        (np.random.default_rng(0).random((40, 1, 8, 8)), None),
        (np.random.default_rng(0).random((40, 3, 4, 4)), None),
        (np.random.default_rng(0).normal(size=(40, 2)), np.zeros((5, 2))),
        (np.random.default_rng(0).normal(size=(40, 30)), np.ones((5, 30))),
    ],
)
def test_sample_grid_png_writes_a_png(x, real, tmp_path):
    # Prepare
    y = np.arange(40) % 4
    buf = io.BytesIO()
    path = tmp_path / "s.png"

    # Execute
    sample_grid_png(buf, x, y, n_classes=5, real_x=real, title="samples")
    sample_grid_png(str(path), x, y, n_classes=5, real_x=real)

    # Assert
    assert buf.getvalue().startswith(PNG_MAGIC)
    assert path.read_bytes().startswith(PNG_MAGIC)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"fake": np.zeros((1, 3), np.float32)}, "2 rows"),
        ({"fake": np.zeros((10, 4), np.float32)}, "sample shapes"),
        ({"subset_size": 11}, "subset_size"),
        ({"subset_size": 1}, "subset_size"),
        ({"n_subsets": 0}, "n_subsets"),
        ({"feature_fn": lambda t: t[:, 0]}, "feature_fn"),
    ],
)
def test_fid_kid_bad_input(kw, match):
    args = {
        "real": np.zeros((10, 3), np.float32),
        "fake": np.ones((10, 3), np.float32),
        "feature_fn": _feature_fn,
        "seed": 0,
        **kw,
    }
    with pytest.raises(ValueError, match=match):
        fid_kid(**args)


@pytest.mark.parametrize(
    ("x", "y", "kw", "match"),
    [
        (np.zeros((4, 2)), np.zeros(3, int), {}, "`y`"),
        (np.zeros((4, 2)), np.full(4, 7), {}, "`y`"),
        (np.zeros((4, 2, 2)), np.zeros(4, int), {}, "`x`"),
        (np.zeros((4, 2)), np.zeros(4, int), {"real_x": np.zeros((3, 5))}, "real_x"),
        (np.zeros((4, 2)), np.zeros(4, int), {"max_points": 0}, "max_points"),
    ],
)
def test_sample_grid_png_bad_input(x, y, kw, match):
    with pytest.raises(ValueError, match=match):
        sample_grid_png(io.BytesIO(), x, y, n_classes=3, **kw)
