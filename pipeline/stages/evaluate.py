"""The ``evaluate`` stage: the paper's metrics, downstream training, β sweep, report.

docs/cgm.md §8. Reads every upstream file through its manifest, reads each reward file
back through ``data.torch_data.PartyDataset`` (as a user would) and writes
``evaluate/report.json``, ``report.md`` and the figures.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data.h5 import read_h5
from data.torch_data import PartyDataset
from pipeline import manifest, paths, report
from pipeline.config import RunConfig
from pipeline.stages.common import (
    party_seeds,
    read_pool,
    read_reward_inputs,
    sampler_settings,
)
from rewards.cgm.evaluation import (
    Reference,
    alpha_correlations,
    distribution_metrics,
    downstream_accuracy,
    sweep_summary,
)
from rewards.cgm.sampling import candidate_reference_sums, initial_state, sample_parties
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
    e = cfg.evaluate
    pool = read_pool(run_dir)
    up = read_reward_inputs(run_dir)
    sample_body = manifest.require(run_dir, "sample")
    values, rewards, feats, cand = up.values, up.rewards, up.features, up.candidates
    n, n_classes = values.n_parties, pool.n_classes
    n_t = len(feats["reference"])
    ref = Reference(feats["reference"], values.lengthscale, values.v_reference * n_t**2)
    kw = {"chunk_size": cfg.value.chunk_size, "device": cfg.value.device}
    seed = manifest.stage_int_seed(cfg.seed, "evaluate")
    t0 = manifest.begin(run_dir, "evaluate")

    rows = []
    for i in tqdm(range(n), desc="evaluate parties", disable=not progress):
        reward_path = paths.reward_file(run_dir, i)
        x_all, y_all, src = PartyDataset(
            paths.pool_party(run_dir, i), reward_path
        ).arrays()
        rdata, rattrs = read_h5(reward_path, names=("candidate_index",))
        idx = rdata["candidate_index"]
        f_own = feats[f"party_{i}"]
        f_all = np.concatenate([f_own, feats["candidates"][idx]])
        before = distribution_metrics(
            f_own, pool.parties[i][1], ref, n_classes, n_rewards=0, **kw
        )
        after = distribution_metrics(
            f_all, y_all, ref, n_classes, n_rewards=len(idx), **kw
        )
        acc = downstream_accuracy(
            (x_all[src == 0], y_all[src == 0]),
            (x_all, y_all),
            pool.test,
            n_classes,
            kind=e.classifier,
            epochs=e.epochs,
            seed=seed,
        )
        rows.append(
            {
                "party": i,
                "alpha": values.alpha[i],
                "shapley": values.shapley[i],
                "reward_value": rewards["reward_values"][i],
                "achieved_value": rattrs["achieved_value"],
                "stop_reason": rattrs["stop_reason"],
                "n_rewards": len(idx),
                "before": before,
                "after": after,
                **acc,
            }
        )
        logger.info("party %d: %s", i, {k: rows[-1][k] for k in ("n_rewards", "gain")})
    alpha = list(values.alpha)
    corr = alpha_correlations(alpha, [r["after"] for r in rows])
    corr["acc_gain"] = pearson_or_none(alpha, [r["gain"] for r in rows])
    corr["acc_after"] = pearson_or_none(alpha, [r["acc_after"] for r in rows])
    sweep = _beta_sweep(cfg, feats, cand["y"], values, rewards, ref, pool, kw, progress)
    quality = manifest.read_json(paths.gan_quality(run_dir))
    body = {
        "parties": rows,
        "correlations": corr,
        "sweep": sweep,
        "gan_quality": quality,
        "rho": rewards["rho"],
        "v_star": rewards["v_star"],
        "lengthscale": values.lengthscale,
    }
    outputs = {
        "report_json": manifest.write_json(
            paths.evaluate_file(run_dir, "report.json"), body
        )
    }
    outputs.update(report.write_figures(run_dir, body, cand, pool, n_classes, values))
    times = {
        s: manifest.read_json(paths.manifest(run_dir, s))["wall_time_s"]
        for s in ("pool", "gan", "value", "reward", "sample")
    }
    outputs["report_md"] = report.write_markdown(
        paths.evaluate_file(run_dir, "report.md"), body, outputs, times
    )
    inputs = {
        **pool.inputs,
        **{k: run_dir / v["path"] for k, v in sample_body["outputs"].items()},
        **up.inputs,
    }
    manifest.finish(
        run_dir,
        "evaluate",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "torch": seed},
        inputs=inputs,
        outputs=outputs,
        started=t0,
        metrics={"correlations": corr, "sweep": sweep.get("summary")},
    )
    return outputs


def _beta_sweep(cfg, feats, cand_y, values, rewards, ref, pool, kw, progress) -> dict:
    """Rerun the sampler in memory for every β of ``evaluate.inv_temps``."""
    betas = list(cfg.evaluate.inv_temps)
    if not betas:
        return {}
    n = values.n_parties
    parties = [feats[f"party_{i}"] for i in range(n)]
    root = manifest.stage_seed(cfg.seed, "evaluate")
    per_beta, n_rew, mmd = [], [], []
    settings = sampler_settings(cfg, n)
    kernel = {
        "center": feats["reference"].mean(0),
        "device": settings["kernel_device"],
        "kernel_precision": settings["kernel_precision"],
        "chunk_size": settings["chunk_size"],
    }
    t = candidate_reference_sums(  # once for every β (docs/cgm.md §8.3)
        feats["candidates"], feats["reference"], values.lengthscale, **kernel
    )
    states = [
        initial_state(x, feats["candidates"], feats["reference"], values.lengthscale,
                      **kernel)
        for x in parties
    ]  # fmt: skip
    for beta, ss in zip(betas, root.spawn(len(betas)), strict=True):
        seeds = party_seeds(ss, n)
        results = sample_parties(
            parties,
            feats["candidates"],
            feats["reference"],
            values.lengthscale,
            rewards["reward_values"],
            inv_temp=beta,
            seeds=seeds,
            progress=progress,
            t=t,
            states=states,
            **settings,
        )
        rows = []
        for i, res in enumerate(results):
            idx = res.candidate_index
            f_all = np.concatenate([parties[i], feats["candidates"][idx]])
            y_all = np.concatenate([pool.parties[i][1], cand_y[idx]])
            rows.append(
                distribution_metrics(
                    f_all, y_all, ref, pool.n_classes, n_rewards=len(idx), **kw
                )
            )
        per_beta.append({"inv_temp": beta, **alpha_correlations(values.alpha, rows)})
        n_rew.append([r["n_rewards"] for r in rows])
        mmd.append([r["mmd2"] for r in rows])
        logger.info("sweep β = %g: rewards %s", beta, n_rew[-1])
    summary = sweep_summary(betas, per_beta, n_rew, mmd)
    return {"per_beta": per_beta, "n_rewards": n_rew, "mmd2": mmd, "summary": summary}
