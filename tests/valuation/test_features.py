"""Tests of valuation/features.py (docs/cgm.md §4)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from valuation.autoencoder import AutoencoderMap, fit_autoencoder
from valuation.features import (
    IdentityMap,
    PcaMap,
    featurise,
    fit_feature_map,
    fit_pca,
    resolve_feature_kind,
)


@pytest.mark.parametrize(
    ("kind", "shape", "expected"),
    [
        ("auto", (2,), "identity"),
        ("auto", (30,), "pca"),
        ("auto", (1, 8, 8), "autoencoder"),
        ("identity", (1, 8, 8), "identity"),
        ("pca", (1, 8, 8), "pca"),
        ("autoencoder", (5,), "autoencoder"),
    ],
)
def test_resolve_feature_kind(kind: str, shape: tuple, expected: str) -> None:
    assert resolve_feature_kind(kind, shape) == expected


def test_identity_flattens_and_warns_above_64(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    x = np.arange(2 * 65, dtype=np.float64).reshape(2, 65)
    # Execute
    with caplog.at_level(logging.WARNING, logger="valuation.features"):
        fmap = fit_feature_map(x, "identity")
    # Assert
    assert isinstance(fmap, IdentityMap)
    assert "d = 65 > 64" in caplog.text
    z = fmap.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, x.astype(np.float32))
    img = fit_feature_map(np.ones((3, 1, 2, 2)), "identity").transform(
        np.ones((3, 1, 2, 2))
    )
    assert img.shape == (3, 4)


def test_pca_matches_sklearn_on_zscored_vectors(seed: int) -> None:
    # Prepare: columns on very different scales, so z-scoring matters.
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) * [1, 10, 100, 1, 1, 0.1]
    z = (x - x.mean(0)) / x.std(0)
    # Execute
    codes = fit_pca(x, 3).transform(x)
    # Assert: equal up to the sign of each axis; atol 1e-4 for float32 codes of O(10).
    ref = PCA(n_components=3, svd_solver="full").fit_transform(z)
    np.testing.assert_allclose(np.abs(codes), np.abs(ref), atol=1e-4)
    assert codes.shape == (200, 3)
    assert codes.dtype == np.float32


def test_pca_images_are_only_centred(seed: int) -> None:
    # Prepare
    x = np.random.default_rng(seed).random((50, 1, 4, 4))
    # Execute
    fmap = fit_pca(x, 5)
    # Assert
    np.testing.assert_array_equal(fmap.scale, np.ones(16))
    np.testing.assert_allclose(fmap.mean, x.reshape(50, -1).mean(0), rtol=1e-15)
    # orthonormal axes; atol 1e-12 for SVD rounding
    np.testing.assert_allclose(
        fmap.components @ fmap.components.T, np.eye(5), atol=1e-12
    )


def test_pca_deterministic_and_round_trips(seed: int) -> None:
    # Prepare
    x = np.random.default_rng(seed).normal(size=(40, 10))
    # Execute
    a, b = fit_pca(x, 4), fit_pca(x, 4)
    back = PcaMap.from_arrays(a.to_arrays())
    # Assert
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    np.testing.assert_array_equal(back.transform(x), a.transform(x))


def test_featurise_fits_on_parties_and_candidates(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    parties = [rng.normal(size=(10, 5)), rng.normal(size=(12, 5)) + 1]
    cands = rng.normal(size=(30, 5)) - 1
    # Execute
    fmap, zp, zc = featurise(parties, cands, "pca", feature_dim=2)
    # Assert: one map fitted on parties plus candidates; rel 1e-12 for the mean.
    np.testing.assert_allclose(
        fmap.mean, np.concatenate([*parties, cands]).mean(0), rtol=1e-12
    )
    assert [z.shape for z in zp] == [(10, 2), (12, 2)]
    assert zc.shape == (30, 2)


@pytest.mark.parametrize("shape", [(32, 1, 8, 8), (32, 6)])
def test_autoencoder_seed_pairs(seed: int, seed_alt: int, shape: tuple) -> None:
    # Prepare
    x = np.random.default_rng(seed).random(shape).astype(np.float32)
    rng_state = torch.get_rng_state()
    # Execute
    kw = {"epochs": 1, "device": "cpu", "batch_size": 8}
    a = fit_autoencoder(x, 3, seed=seed, **kw).transform(x)
    b = fit_autoencoder(x, 3, seed=seed, **kw).transform(x)
    c = fit_autoencoder(x, 3, seed=seed_alt, **kw).transform(x)
    # Assert
    assert a.shape == (32, 3)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(rng_state, torch.get_rng_state())  # global RNG untouched


def test_autoencoder_checkpoint_round_trip(seed: int, tmp_path: Path) -> None:
    # Prepare
    x = np.random.default_rng(seed).random((16, 1, 4, 4)).astype(np.float32)
    fmap = fit_feature_map(
        x, "auto", feature_dim=2, ae_epochs=1, seed=seed, device="cpu"
    )
    path = str(tmp_path / "autoencoder.ckpt")
    # Execute
    fmap.save(path)
    back = AutoencoderMap.load(path)
    # Assert: the same weights and buffers give the same codes.
    np.testing.assert_array_equal(back.transform(x), fmap.transform(x))
    with pytest.raises(RuntimeError, match="fitted"):
        back.save(path)


@pytest.mark.parametrize(
    ("fn", "args", "kwargs", "match"),
    [
        (fit_pca, (np.zeros((3, 4)), 5), {}, "`feature_dim`"),
        (fit_pca, (np.zeros((3, 4)), 0), {}, "`feature_dim`"),
        (fit_pca, (np.full((3, 4), np.nan), 1), {}, "`x_fit`"),
        (fit_pca, (np.zeros((0, 4)), 1), {}, "`x_fit`"),
        (fit_feature_map, (np.zeros((3, 4)), "umap"), {}, "`kind`"),
        (fit_feature_map, (np.zeros((3, 2, 2)), "pca"), {}, "`kind`"),
        (fit_autoencoder, (np.zeros((3, 1, 6, 6)), 2), {"device": "cpu"}, "divisible"),
        (fit_autoencoder, (np.zeros((3, 4)), 2), {"epochs": 0}, "`epochs`"),
        (featurise, ([np.zeros((2, 3))], np.zeros((2, 4))), {}, r"`party_x\[0\]`"),
        (featurise, ([], np.zeros((2, 4))), {}, "`party_x`"),
    ],
)
def test_features_bad_input(
    fn: Callable, args: tuple, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_transform_refuses_other_shapes(seed: int) -> None:
    fmap = fit_pca(np.random.default_rng(seed).normal(size=(10, 4)), 2)
    with pytest.raises(ValueError, match="`x`"):
        fmap.transform(np.zeros((2, 5)))
