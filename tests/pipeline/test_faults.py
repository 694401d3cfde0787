"""Fault injection on the run folder (issue 15; docs/interface.md §5.6).

Chain staleness, user inputs changed in place, a garbled manifest, bad run folders,
the run-folder lock, a full disk, the umask, and real SIGTERM / SIGINT sent to a
child ``python -m pipeline`` during GAN training and during sampling. Each module
fixture builds one tiny run; each case that changes it works on a copy.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline import manifest, paths
from pipeline.cli import PIPELINE, main
from tests.conftest import TINY_TOML

ROOT = Path(__file__).resolve().parents[2]

# Party, test and candidates files live inside the run folder and are named
# relative to the working folder, so a copied case has the same config and
# records its own copies of the user files.
FILES_TOML = """\
seed = 3
[data]
source = "files"
party_files = ["run/inputs/party_0.npz", "run/inputs/party_1.npz", \
"run/inputs/party_2.npz"]
test_file = "run/inputs/test.npz"
[gan]
source = "file"
candidates_file = "run/inputs/candidates.npz"
quality = false
[value]
chunk_size = 512
[sample]
workers = 1
[evaluate]
inv_temps = [1.0, 8.0]
epochs = 1
"""


def _cmd(stage, *extra, run="run"):
    return [stage, "--run-dir", str(run), "--config", "config.toml", "--quiet", *extra]


def _one_line(capsys, rc, expected_rc, *needles):
    err = capsys.readouterr().err
    assert rc == expected_rc, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _temp_files(run):
    return [p for p in Path(run).rglob("*.tmp")]


@pytest.fixture(scope="module")
def files_root(tmp_path_factory):
    """A finished `all` on user party/test/candidates files (cwd-relative paths)."""
    root = tmp_path_factory.mktemp("faults")
    inputs = root / "run" / "inputs"
    inputs.mkdir(parents=True)
    # user files: the parties, test set and oracle candidates of the tiny gmm config
    src = root / "src"
    (root / "tiny.toml").write_text(TINY_TOML)
    for stage in ("pool", "gan"):
        assert (
            main([stage, "--run-dir", str(src), "--config", str(root / "tiny.toml")])
            == 0
        )
    names = {f"party_{i}": paths.pool_party(src, i) for i in range(3)}
    names |= {"test": paths.pool_test(src), "candidates": paths.candidates(src)}
    for name, h5 in names.items():
        with h5py.File(h5) as f:
            np.savez(inputs / f"{name}.npz", x=f["x"][()], y=f["y"][()])
    shutil.rmtree(src)
    (root / "config.toml").write_text(FILES_TOML)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert main(_cmd("all")) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def case(files_root, tmp_path, monkeypatch):
    """A private copy of the finished run; the working folder is its root."""
    copy = tmp_path / "case"
    shutil.copytree(files_root, copy)
    monkeypatch.chdir(copy)
    return copy / "run"


def _created(run):
    return {s: paths.manifest(run, s).read_bytes() for s in PIPELINE}


# ---- root cause 1: chain staleness ---------------------------------------------


def test_gan_rerun_with_other_seed_makes_sample_and_evaluate_refuse(case, capsys):
    # Execute: the gan stage alone with another seed, then its downstream
    assert main(_cmd("gan", "--seed", "1")) == 0
    capsys.readouterr()
    rc = main(_cmd("sample"))
    # Assert: value read the old gan manifest: refused, naming value to rerun
    _one_line(capsys, rc, 2, "value/manifest.json: stale", "synthreward value")
    rc = main(_cmd("evaluate"))
    _one_line(capsys, rc, 2, "stale", "synthreward value")


def test_reward_rerun_with_new_setting_makes_evaluate_refuse(case, capsys):
    assert main(_cmd("reward", "--set", "reward.rho=0.0")) == 0
    capsys.readouterr()
    rc = main(_cmd("evaluate"))
    _one_line(capsys, rc, 2, "sample/manifest.json: stale", "synthreward sample")


def test_every_manifest_records_its_upstream_manifests(files_root):
    run = files_root / "run"
    for stage in PIPELINE:
        body = manifest.read_json(paths.manifest(run, stage))
        for up, digest in body["upstream"].items():
            assert manifest.sha256(paths.manifest(run, up)) == digest
    assert manifest.read_json(paths.manifest(run, "pool"))["upstream"] == {}
    assert set(manifest.read_json(paths.manifest(run, "sample"))["upstream"]) == {
        "gan",
        "value",
        "reward",
    }


@pytest.mark.parametrize(
    ("name", "first"), [("party_1.npz", "pool"), ("candidates.npz", "gan")]
)
def test_user_file_changed_in_place_then_all_reruns_from_its_stage(case, name, first):
    # Prepare: overwrite a user file in place (same path, new rows)
    before = _created(case)
    path = case / "inputs" / name
    with np.load(path) as z:
        x, y = z["x"].copy(), z["y"].copy()
    np.savez(path, x=x[::-1] * 0.9, y=y[::-1])
    # Execute
    assert main(_cmd("all")) == 0
    # Assert: the stage reading it and every stage after it ran again
    after = _created(case)
    start = PIPELINE.index(first)
    for stage in PIPELINE:
        changed = before[stage] != after[stage]
        assert changed == (PIPELINE.index(stage) >= start), stage


def test_all_after_a_manual_gan_rerun_reruns_downstream(case):
    assert main(_cmd("gan", "--seed", "1")) == 0
    assert main(_cmd("all")) == 0
    # the seed-3 gan reruns, and every stage after it follows
    body = manifest.read_json(paths.manifest(case, "evaluate"))
    assert body["upstream"]["gan"] == manifest.sha256(paths.manifest(case, "gan"))
    assert main(_cmd("evaluate")) == 0


# ---- root cause 6 (run folder part): garbled manifest, bad --run-dir -------------


@pytest.mark.parametrize("garble", ["truncate", "binary", "list"])
def test_garbled_manifest_is_refused_then_all_reruns_the_stage(case, capsys, garble):
    mpath = paths.manifest(case, "value")
    raw = mpath.read_bytes()
    mpath.write_bytes(
        {"truncate": raw[: len(raw) // 2], "binary": b"\xff\xfe\x00", "list": b"[]"}[
            garble
        ]
    )
    rc = main(_cmd("reward"))
    _one_line(capsys, rc, 2, "value/manifest.json", "synthreward value")
    assert main(_cmd("all")) == 0
    assert manifest.read_json(mpath)["stage"] == "value"
    assert main(_cmd("reward")) == 0


@pytest.mark.parametrize("kind", ["file", "root"])
def test_bad_run_dir_is_one_line_exit_2(tmp_path, tiny_config, capsys, kind):
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    run = {"file": target, "root": Path("/")}[kind]
    rc = main(["pool", "--run-dir", str(run), "--config", str(tiny_config)])
    _one_line(capsys, rc, 2, "--run-dir")
    assert target.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_dir_is_one_line_exit_2(tmp_path, tiny_config, capsys):
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o555)
    try:
        rc = main(["pool", "--run-dir", str(run), "--config", str(tiny_config)])
    finally:
        run.chmod(0o755)
    _one_line(capsys, rc, 2, "--run-dir")


def test_refused_first_command_leaves_no_folder(tmp_path, tiny_config, capsys):
    run = tmp_path / "new"
    rc = main(["value", "--run-dir", str(run), "--config", str(tiny_config), "--quiet"])
    _one_line(capsys, rc, 2, "pool/manifest.json: missing")
    assert not run.exists()


# ---- root cause 4: the run-folder lock ------------------------------------------

_HOLD = """\
import sys, time
from pathlib import Path
from pipeline.cli import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_command_on_a_locked_run_folder_exits_2_naming_the_pid(case, capsys):
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(case)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        before = _created(case)
        rc = main(_cmd("all", "--seed", "1"))
        _one_line(capsys, rc, 2, "in use", f"pid {child.pid}")
        assert _created(case) == before
    finally:
        child.terminate()
        child.wait(timeout=30)
    # the holder was killed (its lock file stays, unlocked): the folder is free
    assert main(_cmd("reward")) == 0
    assert not (case / ".lock").exists()


# ---- root cause 9: a full disk ----------------------------------------------------


def test_disk_full_in_a_writer_is_one_line_and_leaves_the_stage_unfinished(
    case, capsys, monkeypatch
):
    # Prepare: no reward files yet; the second rename under sample/ hits ENOSPC
    reference = {i: paths.reward_file(case, i).read_bytes() for i in range(3)}
    shutil.rmtree(paths.stage_dir(case, "sample"))
    real_replace = os.replace
    calls = {"n": 0}

    def full(src, dst):
        if Path(dst).parent.name == "sample":
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    # Execute
    rc = main(_cmd("sample"))
    # Assert: one line, and nothing in sample/ (no temp, no reward file, no manifest)
    _one_line(capsys, rc, 1, "no space left on device")
    assert calls["n"] == 2
    assert list(paths.stage_dir(case, "sample").iterdir()) == []
    assert not (case / ".lock").exists()
    # Recover: space is back; `all` reruns sample only, with the same bytes
    monkeypatch.setattr(os, "replace", real_replace)
    assert main(_cmd("all")) == 0
    for i in range(3):
        assert paths.reward_file(case, i).read_bytes() == reference[i]


# ---- root cause 10: permissions follow the umask -------------------------------


def test_outputs_respect_the_umask(case):
    old = os.umask(0o077)
    try:
        assert main(_cmd("reward", "--set", "reward.rho=0.0")) == 0
    finally:
        os.umask(old)
    for path in (paths.rewards(case), paths.manifest(case, "reward")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# ---- root cause 3: SIGTERM / SIGINT to a child process ------------------------

#: The tiny config with a GAN that trains (long enough to be interrupted).
TRAIN_TOML = TINY_TOML.replace(
    '[gan]\nsource = "oracle"\nn_candidates = 1500\nquality_epochs = 1\n',
    '[gan]\nsource = "train"\nepochs = {epochs}\nbatch_size = 32\nwidth = 16\n'
    "n_candidates = 1500\nquality = false\n",
)
if 'source = "train"' not in TRAIN_TOML:  # the tiny config's [gan] table changed
    raise RuntimeError("TRAIN_TOML: update the [gan] table it replaces in TINY_TOML")
TRAIN_EPOCHS = 2


@pytest.fixture(scope="module")
def train_root(tmp_path_factory):
    """Uninterrupted pool and gan with a (tiny) Lightning GAN: the reference.

    Two epochs give poor candidates (the reward LP would refuse them), so the
    chain after gan is exercised on `files_root` instead.
    """
    root = tmp_path_factory.mktemp("signals")
    (root / "config.toml").write_text(TRAIN_TOML.format(epochs=TRAIN_EPOCHS))
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert main(_cmd("pool")) == 0
        assert main(_cmd("gan")) == 0
    finally:
        os.chdir(cwd)
    return root


def _comparable(run, stages=PIPELINE):
    """Output contents of the stages: HDF5 arrays and attrs, JSON minus times."""
    out = {}
    for stage in stages:
        body = manifest.read_json(paths.manifest(run, stage))
        for name, entry in body["outputs"].items():
            path = run / entry["path"]
            if path.suffix == ".h5":
                with h5py.File(path) as f:
                    out[stage, name] = (
                        {k: f[k][()].tobytes() for k in f},
                        {k: str(v) for k, v in f.attrs.items() if k != "created_by"},
                    )
            elif path.suffix == ".json":
                data = json.loads(path.read_text())
                out[stage, name] = {k: v for k, v in data.items() if "time" not in k}
    return out


def _signal_child(run, stage, signum, ready, extra=(), delay=0.5):
    """Run ``python -m pipeline <stage>`` and send ``signum`` once ``ready`` is logged.

    Returns:
        (exit code, stderr text).
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "pipeline", stage, "--run-dir", str(run), *extra],
        cwd=Path.cwd(),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in child.stderr:
            lines.append(line)
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(timeout=90), "".join(lines)
        time.sleep(delay)
        assert child.poll() is None, "finished before the signal: " + "".join(lines)
        child.send_signal(signum)
        rc = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    reader.join(timeout=10)
    return rc, "".join(lines)


def _assert_stopped(run, stage, rc, err, signum):
    assert rc == 128 + signum, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"synthreward: {signal.Signals(signum).name} received"), err
    assert not paths.manifest(run, stage).exists()
    assert _temp_files(run) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_gan_training_leaves_it_unfinished_and_rerun_identical(
    train_root, tmp_path, monkeypatch, signum
):
    # Prepare: a copy of the reference with only the pool stage done
    copy = tmp_path / "case"
    (copy / "run").mkdir(parents=True)
    shutil.copy(train_root / "config.toml", copy)
    shutil.copytree(train_root / "run" / "pool", copy / "run" / "pool")
    monkeypatch.chdir(copy)
    # Execute: the signal arrives while Lightning trains (so many epochs that the
    # child cannot finish first, however idle the machine: 2 take 0.3 s there)
    extra = ("--config", "config.toml", "--set", "gan.epochs=100000")
    rc, err = _signal_child("run", "gan", signum, "training vector GAN", extra)
    # Assert: non-zero, one closing line, unfinished, no temp and no checkpoint
    _assert_stopped(copy / "run", "gan", rc, err, signum)
    assert not paths.generator_ckpt(copy / "run").exists()
    assert not (copy / "run" / ".lock").exists()
    # Recover: gan is unfinished (`all` would rerun it); rerun with the reference's
    # settings: nothing the interrupted run left changes the result
    assert not manifest.is_finished(copy / "run", "gan", {})
    assert main(_cmd("gan")) == 0
    stages = ("pool", "gan")
    assert _comparable(copy / "run", stages) == _comparable(train_root / "run", stages)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_during_sampling_with_workers_leaves_no_temp_files(
    sig, files_root, tmp_path, monkeypatch
):
    copy = tmp_path / "case"
    shutil.copytree(files_root, copy)
    monkeypatch.chdir(copy)
    run = copy / "run"
    shutil.rmtree(paths.stage_dir(run, "sample"))
    shutil.rmtree(paths.stage_dir(run, "evaluate"))
    rc, err = _signal_child(
        "run",
        "sample",
        sig,
        "worker processes",  # the pool is starting: the stage is mid-sampling
        ("--set", "sample.workers=2"),
        delay=0.0,
    )
    _assert_stopped(run, "sample", rc, err, sig)
    assert main(_cmd("all", "--set", "sample.workers=2")) == 0
    ref, got = _comparable(files_root / "run"), _comparable(run)
    for i in range(3):
        assert got["sample", f"party_{i}"] == ref["sample", f"party_{i}"]
