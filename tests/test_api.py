"""The public Python API, ``import synthreward`` (docs/api.md)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import synthreward
from data.sources import gmm_source

ROOT = Path(__file__).resolve().parents[1]


def _chain(seed: int) -> tuple[list[np.ndarray], list[dict[str, float]], tuple]:
    """pool -> value -> reward -> sample -> evaluate on a small gmm, seeded."""
    src = gmm_source(300, seed=0)
    pool = synthreward.pool_from_arrays(
        src.x, src.y, 3, split="dirichlet", dirichlet_alpha=2.0, seed=seed
    )
    parties = [x for x, _ in pool.parties]
    rng = np.random.default_rng(seed)
    means, sd = np.array(src.meta["gmm_means"]), np.sqrt(src.meta["gmm_var"])
    x_cand = means[rng.integers(0, 5, size=300)] + sd * rng.standard_normal((300, 2))
    vals = synthreward.value(parties, x_cand, lengthscale=0.05, seed=seed)
    alloc = synthreward.reward(vals, condition="individual")
    got = synthreward.sample(parties, x_cand, vals, alloc, seed=seed)
    rows = synthreward.evaluate(parties, x_cand, vals, got)
    return [r.candidate_index for r in got], rows, vals.shapley


@pytest.fixture(scope="module")
def chains() -> dict[str, tuple]:
    return {"a": _chain(0), "a_again": _chain(0), "b": _chain(1)}


def test_end_to_end_shapes(chains: dict[str, tuple]) -> None:
    # Prepare / Act: the chain of seed 0
    indices, rows, shapley = chains["a"]
    # Assert: one result per party, indices into the candidates, rewards counted
    assert len(indices) == len(rows) == len(shapley) == 3
    for idx, row in zip(indices, rows, strict=True):
        assert idx.dtype == np.int64
        assert np.unique(idx).size == idx.size  # drawn without replacement
        assert ((idx >= 0) & (idx < 300)).all()
        assert row["n_rewards"] == idx.size >= 1
        assert np.isfinite([row["mmd2_before"], row["mmd2_after"]]).all()


def test_same_seed_same_output(chains: dict[str, tuple]) -> None:
    # Act: the chain twice with seed 0
    (ia, ra, sa), (ib, rb, sb) = chains["a"], chains["a_again"]
    # Assert: identical indices and values
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib, strict=True))
    assert ra == rb
    assert sa == sb


def test_other_seed_other_output(chains: dict[str, tuple]) -> None:
    # Act: seed 0 vs seed 1
    (ia, _, sa), (ib, _, sb) = chains["a"], chains["b"]
    # Assert: another pool and other draws
    assert sa != sb
    assert any(
        x.shape != y.shape or not np.array_equal(x, y)
        for x, y in zip(ia, ib, strict=True)
    )


def test_pool_from_arrays_holds_out_a_disjoint_test_set() -> None:
    # Prepare: rows that carry their own index
    x = np.arange(60, dtype=np.float32).reshape(30, 2)
    y = np.arange(30) % 3
    # Act
    pool = synthreward.pool_from_arrays(x, y, 2, test_fraction=0.2, seed=0)
    # Assert: every row lands exactly once, in a party or in the test set
    rows = np.concatenate([px[:, 0] for px, _ in pool.parties] + [pool.test[0][:, 0]])
    assert sorted(rows.tolist()) == x[:, 0].tolist()
    assert np.bincount(pool.test[1]).tolist() == [2, 2, 2]
    assert pool.n_classes == 3


def test_reward_refuses_a_bad_rho() -> None:
    # Prepare: values of three random parties
    rng = np.random.default_rng(0)
    parties = [rng.normal(size=(10, 2)) for _ in range(3)]
    vals = synthreward.value(parties, rng.normal(size=(30, 2)), lengthscale=1.0)
    # Act / Assert
    with pytest.raises(ValueError, match="rho"):
        synthreward.reward(vals, rho="fast")
    with pytest.raises(ValueError, match="rho"):
        synthreward.reward(vals, rho=1.5)


def test_evaluate_needs_one_result_per_party() -> None:
    # Prepare
    rng = np.random.default_rng(0)
    parties = [rng.normal(size=(10, 2)) for _ in range(3)]
    cands = rng.normal(size=(30, 2))
    vals = synthreward.value(parties, cands, lengthscale=1.0)
    got = synthreward.sample(parties, cands, vals, synthreward.reward(vals), seed=0)
    # Act / Assert
    with pytest.raises(ValueError, match="samples"):
        synthreward.evaluate(parties, cands, vals, got[:2])


@pytest.mark.parametrize("name", synthreward.__all__)
def test_public_names_exist_and_are_documented(name: str) -> None:
    # Act
    obj = getattr(synthreward, name)
    doc = inspect.getdoc(obj) or ""
    # Assert: a docstring (functions: with an example), named in docs/api.md
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isfunction(obj):
        assert ">>>" in doc, f"{name}'s docstring has no example"
    assert f"`{name}" in (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = synthreward.no_such_name


def test_import_is_light() -> None:
    # Act: a fresh interpreter imports the package
    code = "import sys, synthreward; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # Assert: torch loads on first use, not on import
    assert out.stdout.strip() == "False"
