"""``value/kernel_sums.h5``: the value stage's sums feed the sample stage (§7.2)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from data.h5 import read_h5
from pipeline import manifest, paths
from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.inputs import read_reward_inputs
from rewards.cgm.sampling import candidate_reference_sums, initial_state


@pytest.fixture(scope="module")
def rewarded_run(tmp_path_factory):
    """The tiny config run through pool, gan, value and reward."""
    from tests.conftest import TINY_TOML

    root = tmp_path_factory.mktemp("sums")
    config = root / "tiny.toml"
    config.write_text(TINY_TOML)
    for stage in ("pool", "gan", "value", "reward"):
        args = [stage, "--run-dir", str(root / "run"), "--config", str(config)]
        assert main([*args, "--quiet"]) == 0, stage
    return root / "run"


def test_stored_sums_equal_a_fresh_kernel_pass(rewarded_run):
    # Prepare
    run = rewarded_run
    up = read_reward_inputs(run)
    feats, ell = up.features, up.values.lengthscale
    n = up.values.n_parties
    # Execute: the old path's passes over the stored features (float64 kernel)
    g, ref = feats["candidates"], feats["reference"]
    t = candidate_reference_sums(g, ref, ell)
    states = [initial_state(feats[f"party_{i}"], g, ref, ell) for i in range(n)]
    # Assert: the stage's file is listed in its manifest with the lengthscale, and
    # its sums match to summation order (the centre differs by float32 rounding).
    body = manifest.read_json(paths.manifest(run, "value"))
    assert body["outputs"]["kernel_sums"]["path"] == "value/kernel_sums.h5"
    _, attrs = read_h5(paths.kernel_sums(run), names=())
    assert attrs["lengthscale"] == ell
    np.testing.assert_allclose(up.sums.t, t, rtol=1e-10)
    for got, old in zip(up.sums.states, states, strict=True):
        np.testing.assert_allclose(got.s, old.s, rtol=1e-10)
        np.testing.assert_allclose([got.A, got.B], [old.A, old.B], rtol=1e-10)


def test_changed_sums_file_refused(rewarded_run, tmp_path):
    # Prepare: a copy of the run whose kernel_sums.h5 was edited after the stage.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(rewarded_run, run)
    with h5py.File(paths.kernel_sums(run), "r+") as f:
        f["row_sums"][0, 0] += 1.0
    # Execute / Assert: the sha256 in the manifest no longer matches.
    with pytest.raises(UsageError, match="kernel_sums"):
        read_reward_inputs(run)
