"""A party with φ ≤ 0: the rule `reward.nonpositive` (docs/cgm.md §6.4)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from data.sources import gmm_source
from pipeline.cli import main


def _sets(root) -> list[str]:
    """Two gmm parties and a third of 12 rows far from everything: its φ < 0."""
    src = gmm_source(600, seed=7)
    x, y = src.x.astype(np.float64), src.y
    rng = np.random.default_rng(0)
    far = x[:12].mean(0) + 40.0 + 0.01 * rng.normal(size=(12, x.shape[1]))
    arrays = {
        "p0": (x[0:120], y[0:120]),
        "p1": (x[120:240], y[120:240]),
        "p2": (far, np.arange(12) % 2),
        "test": (x[240:300], y[240:300]),
        "cand": (x[300:600], y[300:600]),
    }
    for name, (xs, ys) in arrays.items():
        np.savez(root / f"{name}.npz", x=xs, y=ys)
    parties = ",".join(f'"{root / p}.npz"' for p in ("p0", "p1", "p2"))
    return [
        "data.source=files",
        f"data.party_files=[{parties}]",
        f'data.test_file="{root / "test.npz"}"',
        "gan.source=file",
        f'gan.candidates_file="{root / "cand.npz"}"',
        "sample.workers=1",
    ]


def _argv(stage: str, run, sets: list[str]) -> list[str]:
    argv = [stage, "--run-dir", str(run), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    return argv


@pytest.fixture(scope="module")
def valued(tmp_path_factory):
    """A finished value stage where party 2 has φ < 0, and its --set list."""
    root = tmp_path_factory.mktemp("nonpositive")
    sets = _sets(root)
    for stage in ("pool", "gan", "value"):
        assert main(_argv(stage, root / "run", sets)) == 0
    return root / "run", sets


def test_value_stage_records_negative_shapley(valued) -> None:
    run, _ = valued
    values = json.loads((run / "value" / "values.json").read_text())
    assert values["shapley"][2] < 0 < min(values["shapley"][:2])
    assert values["alpha"][2] < 0


def test_exclude_gives_no_reward_and_names_the_party(valued, tmp_path, capsys) -> None:
    # Prepare
    run = tmp_path / "run"
    shutil.copytree(valued[0], run)
    # Execute
    assert main(_argv("reward", run, valued[1])) == 0
    warned = capsys.readouterr().err
    assert main(_argv("sample", run, valued[1])) == 0
    # Assert: the warning names party 2; the LP ran on parties 0 and 1
    assert "WARNING" in warned
    assert "party 2 has Shapley value" in warned
    values = json.loads((run / "value" / "values.json").read_text())
    rewards = json.loads((run / "reward" / "rewards.json").read_text())
    assert rewards["excluded"] == [2]
    assert rewards["reward_values"][2] == pytest.approx(values["v_single"][2])
    for i in (0, 1):
        a = values["alpha"][i]
        want = a ** rewards["rho"] * rewards["v_star"]
        assert rewards["reward_values"][i] == pytest.approx(want, rel=1e-12)
    with h5py.File(run / "sample" / "party_2.h5", "r") as f:
        attrs = dict(f.attrs)
        assert f["x"].shape[0] == 0
        assert f["candidate_index"].shape == (0,)
    assert attrs["n_rewards"] == 0
    assert attrs["stop_reason"] == "excluded"
    assert attrs["reward_value"] == pytest.approx(values["v_single"][2])
    assert attrs["achieved_value"] == pytest.approx(values["v_single"][2])
    with h5py.File(run / "sample" / "party_0.h5", "r") as f:
        assert f.attrs["n_rewards"] > 0


def test_fail_keeps_exit_2_and_names_the_option(valued, tmp_path, capsys) -> None:
    # Prepare
    run = tmp_path / "run"
    shutil.copytree(valued[0], run)
    capsys.readouterr()
    # Execute
    code = main(_argv("reward", run, [*valued[1], "reward.nonpositive=fail"]))
    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert "reward.nonpositive" in err
    assert "party 2" in err
    assert not (run / "reward" / "rewards.json").exists()


def test_evaluate_and_sweep_give_an_excluded_party_nothing(valued, tmp_path) -> None:
    # Prepare: reward and sample under the default rule
    run = tmp_path / "run"
    shutil.copytree(valued[0], run)
    sets = [*valued[1], "evaluate.epochs=1", "evaluate.inv_temps=[1.0, 8.0]"]
    for stage in ("reward", "sample"):
        assert main(_argv(stage, run, sets)) == 0
    # Execute
    assert main(_argv("evaluate", run, sets)) == 0
    # Assert: party 2 gets no rows in the report nor at any β of the sweep
    report = json.loads((run / "evaluate" / "report.json").read_text())
    assert report["parties"][2]["n_rewards"] == 0
    assert report["parties"][2]["stop_reason"] == "excluded"
    assert [row[2] for row in report["sweep"]["n_rewards"]] == [0, 0]
    assert all(row[0] > 0 for row in report["sweep"]["n_rewards"])
