"""Out-of-range values are refused before any work (docs/interface.md §4.5).

Every case runs ``pipeline.cli.main`` on a copy of one finished tiny run and
checks: exit 2, exactly one stderr line naming the key or file, no traceback,
and every file of the run left byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.config_loader import Bounds, check_bounds
from pipeline.errors import UsageError
from pipeline.limits import check_gan_request, check_value_request, format_bytes
from rewards.cgm.evaluation import METRICS, sweep_summary
from tests.conftest import TINY_TOML

#: The tiny config without the quality figures (faster; nothing here reads them).
CONFIG = TINY_TOML.replace("quality_epochs = 1", "quality = false")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, run folder) of one tiny run with pool, gan and value finished."""
    folder = tmp_path_factory.mktemp("limits")
    config = folder / "tiny.toml"
    config.write_text(CONFIG)
    run_dir = folder / "run"
    for stage in ("pool", "gan", "value"):
        args = [stage, "--run-dir", str(run_dir), "--config", str(config), "--quiet"]
        assert main(args) == 0
    return config, run_dir


def _snapshot(run_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def _folder_config(tmp: Path) -> Path:
    (tmp / "folder.toml").mkdir()
    return tmp / "folder.toml"


def _latin1_config(tmp: Path) -> Path:
    path = tmp / "latin1.toml"
    path.write_bytes("# réglages\nseed = 1\n".encode("latin-1"))
    return path


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")

#: (stage, extra arguments, regex the one stderr line must match).
CASES = [
    ("gan", ["--seed", str(2**64)], r"--seed: expected an integer >= 0 and < 2\*\*63"),
    ("gan", ["--set", f"seed={2**64}"], r"\[root\] seed: .*< 2\*\*63"),
    ("sample", ["--set", f"sample.seed={2**63}"], r"\[sample\] seed: .*< 2\*\*63"),
    ("nash", ["--set", f"nash.seeds=[0, {2**63}]"], r"\[nash\] seeds: .*2\*\*63"),
    ("gan", ["--set", f"gan.epochs={2**64}"], r"\[gan\] epochs: .*64-bit"),
    (
        "gan",
        ["--set", "gan.n_candidates=1000000000000"],
        r"\[gan\] n_candidates: 1000000000000 candidates of shape \(2,\) would need "
        r"29\.1 TiB, more than this machine's .*; lower gan\.n_candidates$",
    ),
    (
        "value",
        ["--set", "value.lengthscale=1e-300"],
        r"\[value\] lengthscale: .*1/\(2ℓ²\) overflows .*got 1e-300",
    ),
    ("value", ["--set", "value.lengthscale=1e300"], r"\[value\] lengthscale: "),
    (
        "value",
        ["--set", "value.features=pca", "--set", "value.feature_dim=50"],
        r"\[value\] feature_dim: expected at most min\(rows, D\) = 2 for PCA",
    ),
    (
        "value",
        [
            "--set",
            "value.features=autoencoder",
            "--set",
            "value.feature_dim=1000000000000",
        ],
        r"\[value\] feature_dim: autoencoder features .* PiB, more than this "
        r"machine's .*; lower value\.feature_dim$",
    ),
    pytest.param(
        "value",
        ["--set", "value.device=cuda"],
        r"\[value\] device: .*CUDA is not available",
        marks=NO_CUDA,
    ),
    ("fl", ["--set", "fl.lr=inf"], r"\[fl\] lr: expected a finite number > 0"),
    ("fl", ["--set", "fl.gamma=inf"], r"\[fl\] gamma: expected a finite number"),
    ("pool", ["--set", "data.test_fraction=inf"], r"\[data\] test_fraction: "),
    ("nash", ["--set", "nash.weight_decay=inf"], r"\[nash\] weight_decay: .*finite"),
    ("nash", ["--set", "nash.lr=inf"], r"\[nash\] lr: .*finite"),
    ("contract", ["--set", "contract.k=inf"], r"\[contract\] k: .*finite"),
    ("evaluate", ["--set", "evaluate.inv_temps=[1, nan]"], r"\[evaluate\] inv_temps"),
    ("value", ["--config", _folder_config], r"--config .*folder\.toml: is a folder"),
    ("value", ["--config", _latin1_config], r"--config .*latin1\.toml: not UTF-8"),
    (
        "value",
        ["--config", "missing.toml"],
        r"--config .*missing\.toml: file not found",
    ),
]


@pytest.mark.parametrize(("stage", "extra", "match"), CASES)
def test_refused_before_any_write(
    stage, extra, match, finished, tmp_path, capsys
) -> None:
    # Prepare: a copy of the finished run; the tiny config unless --config is given
    config, source = finished
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    before = _snapshot(run_dir)
    extra = [str(a(tmp_path)) if callable(a) else a for a in extra]
    if "missing.toml" in extra:
        extra = [str(tmp_path / a) if a == "missing.toml" else a for a in extra]
    args = [stage, "--run-dir", str(run_dir), "--quiet", *extra]
    if "--config" not in extra:
        args += ["--config", str(config)]
    capsys.readouterr()
    # Act
    code = main(args)
    err = capsys.readouterr().err
    # Assert
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0].removeprefix("synthreward: error: ")
    assert line != lines[0], err
    assert re.search(match, line), line
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize(
    "override",
    [
        "sample.inv_temp=inf",
        "evaluate.inv_temps=[1, inf]",
        "fl.beta=inf",
        "data.dirichlet_alpha=inf",
        f"seed={2**63 - 1}",
        f"sample.seed={2**63 - 1}",
        "value.lengthscale=1e-19",
    ],
)
def test_inf_and_large_seeds_where_meaningful_still_load(override) -> None:
    cfg = load_config(None, [override])
    assert cfg is not None


def test_bounds_refuse_inf_unless_opted_out() -> None:
    # Act / Assert: finite is the default for floats; ints are never "finite numbers"
    assert not Bounds(gt=0).admits(math.inf)
    assert Bounds(gt=0, finite=False).admits(math.inf)
    assert Bounds(ge=1).admits(2**70)  # huge ints compare, no float overflow
    assert Bounds(ge=1).text(int) == "an integer >= 1"
    with pytest.raises(UsageError, match="finite number > 0, got inf"):
        check_bounds("data", "dirichlet_alpha", math.inf, float, Bounds(gt=0))


def test_memory_checks_name_the_key_and_figures() -> None:
    from pipeline.config import GanConfig, ValueConfig

    # Act / Assert: one GiB of memory; 1e6 candidates of 784 values need ~8.8 GiB
    with pytest.raises(UsageError, match=r"\[gan\] n_candidates: .*8\.77 GiB.* 1 GiB"):
        check_gan_request(GanConfig(n_candidates=10**6), (784,), memory=2**30)
    check_gan_request(GanConfig(n_candidates=10**4), (784,), memory=2**30)
    # a training batch larger than the pooled rows would never be drawn
    with pytest.raises(UsageError, match=r"\[gan\] batch_size: 64 is more than the 60"):
        check_gan_request(GanConfig(batch_size=64), (2,), n_rows=60)
    check_gan_request(GanConfig(batch_size=60), (2,), n_rows=60)
    check_gan_request(GanConfig(source="oracle", batch_size=64), (2,), n_rows=60)
    # a file's candidates are read as they are: n_candidates is unused
    check_gan_request(
        GanConfig(source="file", candidates_file="c.h5", n_candidates=10**12),
        (784,),
        memory=2**30,
    )
    with pytest.raises(UsageError, match=r"\[value\] features: identity features"):
        check_value_request(
            ValueConfig(features="identity", device="cpu"), 10**7, (784,), memory=2**30
        )
    assert format_bytes(1.5 * 2**40) == "1.5 TiB"


def test_sweep_summary_leaves_infinite_beta_out_of_corr_beta() -> None:
    # Prepare: β = 1, 2, 4, inf (greedy) for two parties; the greedy rows would
    # break the trend if they counted
    per_beta = [dict.fromkeys(METRICS, 0.5)] * 4
    n_rewards = [[1, 2], [3, 3], [5, 4], [0, 0]]
    mmd2 = [[0.3, 0.4], [0.2, 0.3], [0.1, 0.2], [0.9, 0.9]]
    # Act
    out = sweep_summary([1.0, 2.0, 4.0, math.inf], per_beta, n_rewards, mmd2)
    # Assert: over the finite β, n_rewards rises and MMD² falls with β
    assert out["corr_beta_n_rewards"] > 0.9
    assert out["corr_beta_mmd2"] < -0.9
    assert out["corr_alpha"]["mmd2"]["mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("betas", [[math.inf], [1.0, math.inf], [math.inf, math.inf]])
def test_sweep_summary_with_fewer_than_two_finite_beta_is_none(betas) -> None:
    per_beta = [dict.fromkeys(METRICS, 0.1)]
    out = sweep_summary(
        betas, per_beta * len(betas), [[1, 2]] * len(betas), [[0.1, 0.2]] * len(betas)
    )
    assert out["corr_beta_n_rewards"] is None
    assert out["corr_beta_mmd2"] is None


def test_sweep_summary_leaves_flat_parties_out_quietly(caplog) -> None:
    # Prepare: party 1 is excluded (0 rewards, MMD² unchanged at every β)
    per_beta = [dict.fromkeys(METRICS, 0.5)] * 3
    n_rewards = [[1, 0], [3, 0], [5, 0]]
    mmd2 = [[0.3, 0.7], [0.2, 0.7], [0.1, 0.7]]
    # Act
    with caplog.at_level(logging.INFO):
        out = sweep_summary([1.0, 2.0, 3.0], per_beta, n_rewards, mmd2)
    # Assert: the mean is party 0's correlation alone; no warning, one info per metric
    assert out["corr_beta_n_rewards"] == pytest.approx(1.0)
    assert out["corr_beta_mmd2"] == pytest.approx(-1.0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("leaves out parties [1]" in m for m in messages) == 2
