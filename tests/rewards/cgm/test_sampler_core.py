"""Tests for rewards/cgm/sampler_core.py: torch-free workers (docs/cgm.md §7.2)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from rewards.cgm.sampler_core import InitialState, run_parties, run_party


def test_core_imports_without_torch() -> None:
    # Execute: a fresh interpreter, as a spawned worker process starts
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import rewards.cgm.sampler_core, sys; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # Assert
    assert out.stdout.strip() == "False"


def _problem() -> tuple:
    rng = np.random.default_rng(3)
    g = rng.normal(size=(40, 2))
    t = np.abs(rng.normal(size=40)) + 5.0
    states = [
        InitialState(s=np.abs(rng.normal(size=40)), A=4.0, B=30.0, n_party=2)
        for _ in range(3)
    ]
    return g, t, states


def test_run_parties_in_process_equals_one_by_one() -> None:
    # Prepare
    g, t, states = _problem()
    targets, seeds = [0.9, 0.9, 0.9], [5, 6, 7]
    # Execute
    together = run_parties(g, t, 50, 1.0, targets, 2.0, seeds, states)
    single = [
        run_party(g, t, 50, 1.0, 0.9, 2.0, np.random.default_rng(sd), st)
        for sd, st in zip(seeds, states, strict=True)
    ]
    # Assert: the same code on the same seeds (bit-identical re-runs)
    for a, b in zip(together, single, strict=True):
        np.testing.assert_array_equal(a.candidate_index, b.candidate_index)
        np.testing.assert_array_equal(a.value_trace, b.value_trace)
        assert a.stop_reason == b.stop_reason
