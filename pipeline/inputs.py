"""Readers shared by stages: upstream files via manifests (docs/interface.md §5)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data.h5 import CANDIDATES, POOL_PARTY, POOL_TEST, read_h5
from data.tables import TableSchema, schema_of
from pipeline import manifest, paths
from pipeline.config import RunConfig, resolve_threads
from pipeline.errors import UsageError
from rewards.cgm.sampling import PoolSums, pool_sums
from valuation.result import PartyValues


@dataclass(frozen=True)
class Pool:
    """The verified output of the ``pool`` stage.

    Attributes:
        parties: per party (x, y).
        test: (x, y) of the held-out test set.
        attrs: attributes of party 0's file (source, n_classes, layout, ...).
        inputs: name -> path of every file read, for the reading stage's manifest.
    """

    parties: list[tuple[NDArray[np.float32], NDArray[np.int64]]]
    test: tuple[NDArray[np.float32], NDArray[np.int64]]
    attrs: dict[str, Any]
    inputs: dict[str, Path]

    @property
    def n_classes(self) -> int:
        """Number of classes of the pool."""
        return int(self.attrs["n_classes"])

    @property
    def pooled(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """All party rows, in party order."""
        return (
            np.concatenate([x for x, _ in self.parties]),
            np.concatenate([y for _, y in self.parties]),
        )

    @property
    def schema(self) -> TableSchema | None:
        """The table schema of a table pool (``table``, ``adult``), else None.

        Decodes ``x`` rows into named columns (docs/cgm.md §2.5).
        """
        return schema_of(self.attrs)

    def json_attr(self, name: str) -> Any:
        """An attribute stored as JSON (e.g. ``gmm_means``)."""
        value = self.attrs[name]
        return json.loads(value) if isinstance(value, str) else value


def read_pool(run_dir: Path) -> Pool:
    """Verify the pool manifest and read every party file and the test set.

    Raises:
        UsageError: if the pool manifest is missing or a file changed.
    """
    body = manifest.require(run_dir, "pool")
    n_parties = len(body["metrics"]["party_sizes"])
    parties, inputs = [], {}
    attrs: dict[str, Any] = {}
    for i in range(n_parties):
        path = paths.pool_party(run_dir, i)
        data, file_attrs = read_h5(path, POOL_PARTY)
        parties.append((data["x"], data["y"]))
        inputs[f"pool_party_{i}"] = path
        attrs = attrs or file_attrs
    data, _ = read_h5(paths.pool_test(run_dir), POOL_TEST)
    inputs["pool_test"] = paths.pool_test(run_dir)
    return Pool(parties, (data["x"], data["y"]), attrs, inputs)


@dataclass(frozen=True)
class RewardInputs:
    """The verified outputs of the ``gan``, ``value`` and ``reward`` stages.

    Attributes:
        values: ``value/values.json``.
        rewards: ``reward/rewards.json``.
        features: ``party_<i>``, ``candidates`` and ``reference`` of
            ``value/features.h5``.
        candidates: ``x`` and ``y`` of ``gan/candidates.h5``.
        inputs: name -> path of those five files, for the reading stage's manifest.
        sums: t and each party's s, A, B from ``value/kernel_sums.h5``, for every
            candidate (docs/cgm.md §7.2).
    """

    values: PartyValues
    rewards: dict[str, Any]
    features: dict[str, NDArray]
    candidates: dict[str, NDArray]
    inputs: dict[str, Path]
    sums: PoolSums


def read_reward_inputs(run_dir: Path) -> RewardInputs:
    """Verify the gan, value and reward manifests and read what ``sample`` needs.

    Raises:
        UsageError: if a manifest is missing or stale, or the candidates and their
            features disagree in length.
    """
    manifest.require(run_dir, "gan", ["candidates"])
    manifest.require(run_dir, "value", ["features", "values", "kernel_sums"])
    manifest.require(run_dir, "reward", ["rewards"])
    values = PartyValues.from_dict(manifest.read_json(paths.values(run_dir)))
    rewards = manifest.read_json(paths.rewards(run_dir))
    n = values.n_parties
    names = (*(f"party_{i}" for i in range(n)), "candidates", "reference")
    feats, _ = read_h5(paths.features(run_dir), names=names)
    cand, _ = read_h5(paths.candidates(run_dir), CANDIDATES)
    if len(cand["x"]) != len(feats["candidates"]):
        raise UsageError(
            f"{paths.candidates(run_dir)}: {len(cand['x'])} candidates but "
            f"features.h5 has {len(feats['candidates'])}; rerun `synthreward value`"
        )
    inputs = {
        "candidates": paths.candidates(run_dir),
        "features": paths.features(run_dir),
        "values": paths.values(run_dir),
        "kernel_sums": paths.kernel_sums(run_dir),
        "rewards": paths.rewards(run_dir),
    }
    sums = read_pool_sums(run_dir, values, len(cand["x"]))
    return RewardInputs(values, rewards, feats, cand, inputs, sums)


def read_pool_sums(run_dir: Path, values: PartyValues, n_candidates: int) -> PoolSums:
    """t, s, A and B of the value stage's kernel pass (``value/kernel_sums.h5``, §7.2).

    Raises:
        UsageError: if the file's lengthscale or shape disagrees with
            ``values.json`` and the candidates.
    """
    path = paths.kernel_sums(run_dir)
    data, attrs = read_h5(path, names=("row_sums", "block_sums"))
    rows, n = data["row_sums"], values.n_parties
    same_shape = rows.shape == (n_candidates, n + 1)
    if attrs.get("lengthscale") != values.lengthscale or not same_shape:
        raise UsageError(
            f"{path}: lengthscale {attrs.get('lengthscale')!r} and row sums of shape "
            f"{rows.shape} do not match values.json ({values.lengthscale!r}) and "
            f"{n_candidates} candidates of {n} parties; rerun `synthreward value`"
        )
    return pool_sums(rows, data["block_sums"], values.party_sizes)


def party_seeds(root: np.random.SeedSequence, n_parties: int) -> list[int]:
    """One 63-bit int seed per party from ``root.spawn(n_parties)`` (docs/cgm.md §7.1).

    The integers fit an int64 HDF5 attribute; party i's generator is
    ``np.random.default_rng(seed_i)``.
    """
    return [int(q.generate_state(1, np.uint64)[0] >> 1) for q in root.spawn(n_parties)]


def sampler_settings(cfg: RunConfig, n_parties: int) -> dict[str, Any]:
    """Keywords of `rewards.cgm.sampling.sample_parties` (docs/cgm.md §7.2, §10).

    From ``[sample]`` and ``[value]``; shared by the sample stage and the β sweep so
    that both sample with the same kernel precision, tiling and devices.
    """
    s, v = cfg.sample, cfg.value
    # "auto": the CPU budget of ``threads`` (docs/interface.md §4.4, §7), one party each
    budget = resolve_threads(cfg.threads)
    workers = min(n_parties, budget) if s.workers == "auto" else s.workers
    return {
        "workers": workers,
        "device": s.device,
        "kernel_device": v.device,
        "kernel_precision": v.kernel_precision,
        "chunk_size": v.chunk_size,
    }


def read_reward_files(run_dir: Path) -> dict[str, Path]:
    """Verify the sample manifest; output name -> path of every reward file.

    Raises:
        UsageError: if the sample manifest is missing or a reward file changed.
    """
    body = manifest.require(run_dir, "sample")
    return {k: run_dir / v["path"] for k, v in body["outputs"].items()}


def wall_times(run_dir: Path, stages: tuple[str, ...]) -> dict[str, float]:
    """Stage -> ``wall_time_s`` of its manifest (for the report)."""
    return {
        s: manifest.read_json(paths.manifest(run_dir, s))["wall_time_s"] for s in stages
    }
