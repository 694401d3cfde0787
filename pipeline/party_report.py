"""The text of ``evaluate/party_<i>.md``: one party's report in plain words.

What the party contributed (α and its rank), what it was promised (its reward value
r_i against the largest) and received (how many synthetic rows of which classes,
and why that number), what the rows did to its distance to the reference and to
its downstream accuracy, and how close they lie to real records (docs/cgm.md §6–§8).
Formatting only: every number comes from report.json and privacy.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import manifest

_STOP_WORDS = {
    "target": "your data plus the reward reached your reward value r_i, so "
    "sampling stopped there",
    "stall": "no remaining candidate could raise the value further (the gains "
    "stalled) before r_i was reached",
    "exhausted": "the candidate pool ran out before r_i was reached",
    "excluded": "your Shapley value is not positive, so under `reward.nonpositive = "
    '"exclude"` you receive no synthetic rows and your reward value is the value '
    "of your own data (docs/cgm.md §6.4)",
}


def _f(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def _classes(counts: list[int]) -> str:
    shown = [f"class {c}: {n}" for c, n in enumerate(counts) if n]
    return ", ".join(shown) if shown else "none"


def write_party_markdown(
    path: Path,
    party: int,
    body: dict[str, Any],
    privacy: dict[str, Any],
    reward_weight: float,
) -> Path:
    """Write party ``party``'s report from report.json and privacy.json bodies."""
    rows = body["parties"]
    r = rows[party]
    rank = 1 + sum(1 for o in rows if o["alpha"] > r["alpha"])
    top = max(o["reward_value"] for o in rows)
    b, a = r["before"], r["after"]
    n_test = privacy["n_holdout"]
    lines = [
        f"# Party {party}: what you contributed and what you received",
        "",
        "## Your contribution",
        "",
        f"- Normalised Shapley value α = {_f(r['alpha'])} (φ = {_f(r['shapley'])}): "
        f"rank {rank} of {len(rows)} (1 = the largest contribution).",
        f"- Reward value r_i = {_f(r['reward_value'], 6)}; the largest reward value "
        f"of any party is {_f(top, 6)} (ρ = {_f(body['rho'])}). A party worth more "
        "is promised a data set of higher value (docs/cgm.md §6).",
        "",
        "## What you received",
        "",
        f"- {r['n_rewards']} synthetic rows ({_classes(r['reward_classes'])}); your "
        f"own data has {sum(r['own_classes'])} rows "
        f"({_classes(r['own_classes'])}).",
        f"- Why this number: {_STOP_WORDS.get(r['stop_reason'], r['stop_reason'])}. "
        f"Value reached: {_f(r['achieved_value'], 6)} for a reward value of "
        f"{_f(r['reward_value'], 6)}.",
        "",
        "## What the rows did",
        "",
        f"- Distance to the reference (unbiased MMD², smaller is closer): "
        f"{_f(b['mmd2'])} → {_f(a['mmd2'])}. The unbiased estimate subtracts the "
        "kernel's self-similarity, so it can be slightly below 0 when a set is very "
        'close to the reference; below 0 means "indistinguishable at this sample '
        'size", not an error. The k-NN KL estimate can be negative for the same '
        "reason.",
        f"- Downstream test accuracy (a classifier trained on your rows, then on your "
        f"rows plus the reward; tested on the held-out test set `pool/test.h5`, "
        f"{n_test} rows): {_f(r['acc_before'])} → {_f(r['acc_after'])} "
        f"(gain {_f(r['gain'])}).",
    ]
    if r["gain"] < 0:
        lines += [
            f"- The reward LOWERED your test accuracy. Trained with each reward row "
            f"counting {_f(reward_weight)} of an own row (`evaluate.reward_weight`), "
            f"the accuracy is {_f(r['acc_weighted'])}: you can use the reward "
            "down-weighted the same way (docs/cgm.md §8.2). The reward is chosen to "
            "bring your data closer to the reference distribution, which does not "
            "guarantee a better classifier on this test set.",
        ]
    lines += _privacy_lines(party, privacy)
    return manifest.atomic_write_text(path, "\n".join(lines) + "\n")


def _privacy_lines(party: int, privacy: dict[str, Any]) -> list[str]:
    f = privacy["spaces"]["feature"]["parties"][party]
    d = privacy["spaces"]["data"]["parties"][party]
    lines = ["", "## How close your rows lie to real records", ""]
    if f["dcr"] is None:
        return [*lines, "- You received no synthetic rows."]
    return [
        *lines,
        f"- Distance to the closest real training row, over the same for held-out "
        f"real rows (1 = as far as fresh data, near 0 = copies): "
        f"{_f(f['dcr']['ratio'])} in the feature space, {_f(d['dcr']['ratio'])} "
        "in the data space.",
        f"- Near copies (closer than the 1st percentile of real-to-real distances): "
        f"{_f(f['near_copy_share'])} (feature), {_f(d['near_copy_share'])} (data).",
        f"- Membership inference from your rows (0.5 = no better than chance): AUC "
        f"{_f(f['mia_auc'])} (feature), {_f(d['mia_auc'])} (data).",
        "- Full figures: `evaluate/privacy.json` (docs/cgm.md §8.5).",
    ]
