"""The ``evaluate`` stage: the paper's metrics, downstream training, β sweep, report.

docs/cgm.md §8. Reads every upstream file through its manifest, reads each reward file
back through ``data.torch_data.PartyDataset`` (as a user would) and writes
``evaluate/report.json``, ``report.md`` and the figures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data.h5 import read_h5
from data.torch_data import PartyDataset
from pipeline import manifest, paths, report
from pipeline.config import RunConfig
from pipeline.figures.evaluate import write_figures
from pipeline.inputs import (
    Pool,
    RewardInputs,
    party_seeds,
    read_pool,
    read_reward_files,
    read_reward_inputs,
    sampler_settings,
    wall_times,
)
from rewards.cgm.evaluation import (
    Reference,
    alpha_correlations,
    beta_sweep,
    distribution_metrics,
    downstream_accuracy,
)
from rewards.metrics import pearson_or_none

logger = logging.getLogger(__name__)

TABLES = ("data", "gan", "value", "reward", "sample", "evaluate")


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Evaluate the rewards and write the report.

    Args:
        cfg: the run config (reads ``[evaluate]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing or stale upstream stage.
    """
    pool = read_pool(run_dir)
    up = read_reward_inputs(run_dir)
    reward_files = read_reward_files(run_dir)
    values, feats = up.values, up.features
    n = values.n_parties
    n_t = len(feats["reference"])
    ref = Reference(feats["reference"], values.lengthscale, values.v_reference * n_t**2)
    seed = manifest.stage_int_seed(cfg.seed, "evaluate")
    t0 = manifest.begin(run_dir, "evaluate")
    rows = [
        _party_row(cfg, run_dir, i, pool, up, ref, seed)
        for i in tqdm(range(n), desc="evaluate parties", disable=not progress)
    ]
    alpha = list(values.alpha)
    corr = alpha_correlations(alpha, [r["after"] for r in rows])
    corr["acc_gain"] = pearson_or_none(alpha, [r["gain"] for r in rows])
    corr["acc_after"] = pearson_or_none(alpha, [r["acc_after"] for r in rows])
    betas = cfg.evaluate.inv_temps
    root = manifest.stage_seed(cfg.seed, "evaluate")
    sweep = beta_sweep(
        betas, [(feats[f"party_{i}"], pool.parties[i][1]) for i in range(n)],
        (feats["candidates"], up.candidates["y"]), ref, values.alpha,
        up.rewards["reward_values"], pool.n_classes,
        seeds=[party_seeds(ss, n) for ss in root.spawn(len(betas))],
        excluded=up.rewards.get("excluded", []),
        progress=progress, **sampler_settings(cfg, n),
    )  # fmt: skip
    body = {
        "parties": rows,
        "correlations": corr,
        "sweep": sweep,
        "gan_quality": manifest.read_json(paths.gan_quality(run_dir)),
        "rho": up.rewards["rho"],
        "v_star": up.rewards["v_star"],
        "lengthscale": values.lengthscale,
    }
    report_json = paths.evaluate_file(run_dir, "report.json")
    outputs = {"report_json": manifest.write_json(report_json, body)}
    outputs.update(write_figures(run_dir, body, up.candidates, pool, values))
    times = wall_times(run_dir, ("pool", "gan", "value", "reward", "sample"))
    outputs["report_md"] = report.write_markdown(
        paths.evaluate_file(run_dir, "report.md"), body, outputs, times
    )
    manifest.finish(
        run_dir, "evaluate", config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "torch": seed},
        inputs={**pool.inputs, **reward_files, **up.inputs}, outputs=outputs,
        started=t0, metrics={"correlations": corr, "sweep": sweep.get("summary")},
    )  # fmt: skip
    return outputs


def _party_row(
    cfg: RunConfig,
    run_dir: Path,
    i: int,
    pool: Pool,
    up: RewardInputs,
    ref: Reference,
    seed: int,
) -> dict[str, Any]:
    """Party i's metrics before and after its rewards and its accuracy gain."""
    e, feats, n_classes = cfg.evaluate, up.features, pool.n_classes
    kw = {"chunk_size": cfg.value.chunk_size, "device": cfg.value.device}
    reward_path = paths.reward_file(run_dir, i)
    x_all, y_all, src = PartyDataset(paths.pool_party(run_dir, i), reward_path).arrays()
    rdata, rattrs = read_h5(reward_path, names=("candidate_index",))
    idx = rdata["candidate_index"]
    f_own, y_own = feats[f"party_{i}"], pool.parties[i][1]
    f_all = np.concatenate([f_own, feats["candidates"][idx]])
    before = distribution_metrics(f_own, y_own, ref, n_classes, n_rewards=0, **kw)
    after = distribution_metrics(f_all, y_all, ref, n_classes, n_rewards=len(idx), **kw)
    acc = downstream_accuracy(
        (x_all[src == 0], y_all[src == 0]), (x_all, y_all), pool.test, n_classes,
        kind=e.classifier, epochs=e.epochs, seed=seed,
    )  # fmt: skip
    row = {
        "party": i,
        "alpha": up.values.alpha[i],
        "shapley": up.values.shapley[i],
        "reward_value": up.rewards["reward_values"][i],
        "achieved_value": rattrs["achieved_value"],
        "stop_reason": rattrs["stop_reason"],
        "n_rewards": len(idx),
        "before": before,
        "after": after,
        **acc,
    }
    logger.info("party %d: %s", i, {k: row[k] for k in ("n_rewards", "gain")})
    return row
