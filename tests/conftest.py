"""Shared fixtures and markers."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    import torch

    run_slow = config.getoption("--runslow")
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="gpu: CUDA not available")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture
def seed() -> int:
    return 24


@pytest.fixture
def seed_alt() -> int:
    return 42


TINY_TOML = """\
seed = 3
[data]
source = "gmm"
gmm_size = 600
n_parties = 3
split = "dirichlet"
dirichlet_alpha = 2.0
[gan]
source = "oracle"
n_candidates = 1500
quality_epochs = 1
[value]
chunk_size = 512
[sample]
workers = 1
[evaluate]
inv_temps = [1.0, 8.0]
epochs = 1
"""


@pytest.fixture
def tiny_config(tmp_path):
    """A small, feasible end-to-end config: 3 gmm parties, oracle candidates."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture
def make_parties(seed):
    """3 parties × 32 points of the 2-D gmm source, as (x, y) pairs."""
    from data.sources import gmm_source

    src = gmm_source(96, seed=seed)
    return [(src.x[i::3], src.y[i::3]) for i in range(3)]
