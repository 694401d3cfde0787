"""Privacy of the rewards in the pipeline: privacy.json, the guard, party reports.

docs/cgm.md §8.5. A deliberately leaking generator (`gan.source = "file"` with
candidates that include exact copies of training rows) must be flagged by the
near-copy share and the membership-inference AUC, and `sample.min_distance`
must keep every copy out of the reward files.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from data.sources import gmm_source
from pipeline.cli import main

N_COPIES = 120


def _files(root, leak: bool) -> list[str]:
    src = gmm_source(1200, seed=11)
    x, y = src.x.astype(np.float64), src.y
    parties = [
        (x[i * 150 : (i + 1) * 150], y[i * 150 : (i + 1) * 150]) for i in range(3)
    ]
    cand_x, cand_y = x[600:1200], y[600:1200]  # fresh draws of the same mixture
    if leak:  # the first N_COPIES candidates are exact copies of parties 0 and 1
        train_x = np.concatenate([parties[0][0], parties[1][0]])
        train_y = np.concatenate([parties[0][1], parties[1][1]])
        pick = np.random.default_rng(0).choice(300, N_COPIES, replace=False)
        cand_x = np.concatenate([train_x[pick], cand_x[N_COPIES:]])
        cand_y = np.concatenate([train_y[pick], cand_y[N_COPIES:]])
    arrays = {f"p{i}": p for i, p in enumerate(parties)}
    arrays["test"] = (x[450:600], y[450:600])
    arrays["cand"] = (cand_x, cand_y)
    for name, (xs, ys) in arrays.items():
        np.savez(root / f"{name}.npz", x=xs, y=ys)
    files = ",".join(f'"{root / p}.npz"' for p in ("p0", "p1", "p2"))
    return [
        "data.source=files",
        f"data.party_files=[{files}]",
        f'data.test_file="{root / "test.npz"}"',
        "gan.source=file",
        f'gan.candidates_file="{root / "cand.npz"}"',
        "gan.quality=false",
        "sample.workers=1",
        "evaluate.inv_temps=[]",
        "evaluate.epochs=1",
    ]


def _run(stages, run, sets) -> None:
    for stage in stages:
        argv = [stage, "--run-dir", str(run), "--quiet"]
        for s in sets:
            argv += ["--set", s]
        assert main(argv) == 0, stage


def _privacy(run) -> dict:
    return json.loads((run / "evaluate" / "privacy.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Clean, leaking and guarded leaking runs of the same parties."""
    out = {}
    for leak in (False, True):
        root = tmp_path_factory.mktemp("leak" if leak else "clean")
        sets = _files(root, leak)
        _run(
            ("pool", "gan", "value", "reward", "sample", "evaluate"), root / "run", sets
        )
        out["leak" if leak else "clean"] = root / "run"
        if leak:
            guarded = root / "guarded"
            shutil.copytree(root / "run", guarded)
            _run(("sample", "evaluate"), guarded, [*sets, "sample.min_distance=auto"])
            out["guarded"] = guarded
    return out


def _rewarded(run) -> np.ndarray:
    idx = []
    for i in range(3):
        with h5py.File(run / "sample" / f"party_{i}.h5", "r") as f:
            idx.append(f["candidate_index"][()])
    return np.concatenate(idx)


def test_leaking_candidates_are_flagged(runs) -> None:
    clean = _privacy(runs["clean"])["spaces"]["data"]["parties"]
    leak = _privacy(runs["leak"])["spaces"]["data"]["parties"]
    copies = np.isin(_rewarded(runs["leak"]), np.arange(N_COPIES)).sum()
    assert copies > 20  # the sampler did hand out copies
    assert max(p["near_copy_share"] for p in clean) < 0.05
    assert max(p["near_copy_share"] for p in leak) > 0.2
    # a fifth of the rows are copies: the 5th-percentile DCR is 0, the median drops
    assert max(p["dcr"]["reward_p5"] for p in leak) < 1e-9
    assert min(p["dcr"]["reward_p5"] for p in clean) > 1e-4
    assert max(p["dcr"]["ratio"] for p in leak) < min(p["dcr"]["ratio"] for p in clean)
    assert max(p["mia_auc"] for p in leak) > max(p["mia_auc"] for p in clean) + 0.05


def test_guard_removes_every_copy(runs) -> None:
    guard = json.loads((runs["guarded"] / "sample" / "guard.json").read_text())
    assert guard["min_distance"] == "auto"
    assert set(range(N_COPIES)) <= set(guard["removed_index"])
    assert not np.isin(_rewarded(runs["guarded"]), np.arange(N_COPIES)).any()
    for p in _privacy(runs["guarded"])["spaces"]["data"]["parties"]:
        assert p["near_copy_share"] == 0.0
    report = (runs["guarded"] / "evaluate" / "report.md").read_text()
    assert f"removed {guard['n_removed']} of 600 candidates" in report


def test_guard_off_by_default_keeps_every_candidate(runs) -> None:
    guard = json.loads((runs["leak"] / "sample" / "guard.json").read_text())
    assert guard["n_removed"] == 0
    assert guard["removed_index"] == []


def test_every_party_gets_a_report(runs) -> None:
    body = json.loads((runs["leak"] / "evaluate" / "report.json").read_text())
    for i, row in enumerate(body["parties"]):
        text = (runs["leak"] / "evaluate" / f"party_{i}.md").read_text()
        assert f"# Party {i}" in text
        assert f"{row['n_rewards']} synthetic rows" in text
        assert "pool/test.h5" in text
        assert ("LOWERED" in text) == (row["gain"] < 0)
        assert (row["acc_weighted"] is None) == (row["gain"] >= 0)


def test_guard_that_removes_everything_is_refused(runs, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["clean"], run)
    sets = [
        *_files(tmp_path, leak=False),
        "sample.min_distance=1000.0",
    ]
    argv = ["sample", "--run-dir", str(run), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "[sample] min_distance" in err[0]
