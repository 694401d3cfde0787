"""The ``fl`` stage through the CLI on the tiny config (docs/cgsv.md §4, §7)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from pipeline import manifest, paths
from pipeline.cli import main
from rewards.cgsv.simulation import ROUND_COLUMNS

FAST = ["fl.rounds=2", "fl.local_epochs=1", "fl.sv_check=false"]
TIMING = ("round_time_s", "server_time_s")


def _fl(run, config, *sets, seed=None):
    argv = ["fl", "--run-dir", str(run), "--config", str(config), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return main(argv)


def _rows(run):
    with paths.fl_file(run, "rounds.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _untimed_summary(run):
    body = manifest.read_json(paths.fl_file(run, "summary.json"))
    body.pop("timing")
    for row in (body.get("sv_check") or {}).get("rows", []):
        for key in [k for k in row if k.endswith("time_s")]:
            row.pop(key)
    return body


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """A pool stage of the tiny config (3 gmm parties), shared read-only."""
    from tests.conftest import TINY_TOML

    root = tmp_path_factory.mktemp("fl")
    config = root / "tiny.toml"
    config.write_text(TINY_TOML)
    assert main(["pool", "--run-dir", str(root / "pool_run"), "--config",
                 str(config), "--quiet"]) == 0  # fmt: skip
    return root / "pool_run", config


@pytest.fixture
def run_dir(pooled, tmp_path):
    """A fresh run folder holding a copy of the pool stage."""
    src, config = pooled
    run = tmp_path / "run"
    shutil.copytree(src / "pool", run / "pool")
    return run, config


@pytest.fixture(scope="module")
def finished(pooled, tmp_path_factory):
    """One fl run with the sv_check and two β."""
    src, config = pooled
    run = tmp_path_factory.mktemp("fl_done") / "run"
    shutil.copytree(src / "pool", run / "pool")
    sets = ["fl.rounds=2", "fl.local_epochs=1", "fl.sv_trials=1", "fl.beta=[1.0, 2.0]"]
    assert _fl(run, config, *sets) == 0
    return run, config, sets


def test_outputs_manifest_and_summary(finished):
    # Prepare
    run, _, _ = finished
    # Execute
    body = manifest.read_json(paths.manifest(run, "fl"))
    summary = manifest.read_json(paths.fl_file(run, "summary.json"))
    # Assert: every file of docs/cgsv.md §7, hashed in the manifest (written last)
    names = ["rounds.csv", "summary.json", "sv_check.csv", "accuracy.png", "r_q.png",
             "fairness.png", "sv_check.png"]  # fmt: skip
    for name in names:
        assert paths.fl_file(run, name).is_file(), name
    for entry in body["outputs"].values():
        assert manifest.sha256(run / entry["path"]) == entry["sha256"]
    assert set(body["inputs"]) == {"pool_party_0", "pool_party_1", "pool_party_2",
                                   "pool_test"}  # fmt: skip
    assert {"config", "seed", "source", "split", "model", "n_params", "party_sizes",
            "aggregator", "standalone", "fedavg", "cgsv", "timing",
            "sv_check"} <= set(summary)  # fmt: skip
    assert summary["model"] == "mlp"
    # docs/cgsv.md §4, d = 2, C = 5
    assert summary["n_params"] == 65 * 5 + 64 * 2 + 4224
    assert [c["beta"] for c in summary["cgsv"]] == [1.0, 2.0]
    assert {"cgsv_round_s", "fedavg_round_s", "overhead", "server_overhead",
            "goal_met"} <= set(summary["timing"])  # fmt: skip
    assert len(summary["sv_check"]["rows"]) == 12  # N = 5..10, d = 2^10..2^15
    for c in summary["cgsv"]:
        assert c["performance"] == max(c["test_acc"])
        assert sum(c["final_r"]) == pytest.approx(1.0, abs=1e-12)
        assert max(c["final_q"]) == 1.0


def test_rounds_csv_long_format(finished):
    # Prepare
    run, _, _ = finished
    # Execute
    rows = _rows(run)
    # Assert: 2 rounds × (standalone, fedavg, 2 β) × 3 parties
    assert tuple(rows[0]) == ROUND_COLUMNS
    assert len(rows) == 2 * 4 * 3
    sa = [r for r in rows if r["method"] == "standalone"]
    assert all(r["psi"] == "" and r["beta"] == "" for r in sa)
    cg = [r for r in rows if r["method"] == "cgsv"]
    assert {r["beta"] for r in cg} == {"1.0", "2.0"}
    assert all(r["test_acc"] != "" for r in rows)


def test_seed_pair(run_dir, tmp_path):
    # Prepare
    run, config = run_dir
    again = tmp_path / "again"
    shutil.copytree(run / "pool", again / "pool")
    # Execute
    assert _fl(run, config, *FAST, seed=3) == 0
    assert _fl(again, config, *FAST, seed=3) == 0
    first, first_summary = _rows(run), _untimed_summary(run)
    assert _fl(run, config, *FAST, seed=4) == 0
    # Assert: same seed → identical rounds.csv and summary apart from the timing
    # fields (docs/cgsv.md §3.3); another seed → other results
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in first]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING}
                     for r in _rows(again)]  # fmt: skip
    assert first_summary == _untimed_summary(again)
    assert [r["test_acc"] for r in first] != [r["test_acc"] for r in _rows(run)]


def _powerlaw_sizes(m, n):
    # docs/cgsv.md §4 written out: b = linspace(F⁻¹(.01), F⁻¹(.99), N), F⁻¹(p) = p^(1/a)
    a = 1.65911332899
    b = np.linspace(0.01 ** (1 / a), 0.99 ** (1 / a), n)
    sizes = [int(np.floor(m * v / b.sum())) for v in b[:-1]]
    return [*sizes, m - sum(sizes)]


@pytest.mark.parametrize("split", ["uniform", "powerlaw", "classimbalance"])
def test_resplits_party_sizes(run_dir, split):
    # Prepare
    run, config = run_dir
    m = sum(manifest.read_json(paths.manifest(run, "pool"))["metrics"]["party_sizes"])
    # Execute
    rc = _fl(run, config, *FAST, f"fl.split={split}", "fl.n_parties=4")
    # Assert
    assert rc == 0
    sizes = manifest.read_json(paths.fl_file(run, "summary.json"))["party_sizes"]
    expected = {
        "uniform": [m // 4 + (i < m % 4) for i in range(4)],
        "powerlaw": _powerlaw_sizes(m, 4),
        "classimbalance": [m // 4] * 4,
    }[split]
    assert sizes == expected
    assert len({r["party"] for r in _rows(run)}) == 4


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        (["fl.n_parties=1"], "n_parties"),
        (["fl.beta=0"], "beta"),
        (["fl.beta=-1.0"], "beta"),
        (["fl.beta=[1.0, 0.0]"], "beta"),
        (["fl.gamma=0"], "gamma"),
        (["fl.gamma=-0.5"], "gamma"),
        (["fl.split=uniform", "fl.n_parties=1000"], "split"),
        (["fl.split=classimbalance", "fl.n_parties=1000"], "split"),
        (["fl.n_parties=5"], "n_parties"),  # split = "pool" holds 3 parties
        (["fl.model=cnn"], "model"),  # gmm rows are not 28×28 images
        (['fl.baselines=["standalone", "cffl"]'], "baselines"),
    ],
)
def test_bad_input_exits_2(run_dir, capsys, sets, match):
    # Prepare
    run, config = run_dir
    # Execute
    rc = _fl(run, config, *FAST, *sets)
    # Assert: one line naming the key, nothing written
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert match in err
    assert "Traceback" not in err
    assert not paths.stage_dir(run, "fl").exists()


def test_missing_pool_exits_2(tmp_path, capsys, tiny_config):
    # Execute
    rc = _fl(tmp_path / "empty", tiny_config, *FAST)
    # Assert
    assert rc == 2
    assert "pool" in capsys.readouterr().err


def test_changed_pool_file_exits_2(run_dir, capsys):
    # Prepare: one byte of a party file changes
    run, config = run_dir
    path = paths.pool_party(run, 1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    # Execute
    rc = _fl(run, config, *FAST)
    # Assert
    assert rc == 2
    assert "party_1.h5" in capsys.readouterr().err


def test_nash_aggregator_with_the_real_solver(run_dir):
    """`fl.aggregator = "nash"` combines the uploads by rewards.nash.bargaining.nbs."""
    run, config = run_dir
    assert _fl(run, config, *FAST, "fl.aggregator=nash") == 0
    summary = manifest.read_json(paths.fl_file(run, "summary.json"))
    assert summary["aggregator"] == "nash"
    rows = [r for r in _rows(run) if r["method"] == "cgsv"]
    assert rows
    weights = {}
    for r in rows:
        weights.setdefault(r["round"], []).append(float(r["weight"]))
    for round_weights in weights.values():
        assert sum(round_weights) == pytest.approx(1.0)
        assert min(round_weights) > 0
    # bargaining succeeded (no fallback), so the weights are the NBS ones, not cgsv's
    assert {r["nbs_failed"] for r in rows} <= {"0", "False", "false"}
    other = run.parent / "cgsv"
    shutil.copytree(run / "pool", other / "pool")
    assert _fl(other, config, *FAST) == 0
    cgsv_rows = [r for r in _rows(other) if r["method"] == "cgsv"]
    assert [r["weight"] for r in cgsv_rows] != [r["weight"] for r in rows]


def test_crash_keeps_the_streamed_rows(run_dir, monkeypatch):
    """rounds.csv is streamed: a crash in round 1 keeps round 0 in the .partial file."""
    from pipeline.stages import fl as fl_stage

    # Prepare: simulate raises while emitting round 1
    run, config = run_dir
    real = fl_stage.simulate

    def crashing(*args, on_round, **kwargs):
        def on_row(row):
            if row["round"] == 1:
                raise RuntimeError("crash in round 1")
            on_round(row)

        return real(*args, on_round=on_row, **kwargs)

    monkeypatch.setattr(fl_stage, "simulate", crashing)
    # Execute
    with pytest.raises(RuntimeError, match="crash"):
        _fl(run, config, *FAST)
    # Assert: the round-0 rows are on disk, flushed; no finished rounds.csv
    partial = paths.fl_file(run, "rounds.csv.partial")
    with partial.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["round"] for r in rows} == {"0"}
    assert len(rows) == 3 * 3  # standalone, fedavg, one β × 3 parties
    assert not paths.fl_file(run, "rounds.csv").exists()
    assert not paths.manifest(run, "fl").exists()
