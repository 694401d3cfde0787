"""The ``evaluate`` stage: the paper's metrics, downstream training, β sweep, report.

docs/cgm.md §8. Reads every upstream file through its manifest, reads each reward file
back through ``data.torch_data.PartyDataset`` (as a user would) and writes
``evaluate/report.json``, ``report.md`` and the figures.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from pipeline import manifest, party_report, paths, report
from pipeline.config import RunConfig
from pipeline.figures.evaluate import write_figures
from pipeline.figures.privacy import write_privacy_figure
from pipeline.inputs import (
    party_seeds,
    read_pool,
    read_reward_files,
    read_reward_inputs,
    sampler_settings,
    wall_times,
)
from pipeline.party_eval import (
    party_row,
    privacy_report,
    read_guard,
    read_test_features,
)
from rewards.cgm.evaluation import Reference, alpha_correlations, beta_sweep
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
    guard, f_test = read_guard(run_dir), read_test_features(run_dir)
    keep = guard["keep"]  # the β sweep draws from the rows the guard kept (§8.5)
    t0 = manifest.begin(run_dir, "evaluate")
    rows = [
        party_row(cfg, run_dir, i, pool, up, ref, seed)
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
        (feats["candidates"][keep], up.candidates["y"][keep]), ref, values.alpha,
        up.rewards["reward_values"], pool.n_classes,
        seeds=[party_seeds(ss, n) for ss in root.spawn(len(betas))],
        excluded=up.rewards.get("excluded", []), sums=up.sums.select(keep),
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
    privacy = privacy_report(run_dir, pool, up, guard, f_test)
    report_json = paths.evaluate_file(run_dir, "report.json")
    outputs = {"report_json": manifest.write_json(report_json, body)}
    privacy_json = paths.evaluate_file(run_dir, "privacy.json")
    outputs["privacy_json"] = manifest.write_json(privacy_json, privacy)
    outputs.update(write_figures(run_dir, body, up.candidates, pool, values))
    outputs["privacy_png"] = write_privacy_figure(
        paths.evaluate_file(run_dir, "privacy.png"), privacy
    )
    times = wall_times(run_dir, ("pool", "gan", "value", "reward", "sample"))
    outputs["report_md"] = report.write_markdown(
        paths.evaluate_file(run_dir, "report.md"), body, outputs, times, privacy
    )
    for i in range(n):
        outputs[f"party_{i}_md"] = party_report.write_party_markdown(
            paths.evaluate_file(run_dir, f"party_{i}.md"), i, body, privacy,
            cfg.evaluate.reward_weight,
        )  # fmt: skip
    manifest.finish(
        run_dir, "evaluate", config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "torch": seed},
        inputs={**pool.inputs, **reward_files, **up.inputs, "guard": guard["path"]},
        outputs=outputs,
        started=t0, metrics={"correlations": corr, "sweep": sweep.get("summary")},
    )  # fmt: skip
    return outputs
