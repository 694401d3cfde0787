from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from gan.module import GANModule
from gan.sampling import (
    candidate_labels,
    class_frequencies,
    generate,
    largest_remainder_counts,
    oracle_sample,
)


def _naive_largest_remainder(weights: list[int], n: int) -> list[int]:
    """Exact rational arithmetic, one leftover unit at a time."""
    total = sum(weights)
    quota = [Fraction(w * n, total) for w in weights]
    counts = [q.numerator // q.denominator for q in quota]
    while sum(counts) < n:
        fracs = [q - c for q, c in zip(quota, counts, strict=True)]
        # Each class gets at most one extra unit: take the largest untouched fraction.
        best = max(
            (i for i in range(len(weights)) if counts[i] == int(quota[i])),
            key=lambda i: (fracs[i], -i),
        )
        counts[best] += 1
    return counts


# ----------------------------------------------------------------- known answers
@pytest.mark.parametrize(
    ("weights", "n", "expected"),
    [
        ([0.5, 0.25, 0.25], 10, [5, 3, 2]),  # 2.5 and 2.5 tie -> lower class
        ([1, 1, 1], 10, [4, 3, 3]),  # 3.33 each, one leftover
        ([1, 1, 1], 2, [1, 1, 0]),
        ([0.0, 1.0], 7, [0, 7]),
        ([0.1, 0.2, 0.7], 10, [1, 2, 7]),
        ([3, 0, 1], 5, [4, 0, 1]),  # 3.75, 0, 1.25
    ],
)
def test_largest_remainder_known_answers(weights, n, expected):
    assert largest_remainder_counts(weights, n).tolist() == expected


def test_largest_remainder_matches_exact_rational_version(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    for _ in range(500):
        c = int(rng.integers(1, 12))
        weights = rng.integers(0, 50, size=c).tolist()
        if sum(weights) == 0:
            weights[0] = 1
        n = int(rng.integers(1, 500))

        freqs = (np.array(weights) / sum(weights)).tolist()

        # Execute
        from_counts = largest_remainder_counts(weights, n).tolist()
        from_freqs = largest_remainder_counts(freqs, n).tolist()

        # Assert: float frequencies (as the stage passes them) give the exact answer
        expected = _naive_largest_remainder(weights, n)
        assert from_counts == expected
        assert from_freqs == expected


def test_candidate_labels_counts_and_seed_pair(seed, seed_alt):
    # Prepare
    freqs = [0.28, 0.39, 0.2, 0.13]

    # Execute
    a = candidate_labels(freqs, 1001, seed=seed)
    b = candidate_labels(freqs, 1001, seed=seed)
    c = candidate_labels(freqs, 1001, seed=seed_alt)

    # Assert
    assert a.dtype == np.int64
    assert np.bincount(a, minlength=4).tolist() == [280, 391, 200, 130]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(np.sort(a), np.sort(c))


def test_class_frequencies_known_answer():
    assert class_frequencies(np.array([2, 2, 0, 2]), 3) == [0.25, 0.0, 0.75]


# ----------------------------------------------------------------- oracle
def test_oracle_sample_moments(seed):
    # Prepare
    means = np.array([[0.1, 0.9], [0.5, 0.2], [0.8, 0.7]])
    var = 1 / 200
    labels = np.repeat(np.arange(3), 20_000)

    # Execute
    x = oracle_sample(means, var, labels, seed=seed)

    # Assert: 2e4 draws per class; s.e. of the mean = sqrt(0.005/2e4) = 5e-4,
    # s.e. of the variance = 0.005*sqrt(2/2e4) = 5e-5; tolerances are 5 s.e.
    assert x.dtype == np.float32
    assert x.shape == (60_000, 2)
    for c in range(3):
        xc = x[labels == c].astype(np.float64)
        np.testing.assert_allclose(xc.mean(axis=0), means[c], atol=2.5e-3)
        np.testing.assert_allclose(xc.var(axis=0), var, atol=2.5e-4)
        assert abs(np.corrcoef(xc.T)[0, 1]) < 0.04  # independent axes: s.e. 0.007


def test_oracle_sample_seed_pair(seed, seed_alt):
    labels = np.array([0, 1, 1, 0])
    a = oracle_sample([[0.0], [1.0]], 0.5, labels, seed=seed)
    b = oracle_sample([[0.0], [1.0]], 0.5, labels, seed=seed)
    c = oracle_sample([[0.0], [1.0]], 0.5, labels, seed=seed_alt)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------- generate
@pytest.fixture(scope="module")
def image_module() -> GANModule:
    return GANModule(
        kind="image",
        sample_shape=(1, 8, 8),
        n_classes=3,
        class_frequencies=[0.2, 0.3, 0.5],
        width=8,
        seed=5,
    )


def test_generate_shape_range_and_batch_invariance(image_module):
    # Prepare
    labels = candidate_labels([0.2, 0.3, 0.5], 50, seed=0)

    # Execute
    big = generate(image_module, labels, seed=1, batch_size=1024)
    small = generate(image_module, labels, seed=1, batch_size=7)

    # Assert: eval-mode BatchNorm makes rows independent; 1e-6 covers BLAS blocking
    assert big.dtype == np.float32
    assert big.shape == (50, 1, 8, 8)
    assert big.min() >= 0.0
    assert big.max() <= 1.0
    np.testing.assert_allclose(big, small, atol=1e-6)


def test_generate_seed_pair_and_mode_restored(image_module, seed, seed_alt):
    # Prepare
    labels = np.array([0, 1, 2, 2])
    image_module.train()
    state = torch.get_rng_state()

    # Execute
    a = generate(image_module, labels, seed=seed)
    b = generate(image_module, labels, seed=seed)
    c = generate(image_module, labels, seed=seed_alt)

    # Assert
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert image_module.training
    assert torch.equal(state, torch.get_rng_state())


def test_generate_matches_manual_forward(image_module):
    # Prepare: the slow obvious path, one sample at a time
    labels = np.array([2, 0, 1])
    z = torch.randn(3, 100, generator=torch.Generator().manual_seed(9))
    image_module.eval()
    with torch.no_grad():
        expected = [
            ((image_module.generator(z[i : i + 1], torch.tensor([labels[i]])) + 1) / 2)
            .clamp(0, 1)
            .numpy()
            for i in range(3)
        ]

    # Execute
    out = generate(image_module, labels, seed=9, batch_size=2)

    # Assert: float32 convolutions in different batch shapes, 1e-6 absolute
    np.testing.assert_allclose(out, np.concatenate(expected), atol=1e-6)


def test_generate_vector_module_unscales():
    # Prepare: a generator whose last layer outputs exactly 0 in model space
    module = GANModule(
        kind="vector",
        sample_shape=(2,),
        n_classes=2,
        class_frequencies=[1, 1],
        data_mean=[3.0, -1.0],
        data_std=[2.0, 0.0],
    )
    torch.nn.init.zeros_(module.generator.fc3.weight)

    # Execute
    out = generate(module, [0, 1, 1], seed=0)

    # Assert: g = 0 maps back to the mean
    np.testing.assert_array_equal(out, np.tile([3.0, -1.0], (3, 1)).astype(np.float32))


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: candidate_labels([0.5, 0.5], 0, seed=0), "`n`"),
        (lambda m: candidate_labels([0.5, 0.5], -3, seed=0), "`n`"),
        (lambda m: candidate_labels([0.5, -0.5], 4, seed=0), "weights"),
        (lambda m: candidate_labels([0.0, 0.0], 4, seed=0), "weights"),
        (lambda m: candidate_labels([np.nan, 1.0], 4, seed=0), "weights"),
        (lambda m: oracle_sample([[0.0, 0.0]], -1.0, [0], seed=0), "var"),
        (lambda m: oracle_sample([[0.0, 0.0]], 0.1, [1], seed=0), "labels"),
        (lambda m: oracle_sample([0.0, 0.0], 0.1, [0], seed=0), "means"),
        (lambda m: generate(m, [0, 3], seed=0), "labels"),
        (lambda m: generate(m, [-1], seed=0), "labels"),
        (lambda m: generate(m, [], seed=0), "labels"),
        (lambda m: generate(m, [0], seed=0, batch_size=0), "batch_size"),
        (lambda m: generate(m, [0], seed=-1), "seed"),
        (lambda m: class_frequencies([0, 5], 3), "labels"),
    ],
)
def test_bad_input(call, match, image_module):
    with pytest.raises(ValueError, match=match):
        call(image_module)
