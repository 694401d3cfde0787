"""The gan stage on real data, and bad input of the gan/value/reward/sample stages.

Every bad input exits 2 with one line naming the key or file, writes nothing into
the refusing stage's folder and leaves upstream results untouched (issues 3, 4, 5).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from data.h5 import read_h5, write_h5
from pipeline import paths
from pipeline.cli import main

DIGITS_TOML = """\
seed = 5
[data]
source = "digits"
n_parties = 3
split = "uniform"
[gan]
epochs = 2
n_candidates = 400
batch_size = 64
width = 16
quality_epochs = 1
"""


def _run(stage, run, config, *sets):
    args = [stage, "--run-dir", str(run), "--config", str(config), "--quiet"]
    for s in sets:
        args += ["--set", s]
    return main(args)


def _one_line_error(capsys, rc, match):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    config = root / "digits.toml"
    config.write_text(DIGITS_TOML)
    assert _run("pool", root / "run", config) == 0
    assert _run("gan", root / "run", config) == 0
    return root / "run", config


def test_gan_stage_on_digits(digits_run):
    """A real (tiny) Lightning DCGAN on `digits`: candidates, grid, quality."""
    run, _ = digits_run
    data, attrs = read_h5(paths.candidates(run), names=None)
    assert data["x"].shape == (400, 1, 8, 8)  # digits are 8×8 images
    assert data["x"].dtype == np.float32
    assert np.isfinite(data["x"]).all()
    assert set(np.unique(data["y"])) <= set(range(10))
    assert attrs["generator"] == "cdcgan"
    assert int(attrs["n_candidates"]) == 400
    assert paths.gan_samples_png(run).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    quality = json.loads(paths.gan_quality(run).read_text())
    for key in ("real_test_acc", "tstr_acc", "fid", "kid_mean", "fid_real_baseline"):
        assert np.isfinite(quality[key]), key
    m = json.loads(paths.manifest(run, "gan").read_text())
    assert m["metrics"]["tstr_acc"] == quality["tstr_acc"]
    assert m["metrics"]["train_epochs"] == 2
    ckpt = torch.load(paths.generator_ckpt(run), map_location="cpu", weights_only=False)
    assert "hyper_parameters" in ckpt


def test_gan_oracle_on_non_gmm_pool(digits_run, tmp_path, capsys):
    import shutil

    run, config = digits_run
    copy = tmp_path / "copy"
    shutil.copytree(run / "pool", copy / "pool")
    rc = _run("gan", copy, config, "gan.source=oracle")
    _one_line_error(capsys, rc, "[gan] source")
    assert not (copy / "gan").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gan_gpu_without_cuda(digits_run, tmp_path, capsys):
    import shutil

    run, config = digits_run
    copy = tmp_path / "copy"
    shutil.copytree(run / "pool", copy / "pool")
    rc = _run("gan", copy, config, "gan.accelerator=gpu")
    _one_line_error(capsys, rc, "[gan] accelerator")
    assert not (copy / "gan").exists()


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ("gan.accelerator=tpu", "[gan] accelerator"),
        ("gan.n_candidates=0", "[gan] n_candidates"),
        ("gan.n_candidates=-5", "[gan] n_candidates"),
        ("value.lengthscale=0", "[value] lengthscale"),
        ("value.lengthscale=-1.5", "[value] lengthscale"),
        ("reward.rho=1.5", "[reward] rho"),
        ("reward.rho=-0.1", "[reward] rho"),
        ("sample.inv_temp=-1", "[sample] inv_temp"),
    ],
)
def test_bad_setting_refused_before_work(digits_run, tmp_path, capsys, setting, match):
    _, config = digits_run
    stage = setting.split(".")[0]
    rc = _run(stage, tmp_path / "r", config, setting)
    _one_line_error(capsys, rc, match)
    assert not (tmp_path / "r").exists()


@pytest.fixture
def gmm_pool(tmp_path, tiny_config):
    run = tmp_path / "g"
    assert _run("pool", run, tiny_config) == 0
    return run, tiny_config


def _candidates(tmp_path, x, y=None):
    data = {"x": x} if y is None else {"x": x, "y": y}
    return write_h5(tmp_path / "cand.h5", data)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda n: np.zeros((n, 3), np.float32), "per-sample shape"),
        (lambda n: np.full((n, 2), np.nan, np.float32), "finite"),
        (lambda n: np.zeros((1, 2), np.float32), ">= 2 rows"),
        (lambda n: np.full((n, 2), 1e39), "beyond float32's range"),
        (lambda n: np.full((n, 2), 2**24 + 1, np.int64), "float32 cannot store"),
    ],
    ids=["wrong-dimension", "nan", "one-row", "beyond-float32", "int-collapses"],
)
def test_bad_candidates_file(gmm_pool, tmp_path, capsys, make, match):
    run, config = gmm_pool
    path = _candidates(tmp_path, make(50))
    rc = _run("gan", run, config, "gan.source=file", f"gan.candidates_file='{path}'")
    _one_line_error(capsys, rc, match)
    assert not (run / "gan").exists()


def test_candidates_file_labels_out_of_range(gmm_pool, tmp_path, capsys):
    run, config = gmm_pool
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    path = _candidates(tmp_path, x, np.full(50, 99, np.int64))
    rc = _run("gan", run, config, "gan.source=file", f"gan.candidates_file='{path}'")
    _one_line_error(capsys, rc, "`y`")


def test_candidates_file_uint64_labels_do_not_wrap(gmm_pool, tmp_path, capsys):
    # 2^64 - 1 as uint64 became -1 under the int64 cast and passed `y < n_classes`
    run, config = gmm_pool
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    path = _candidates(tmp_path, x, np.full(50, 2**64 - 1, np.uint64))
    rc = _run("gan", run, config, "gan.source=file", f"gan.candidates_file='{path}'")
    _one_line_error(capsys, rc, "[gan] candidates_file")
    assert not (run / "gan").exists()


def test_missing_candidates_file(gmm_pool, tmp_path, capsys):
    run, config = gmm_pool
    missing = tmp_path / "nope.h5"
    rc = _run("gan", run, config, "gan.source=file", f"gan.candidates_file='{missing}'")
    _one_line_error(capsys, rc, "nope.h5")


def test_user_candidates_file_flows_to_values(gmm_pool, tmp_path):
    """`gan.source = "file"` (unlabelled): labels are predicted, values computed."""
    run, config = gmm_pool
    rng = np.random.default_rng(1)
    x = rng.normal(scale=3.0, size=(600, 2)).astype(np.float32)
    path = _candidates(tmp_path, x)
    sets = ("gan.source=file", f"gan.candidates_file='{path}'")
    assert _run("gan", run, config, *sets) == 0
    _, attrs = read_h5(paths.candidates(run), names=None)
    assert attrs["label_source"] == "predicted"
    assert _run("value", run, config, *sets) == 0
    values = json.loads(paths.values(run).read_text())
    assert values["n_parties"] == 3
    assert np.isclose(sum(values["shapley"]), values["v_grand"], rtol=1e-9)


def test_infeasible_reward_lp_names_the_fix(gmm_pool, capsys):
    """Too few candidates: v(D_top ∪ G) < v(N), no LP solution (docs/cgm.md §6)."""
    run, config = gmm_pool
    small = ("gan.n_candidates=20",)
    assert _run("gan", run, config, *small) == 0
    assert _run("value", run, config, *small) == 0
    capsys.readouterr()  # the earlier stages' log lines are not the reward's error
    rc = _run("reward", run, config, *small)
    _one_line_error(capsys, rc, "gan.n_candidates")
    assert not paths.manifest(run, "reward").exists()
    assert not paths.rewards(run).exists()


def test_unreachable_target_is_recorded_not_a_crash(gmm_pool):
    """A fixed ρ = 1 target can exceed what one party's share of G reaches."""
    run, config = gmm_pool
    sets = ("reward.rho=1.0", "sample.inv_temp=0")
    for stage in ("gan", "value", "reward", "sample"):
        assert _run(stage, run, config, *sets) == 0, stage
    reasons = []
    for i in range(3):
        with h5py.File(paths.reward_file(run, i)) as f:
            reasons.append(str(f.attrs["stop_reason"]))
            trace = f["value_trace"][()]
            assert f.attrs["achieved_value"] == pytest.approx(trace[-1])
    assert set(reasons) <= {"target", "stall", "exhausted"}
