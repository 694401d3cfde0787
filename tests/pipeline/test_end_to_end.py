"""End to end on the tiny config: files, hashes, reproducibility, resume (issue 6)."""

import json

import h5py
import numpy as np
import pytest

from data.h5 import REWARD
from data.torch_data import PartyDataset
from pipeline import manifest, paths
from pipeline.cli import PIPELINE, main

JSON_OUTPUTS = [
    "value/values.json",
    "reward/rewards.json",
    "gan/quality.json",
    "evaluate/report.json",
]


def _all(run, config, *extra):
    return main(
        ["all", "--run-dir", str(run), "--config", str(config), "--quiet", *extra]
    )


def _h5_contents(path):
    with h5py.File(path) as f:
        data = {k: f[k][()].tobytes() for k in f if isinstance(f[k], h5py.Dataset)}
        attrs = {k: str(v) for k, v in f.attrs.items()}
    return data, attrs


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from tests.conftest import TINY_TOML

    root = tmp_path_factory.mktemp("e2e")
    config = root / "tiny.toml"
    config.write_text(TINY_TOML)
    assert _all(root / "a", config) == 0
    return root / "a", config


def test_every_file_and_hash(finished_run):
    run, _ = finished_run
    for stage in PIPELINE:
        body = manifest.read_json(paths.manifest(run, stage))
        assert body["stage"] == stage
        for entry in body["outputs"].values():
            assert manifest.sha256(run / entry["path"]) == entry["sha256"]
    for name in [
        "pool/test.h5",
        "gan/candidates.h5",
        "gan/samples.png",
        "value/features.h5",
        "evaluate/report.md",
        "evaluate/reward_vs_alpha.png",
        "evaluate/value_traces.png",
        "evaluate/class_hist.png",
        *JSON_OUTPUTS,
    ]:
        assert (run / name).is_file(), name
    assert not (run / "gan" / "generator.ckpt").exists()  # the oracle trains nothing


def test_reward_file_contract_and_dataset(finished_run):
    run, _ = finished_run
    rewards = manifest.read_json(paths.rewards(run))
    for i in range(3):
        path = paths.reward_file(run, i)
        with h5py.File(path) as f:
            assert set(f) == set(REWARD.datasets)
            assert set(f.attrs) == {*REWARD.attrs, "schema_version", "created_by"}
            idx = f["candidate_index"][()]
            trace = f["value_trace"][()]
            assert f.attrs["reward_value"] == rewards["reward_values"][i]
            assert f.attrs["achieved_value"] == trace[-1]
            assert f.attrs["stop_reason"] in ("target", "stall", "exhausted")
            if f.attrs["stop_reason"] == "target":
                assert trace[-1] >= f.attrs["reward_value"]
        with h5py.File(paths.candidates(run)) as c:
            np.testing.assert_array_equal(c["x"][()][idx], h5py.File(path)["x"][()])
        ds = PartyDataset(paths.pool_party(run, i), path)
        x, _, src = ds.arrays()
        assert (src == 1).sum() == len(idx)
        assert len(ds) == len(x)
        assert ds[len(ds) - 1][2].item() == 1


def test_same_seed_same_results_and_resume_after_kill(finished_run, monkeypatch):
    run, config = finished_run
    other = run.parent / "b"
    # Kill the sample stage after its first reward file.
    import pipeline.stages.sample as sample_stage

    real = sample_stage.write_reward_file
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sample_stage, "write_reward_file", dying)
    assert _all(other, config) == 1
    assert not paths.manifest(other, "sample").exists()
    monkeypatch.setattr(sample_stage, "write_reward_file", real)
    assert _all(other, config) == 0
    for name in JSON_OUTPUTS:
        assert (run / name).read_bytes() == (other / name).read_bytes(), name
    for i in range(3):
        assert _h5_contents(paths.reward_file(run, i)) == _h5_contents(
            paths.reward_file(other, i)
        )
    assert _h5_contents(paths.features(run)) == _h5_contents(paths.features(other))


def test_other_seed_differs(finished_run):
    run, config = finished_run
    other = run.parent / "c"
    assert _all(other, config, "--seed", "4") == 0
    assert (run / "reward/rewards.json").read_bytes() != (
        other / "reward/rewards.json"
    ).read_bytes()


def test_rerun_skips_finished_stages(finished_run, caplog):
    run, config = finished_run
    before = paths.manifest(run, "sample").stat().st_mtime_ns
    assert main(["all", "--run-dir", str(run), "--config", str(config)]) == 0
    assert paths.manifest(run, "sample").stat().st_mtime_ns == before


def test_missing_upstream_exits_2(tmp_path, tiny_config, capsys):
    rc = main(
        [
            "value",
            "--run-dir",
            str(tmp_path / "x"),
            "--config",
            str(tiny_config),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "pool/manifest.json: missing" in err


def test_changed_upstream_file_exits_2(finished_run, tmp_path, capsys):
    import shutil

    run, config = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    target = paths.candidates(copy)
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF  # one byte
    target.write_bytes(bytes(raw))
    rc = main(["sample", "--run-dir", str(copy), "--config", str(config), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "candidates.h5: changed" in err
    assert "Traceback" not in err


def test_report_json_has_no_nan_or_time_fields(finished_run):
    run, _ = finished_run
    text = (run / "evaluate/report.json").read_text()
    assert "NaN" not in text
    body = json.loads(text)
    assert "wall_time_s" not in body
    assert len(body["parties"]) == 3
    assert set(body["sweep"]["summary"]["corr_alpha"]) >= {"mmd2", "n_rewards"}
