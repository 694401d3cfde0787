"""The run-folder layout (docs/interface.md §5): one function per file."""

from __future__ import annotations

from pathlib import Path


def stage_dir(run: Path, stage: str) -> Path:
    """``DIR/<stage>/``."""
    return Path(run) / stage


def manifest(run: Path, stage: str) -> Path:
    """``DIR/<stage>/manifest.json``."""
    return stage_dir(run, stage) / "manifest.json"


def pool_party(run: Path, party_id: int) -> Path:
    """``DIR/pool/party_<i>.h5``: party i's own real data."""
    return stage_dir(run, "pool") / f"party_{party_id}.h5"


def stale_pool_parties(run: Path, n_parties: int) -> list[Path]:
    """``DIR/pool/party_<k>.h5`` for k ≥ n_parties: left by an earlier, larger pool."""
    stale = []
    for f in sorted(stage_dir(run, "pool").glob("party_*.h5")):
        k = f.name.removeprefix("party_").removesuffix(".h5")
        if k.isdigit() and int(k) >= n_parties and f == pool_party(run, int(k)):
            stale.append(f)
    return stale


def pool_test(run: Path) -> Path:
    """``DIR/pool/test.h5``: the held-out test set."""
    return stage_dir(run, "pool") / "test.h5"


def candidates(run: Path) -> Path:
    """``DIR/gan/candidates.h5``."""
    return stage_dir(run, "gan") / "candidates.h5"


def generator_ckpt(run: Path) -> Path:
    """``DIR/gan/generator.ckpt``."""
    return stage_dir(run, "gan") / "generator.ckpt"


def gan_samples_png(run: Path) -> Path:
    """``DIR/gan/samples.png``."""
    return stage_dir(run, "gan") / "samples.png"


def gan_quality(run: Path) -> Path:
    """``DIR/gan/quality.json``."""
    return stage_dir(run, "gan") / "quality.json"


def features(run: Path) -> Path:
    """``DIR/value/features.h5``."""
    return stage_dir(run, "value") / "features.h5"


def kernel_sums(run: Path) -> Path:
    """``DIR/value/kernel_sums.h5``: K̄ and the candidates' rows of R (§7.2)."""
    return stage_dir(run, "value") / "kernel_sums.h5"


def autoencoder_ckpt(run: Path) -> Path:
    """``DIR/value/autoencoder.ckpt``."""
    return stage_dir(run, "value") / "autoencoder.ckpt"


def values(run: Path) -> Path:
    """``DIR/value/values.json``."""
    return stage_dir(run, "value") / "values.json"


def rewards(run: Path) -> Path:
    """``DIR/reward/rewards.json``."""
    return stage_dir(run, "reward") / "rewards.json"


def reward_file(run: Path, party_id: int) -> Path:
    """``DIR/sample/party_<i>.h5``: THE reward file of party i."""
    return stage_dir(run, "sample") / f"party_{party_id}.h5"


def evaluate_file(run: Path, name: str) -> Path:
    """``DIR/evaluate/<name>`` (report.json, report.md, *.png)."""
    return stage_dir(run, "evaluate") / name


def fl_file(run: Path, name: str) -> Path:
    """``DIR/fl/<name>`` (rounds.csv, summary.json, *.png)."""
    return stage_dir(run, "fl") / name


def stage_file(run: Path, stage: str, name: str) -> Path:
    """``DIR/<stage>/<name>`` for stages with free-form outputs (nash, contract)."""
    return stage_dir(run, stage) / name


def relative(run: Path, path: Path) -> str:
    """``path`` relative to the run folder (absolute if outside it), with ``/``."""
    full = Path(path).resolve()
    try:
        return full.relative_to(Path(run).resolve()).as_posix()
    except ValueError:
        return full.as_posix()
