"""The authors' simulated mixture (data/gmm_authors.py, docs/cgm.md §2.1)."""

import h5py
import numpy as np
import pytest

from data.gmm_authors import (
    authors_candidates,
    authors_counts,
    authors_parties,
    authors_pool,
    authors_test_set,
    authors_test_size,
)
from data.splits import proportion_matrix
from pipeline.cli import main
from valuation.lengthscale import LENGTHSCALE_STEPS, find_lengthscale

SPLITS = ["equaldisjoint", "unequal"]
# The authors' lengthscales on their own draw (their code, 100,000 candidates).
AUTHORS_ELL = {"unequal": 0.06721988677978516, "equaldisjoint": 0.2646284961700439}


def _obvious_draw(split, n_candidates):
    """The description, step by step, with the plainest code (the slow reference)."""
    rs = np.random.RandomState(2)
    means = rs.rand(5, 2)  # the same stream as uniform(0, 1, (5, 2))
    cov = np.array([[1 / 200, 0.0], [0.0, 1 / 200]])
    classes = [rs.multivariate_normal(means[j], cov, 1000) for j in range(5)]
    p = proportion_matrix(split, 5, 5)
    nxt = [0] * 5
    parties = []
    for i in range(5):
        rows, labels = [], []
        for j in range(5):
            for _ in range(int(p[i, j] * 1000)):
                rows.append(classes[j][nxt[j]])
                labels.append(j)
                nxt[j] += 1
        parties.append((np.array(rows), np.array(labels)))
    for i in range(5):
        perm = rs.permutation(len(parties[i][1]))
        parties[i] = (parties[i][0][perm], parties[i][1][perm])
    cand_x, cand_y = [], []
    for _ in range(n_candidates):
        c = rs.randint(5)
        cand_y.append(c)
        cand_x.append(rs.multivariate_normal(means[c], cov))
    return means, parties, (np.array(cand_x), np.array(cand_y))


@pytest.mark.parametrize("split", SPLITS)
def test_counts_are_int_of_p_times_1000(split):
    # Execute
    counts = authors_counts(split)
    # Assert: every class is used up exactly and each party has 1,000 rows
    assert counts.sum(axis=0).tolist() == [1000] * 5
    assert counts.sum(axis=1).tolist() == [1000] * 5
    if split == "unequal":
        assert counts[3].tolist() == [10, 200, 580, 200, 10]
    else:
        assert np.diag(counts).tolist() == [960] * 5


@pytest.mark.parametrize("split", SPLITS)
def test_draw_equals_the_step_by_step_description(split):
    # Setup
    means_ref, parties_ref, (xc_ref, yc_ref) = _obvious_draw(split, 40)
    # Execute
    means, parties = authors_parties(split)
    xc, yc = authors_candidates(split, 40)
    # Assert: the same NumPy calls on the same machine, so the same bits
    np.testing.assert_array_equal(means, means_ref)
    for (x, y), (x_ref, y_ref) in zip(parties, parties_ref, strict=True):
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(xc, xc_ref)
    np.testing.assert_array_equal(yc, yc_ref)


def test_candidates_are_a_prefix_of_a_longer_draw():
    # Execute
    x5, y5 = authors_candidates("unequal", 5)
    x20, y20 = authors_candidates("unequal", 20)
    x_eq, _ = authors_candidates("equaldisjoint", 5)
    # Assert: both splits give every party 1,000 rows, so the stream is the same
    np.testing.assert_array_equal(x5, x20[:5])
    np.testing.assert_array_equal(y5, y20[:5])
    np.testing.assert_array_equal(x5, x_eq)


def test_parties_hold_their_proportions_and_look_like_the_mixture():
    # Execute
    means, parties = authors_parties("unequal")
    # Assert
    counts = authors_counts("unequal")
    for i, (_, y) in enumerate(parties):
        assert np.bincount(y, minlength=5).tolist() == counts[i].tolist()
        assert not np.all(np.diff(y) >= 0)  # shuffled, not sorted by class
    x = np.concatenate([p[0] for p in parties])
    y = np.concatenate([p[1] for p in parties])
    for c in range(5):
        # 1,000 draws with sd 1/√200: the mean is within 4 s.e. = 0.0057
        np.testing.assert_allclose(x[y == c].mean(axis=0), means[c], atol=0.006)
    assert np.all((means >= 0) & (means < 1))


def test_test_set_size_and_independence_of_the_stream():
    # Execute
    means, _ = authors_parties("unequal")
    x0, y0 = authors_test_set(means, 0.2, seed=0)
    x1, _ = authors_test_set(means, 0.2, seed=1)
    # Assert
    assert authors_test_size(0.5) == 1000  # held out = kept
    assert np.bincount(y0).tolist() == [250] * 5  # 250 / 1,250 = 0.2
    assert not np.array_equal(x0, x1)
    with pytest.raises(ValueError, match="test_fraction"):
        authors_test_size(1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dirichlet"}, "splits"),
        ({"n_parties": 4}, "n_parties = 5"),
        ({"party_size": 800}, "party_size"),
    ],
)
def test_pool_refuses_what_the_draw_cannot_honour(kwargs, match):
    # Setup
    args = {"split": "unequal", "n_parties": 5, "party_size": "auto"} | kwargs
    # Execute / Assert
    with pytest.raises(ValueError, match=match):
        authors_pool(**args, test_fraction=0.2, seed=0)


def test_pipeline_pool_and_oracle_write_the_authors_draw(tmp_path, capsys):
    # Setup
    run = tmp_path / "run"
    sets = ["data.source=gmm", "data.gmm_draw=authors", "data.split=equaldisjoint"]
    sets += ["gan.source=oracle", "gan.n_candidates=30", "gan.quality=false"]
    argv = [a for s in sets for a in ("--set", s)]
    # Execute
    rc_pool = main(["pool", "--run-dir", str(run), "--quiet", *argv])
    rc_gan = main(["gan", "--run-dir", str(run), "--quiet", *argv])
    # Assert
    assert (rc_pool, rc_gan) == (0, 0), capsys.readouterr().err
    _, parties = authors_parties("equaldisjoint")
    for i, (x, y) in enumerate(parties):
        with h5py.File(run / "pool" / f"party_{i}.h5") as f:
            np.testing.assert_array_equal(f["x"][()], x.astype(np.float32))
            np.testing.assert_array_equal(f["y"][()], y)
            assert f.attrs["gmm_draw"] == "authors"
    xc, yc = authors_candidates("equaldisjoint", 30)
    with h5py.File(run / "gan" / "candidates.h5") as f:
        np.testing.assert_array_equal(f["x"][()], xc.astype(np.float32))
        np.testing.assert_array_equal(f["y"][()], yc)
    with h5py.File(run / "pool" / "test.h5") as f:
        assert len(f["y"]) == 1250


def test_pipeline_refuses_a_party_size_the_authors_did_not_draw(tmp_path, capsys):
    # Setup
    run = tmp_path / "run"
    sets = ["data.source=gmm", "data.gmm_draw=authors", "data.party_size=500"]
    # Execute
    rc = main(["pool", "--run-dir", str(run), *(a for s in sets for a in ("--set", s))])
    # Assert
    err = capsys.readouterr().err
    assert rc == 2
    assert "[data] gmm_draw" in err
    assert "party_size" in err
    assert not (run / "pool").exists()


def _plain_value(s, t, ell):
    """v(S) = 2·mean k(S, T) − mean k(S, S) (docs/cgm.md §5.1), directly."""

    def kmean(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * ell**2)).mean()

    return 2 * kmean(s, t) - kmean(s, s)


def test_lengthscale_rule_matches_a_plain_bisection_on_a_small_draw():
    # The fast stand-in for the slow test below: on a subsample of the authors'
    # draw, the rule equals the plain bisection of docs/cgm.md §5.3 written with
    # the direct value v(S) = S_XY − S_X in plain NumPy.
    # Setup
    _, parties = authors_parties("unequal")
    xc, _ = authors_candidates("unequal", 300)
    feats = [x[:60].astype(np.float32).astype(np.float64) for x, _ in parties]
    t = np.concatenate([*feats, xc.astype(np.float32).astype(np.float64)])
    lo, hi = 0.01, 1000.0
    for _ in range(LENGTHSCALE_STEPS):
        mid = (lo + hi) / 2
        ok = all(_plain_value(f, t, mid) >= 0 for f in feats)
        lo, hi = (lo, mid) if ok else (mid, hi)
    # Execute
    ell, bracket = find_lengthscale(feats, t[len(feats) * 60 :])
    # Assert: the two sums round differently, never enough to flip a step
    assert ell == pytest.approx(hi, rel=1e-12)
    assert bracket[0] == pytest.approx(lo, rel=1e-12)
    assert 0.01 < ell < 1.0  # 2-D data on [0, 1)²: a narrow kernel


@pytest.mark.slow
@pytest.mark.parametrize("split", SPLITS)
def test_lengthscale_equals_the_authors_on_their_draw(split):
    # Setup: the paper config's input (float32 pool files, 100,000 candidates)
    _, parties = authors_parties(split)
    xc, _ = authors_candidates(split, 100_000)
    feats = [x.astype(np.float32).astype(np.float64) for x, _ in parties]
    # Execute
    ell, _ = find_lengthscale(feats, xc.astype(np.float32).astype(np.float64))
    # Assert: a bisection grid point, so equal up to float rounding of the steps
    assert ell == pytest.approx(AUTHORS_ELL[split], rel=1e-9)
