"""The in-process federated loop: CGSV, FedAvg and Standalone (docs/cgsv.md §2, §6, §7).

Source: Xu, Lyu, Ma, Miao, Foo, Low, "Gradient Driven Rewards to Guarantee Fairness in
Collaborative Machine Learning", NeurIPS 2021, with the departures of docs/cgsv.md §3.

`simulate` builds one runner per method, Standalone, FedAvg and one CGSV run per β,
each with its own copies of θ_0 as `FLParty` objects and its `Strategy`, and plays
them in lock-step on the same `batch_order_table`: ONE loop over rounds and runners.
Every row of ``rounds.csv`` (docs/cgsv.md §7) goes to an ``on_round`` callback as soon
as it is known, so the caller can stream it; the library knows nothing of files. It
returns a `SimulationSummary`.

Server work is vectorised on one flat float32 vector per party; models are copied only
once, when the parties are built.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn
from tqdm.auto import tqdm

from data.checks import check_interval, check_positive, check_positive_int, is_number
from data.devices import resolve_device
from data.seeding import Seed
from rewards.cgsv.gradient import (
    COSINE_EPS,
    AggregatorKind,
    NbsSolver,
    check_gamma,
    reward_fractions,
)
from rewards.cgsv.params import assign_parameters, flatten_parameters, layer_sizes
from rewards.cgsv.party import FLParty, batch_order_table
from rewards.cgsv.strategies import (
    FedAvgStrategy,
    GradientRewardStrategy,
    RoundResult,
    Strategy,
    check_aggregator,
)
from rewards.classifiers import accuracy, check_no_buffers
from rewards.metrics import fairness, performance, reward_fairness

logger = logging.getLogger(__name__)

Baseline = Literal["standalone", "fedavg"]
Method = Literal["standalone", "fedavg", "cgsv"]
#: What a party does in its strategy's round: ``fit`` or ``fit_fedavg`` of `FLParty`.
PartyFit = Callable[[FLParty, Mapping[str, Any]], tuple[Tensor, int]]

#: Columns of ``fl/rounds.csv`` in order (docs/cgsv.md §7).
ROUND_COLUMNS: tuple[str, ...] = (
    "round",
    "method",
    "beta",
    "party",
    "n_samples",
    "test_acc",
    "psi",
    "r",
    "q",
    "weight",
    "reward_density",
    "reward_cos",
    "server_acc",
    "nbs_failed",
    "round_time_s",
    "server_time_s",
)
#: Goal of docs/cgsv.md §7: CGSV's median round is < 10 % slower than FedAvg's.
OVERHEAD_GOAL = 0.10
#: Rows per forward pass in test evaluation: small batches keep the cnn's activations
#: in cache (about 1.7× faster than 1024 on one CPU thread).
EVAL_BATCH = 64


@dataclass(frozen=True)
class CgsvRun:
    """Final results of one CGSV run (one β), the ``cgsv`` entries of summary.json.

    ``reward_fairness`` = Pearson(acc^SA, final r) is our addition to docs/cgsv.md §7:
    it asks whether the *allocation* follows contribution, which the accuracy-based
    ``fairness`` cannot resolve when the rewarded models differ by a few test rows.
    """

    beta: float
    test_acc: list[float]
    server_acc: float
    fairness: float | None
    reward_fairness: float | None
    performance: float
    final_r: list[float]
    final_q: list[float]
    nbs_failures: int


@dataclass(frozen=True)
class Timing:
    """Per-round wall times of docs/cgsv.md §7 (medians over rounds; no evaluation).

    ``overhead`` = median CGSV round / median FedAvg round − 1; ``server_overhead`` =
    median CGSV server work (steps 2–8) / median FedAvg averaging − 1. ``None`` when
    FedAvg was not run.
    """

    cgsv_round_s: float
    fedavg_round_s: float | None
    overhead: float | None
    server_overhead: float | None
    goal_met: bool | None
    cgsv_server_s: float
    fedavg_server_s: float | None


@dataclass(frozen=True)
class SimulationSummary:
    """What `simulate` returns: the method results of ``fl/summary.json``.

    See docs/cgsv.md §7. ``standalone`` is ``{"test_acc": [...]}`` and ``fedavg`` is
    ``{"test_acc", "global_acc", "fairness", "performance"}``, or ``None`` when not
    run.
    """

    n_params: int
    party_sizes: list[int]
    aggregator: str
    standalone: dict[str, Any] | None
    fedavg: dict[str, Any] | None
    cgsv: list[CgsvRun]
    timing: Timing

    def to_dict(self) -> dict[str, Any]:
        """Return a plain nested dict (β may be ``inf``: the JSON encoder maps it)."""
        return asdict(self)


@dataclass
class _Runner:
    """One method of the lock-step run: its parties, its server and its results.

    Standalone has no server (``strategy is None``): its parties train alone.
    """

    method: Method
    parties: list[FLParty]
    strategy: Strategy | None = None
    fit: PartyFit | None = None
    #: β of a CGSV run, else ``None``
    beta: float | None = None
    #: the last evaluated (party accuracies, server accuracy)
    final: tuple[list[float], float | None] | None = None
    nbs_failures: int = 0
    round_s: list[float] = field(default_factory=list)
    server_s: list[float] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _play_round(
    runner: _Runner, t: int, epochs: int, device: torch.device
) -> tuple[RoundResult | None, float, float | None]:
    """One timed round of a runner: local training, server work, rewards.

    Returns (result, round seconds, server seconds); the server seconds include the
    parties' upload normalisation (docs/cgsv.md §7); Standalone has neither a result
    nor server seconds.
    """
    _sync(device)
    t0 = time.perf_counter()
    if runner.strategy is None or runner.fit is None:
        for p in runner.parties:
            p.fit_standalone({"round": t, "local_epochs": epochs})
        _sync(device)
        return None, time.perf_counter() - t0, None
    configs = runner.strategy.configure_round(t)
    uploads = []
    for p in runner.parties:
        vec, n = runner.fit(p, configs[p.party_id])
        uploads.append((p.party_id, vec, n))
    _sync(device)
    t_server = time.perf_counter()
    result = runner.strategy.aggregate_round(t, uploads)
    for p in runner.parties:
        if p.party_id in result.rewards:
            p.apply_reward(result.rewards[p.party_id])
    _sync(device)
    t1 = time.perf_counter()
    server_s = t1 - t_server + sum(p.last_normalise_s for p in runner.parties)
    return result, t1 - t0, server_s


def _reward_stats(reward: Tensor, server_update: Tensor) -> tuple[float, float]:
    density = float((reward != 0).sum()) / reward.numel()
    u_norm = float(torch.linalg.vector_norm(server_update, dtype=torch.float64))
    g_norm = float(torch.linalg.vector_norm(reward, dtype=torch.float64))
    return density, g_norm / max(u_norm, COSINE_EPS)


def _row(
    t: int, method: str, beta: float | None, party: int, n_samples: int, **values: Any
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROUND_COLUMNS)
    row.update(round=t, method=method, beta=beta, party=party, n_samples=n_samples)
    for key, value in values.items():
        if key not in row:
            raise RuntimeError(f"Unknown rounds.csv column {key!r}")
        row[key] = value
    return row


def _rows(
    runner: _Runner,
    t: int,
    result: RoundResult | None,
    accs: Sequence[float | None],
    server_acc: float | None,
    times: tuple[float, float | None],
) -> Iterator[dict[str, Any]]:
    """The runner's rows of ``rounds.csv`` for round t (docs/cgsv.md §7).

    Fields that do not apply to the method stay empty (``None``).
    """
    round_s, server_s = times
    for p, acc in zip(runner.parties, accs, strict=True):
        i = p.party_id
        values: dict[str, Any] = {"test_acc": acc, "round_time_s": round_s}
        if result is not None:
            m = result.metrics
            values.update(
                weight=float(m["w"][i]), server_acc=server_acc, server_time_s=server_s
            )
            if result.server_update is not None:
                density, rcos = _reward_stats(result.rewards[i], result.server_update)
                values.update(
                    psi=float(m["psi"][i]),
                    r=float(m["r"][i]),
                    q=float(m["q"][i]),
                    reward_density=density,
                    reward_cos=rcos,
                    nbs_failed=int(m["nbs_failed"]),
                )
        yield _row(t, runner.method, runner.beta, i, p.n_samples, **values)


class _Evaluator:
    """Test accuracy of party models and of flat server vectors (one scratch model)."""

    def __init__(
        self, init_model: nn.Module, x: Tensor, y: Tensor, device: torch.device
    ):
        self.scratch = copy.deepcopy(init_model).to(device)
        self.x = x
        self.y = y

    def model_acc(self, model: nn.Module) -> float:
        return accuracy(model, self.x, self.y, batch_size=EVAL_BATCH)

    def flat_acc(self, flat: Tensor) -> float:
        assign_parameters(self.scratch, flat)
        return accuracy(self.scratch, self.x, self.y, batch_size=EVAL_BATCH)


def _check_args(
    n_parties: int,
    *,
    rounds: int,
    local_epochs: int,
    batch_size: int,
    lr: float,
    lr_decay: float,
    gamma: float,
    alpha: float,
    beta: float | Sequence[float],
    aggregator: AggregatorKind,
    baselines: Sequence[Baseline | str],
    eval_every: int,
) -> list[float]:
    """Refuse bad arguments of `simulate` before any work; return the list of β."""
    if n_parties < 2:
        raise ValueError(
            f"Argument `party_data` must hold >= 2 parties, got {n_parties}"
        )
    check_positive_int("rounds", rounds)
    check_positive_int("local_epochs", local_epochs)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    check_interval("lr_decay", lr_decay, 0, 1, closed="right")
    check_gamma(gamma)
    check_interval("alpha", alpha, 0, 1, closed="left")
    check_positive_int("eval_every", eval_every)
    betas = [beta] if is_number(beta) else list(beta)  # type: ignore[arg-type]
    if not betas:
        raise ValueError("Argument `beta` must be a number or a non-empty list, got []")
    betas = [check_positive("beta", b, allow_inf=True) for b in betas]
    check_aggregator(aggregator)
    unknown = [b for b in baselines if b not in ("standalone", "fedavg")]
    if unknown:
        raise ValueError(
            f"Argument `baselines` may hold 'standalone' and 'fedavg' (cffl is not "
            f"implemented), got {list(baselines)}"
        )
    return betas


def simulate(
    init_model: nn.Module,
    party_data: Sequence[tuple[ArrayLike | Tensor, ArrayLike | Tensor]],
    test_data: tuple[ArrayLike | Tensor, ArrayLike | Tensor],
    *,
    rounds: int,
    local_epochs: int,
    batch_size: int,
    lr: float,
    lr_decay: float,
    gamma: float,
    alpha: float,
    beta: float | Sequence[float],
    aggregator: AggregatorKind = "cgsv",
    baselines: Sequence[Baseline | str] = ("standalone", "fedavg"),
    eval_every: int = 1,
    seed: Seed = None,
    orders: Sequence[NDArray[np.int64]] | None = None,
    device: str = "cpu",
    nbs: NbsSolver | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
) -> SimulationSummary:
    """Run CGSV (one run per β) and the baselines in lock-step (docs/cgsv.md §2, §6).

    Every method starts from θ_0 = ``init_model``, gives each party its own copy, SGD
    optimiser and scheduler, and reads the same batch-order table. In round t the
    methods run in the order Standalone, FedAvg, CGSV(β_1), CGSV(β_2), …; each
    method-round is timed (local training + server work + reward application) and then
    evaluated on the test set when t is a multiple of ``eval_every`` or t = T−1.

    Args:
        init_model: θ_0, a model without buffers (not modified).
        party_data: [(x_i, y_i)] per party, N ≥ 2; x preprocessed float32.
        test_data: (x, y) of the test set, preprocessed.
        rounds: T ≥ 1.
        local_epochs: E ≥ 1.
        batch_size: B ≥ 1.
        lr: SGD learning rate > 0.
        lr_decay: per-round decay in (0, 1].
        gamma: Γ > 0.
        alpha: the CGSV decay, 0 ≤ α < 1.
        beta: β > 0, or a non-empty list of β (one CGSV run each).
        aggregator: ``"cgsv"``, ``"fedavg"`` or ``"nash"`` for the CGSV server.
        baselines: any of ``"standalone"``, ``"fedavg"``.
        eval_every: evaluate every this many rounds (and at t = T−1).
        seed: seed of the batch-order table (ignored when ``orders`` is given).
        orders: a precomputed `batch_order_table` (T, E, n_i) per party.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        nbs: the Nash bargaining solver for ``aggregator="nash"``.
        on_round: called with each row of ``rounds.csv`` (keys `ROUND_COLUMNS`; ``None``
            for empty fields), in order of (round, method, β, party).
        progress: show a progress bar over rounds.

    Returns:
        The `SimulationSummary`.

    Raises:
        TypeError: on arguments of the wrong type (checked before any training).
        ValueError: on bad arguments (checked before any training).
    """
    betas = _check_args(
        len(party_data),
        rounds=rounds,
        local_epochs=local_epochs,
        batch_size=batch_size,
        lr=lr,
        lr_decay=lr_decay,
        gamma=gamma,
        alpha=alpha,
        beta=beta,
        aggregator=aggregator,
        baselines=baselines,
        eval_every=eval_every,
    )
    n_parties = len(party_data)
    check_no_buffers(init_model)
    dev = resolve_device(device)
    data = [
        (
            torch.as_tensor(x).to(dev, torch.float32),
            torch.as_tensor(y).to(dev, torch.long),
        )
        for x, y in party_data
    ]
    sizes = [int(x.shape[0]) for x, _ in data]
    if min(sizes) < 1:
        raise ValueError(f"Argument `party_data` has an empty party, sizes {sizes}")
    if orders is None:
        orders = batch_order_table(sizes, rounds, local_epochs, seed=seed)
    elif len(orders) != n_parties or any(
        o.shape[0] < rounds or o.shape[1] < local_epochs for o in orders
    ):
        raise ValueError(
            f"Argument `orders` must hold ({rounds}, {local_epochs}, n_i) tables for "
            f"{n_parties} parties"
        )
    x_test = torch.as_tensor(test_data[0]).to(dev, torch.float32)
    y_test = torch.as_tensor(test_data[1]).to(dev, torch.long)
    init_model = copy.deepcopy(init_model).to(dev)
    theta_0 = flatten_parameters(init_model)
    evaluator = _Evaluator(init_model, x_test, y_test, dev)
    emit = on_round if on_round is not None else (lambda row: None)

    def parties() -> list[FLParty]:
        return [
            FLParty(
                i,
                copy.deepcopy(init_model),
                x,
                y,
                orders[i],
                lr=lr,
                lr_decay=lr_decay,
                batch_size=batch_size,
                device=str(dev),
            )
            for i, (x, y) in enumerate(data)
        ]

    runners = []
    if "standalone" in baselines:
        runners.append(_Runner("standalone", parties()))
    if "fedavg" in baselines:
        fedavg = FedAvgStrategy(theta_0, n_parties, local_epochs=local_epochs)
        runners.append(_Runner("fedavg", parties(), fedavg, FLParty.fit_fedavg))
    for b in betas:
        strategy = GradientRewardStrategy(
            theta_0,
            layer_sizes(init_model),
            n_parties,
            gamma=gamma,
            alpha=alpha,
            beta=b,
            local_epochs=local_epochs,
            aggregator=aggregator,
            nbs=nbs,
        )
        strategy.summary()
        runners.append(_Runner("cgsv", parties(), strategy, FLParty.fit, strategy.beta))

    for t in tqdm(range(rounds), disable=not progress, desc="fl rounds"):
        evaluate = t % eval_every == 0 or t == rounds - 1
        for runner in runners:
            result, round_s, server_s = _play_round(runner, t, local_epochs, dev)
            if server_s is not None:
                runner.round_s.append(round_s)
                runner.server_s.append(server_s)
            if result is not None and "nbs_failed" in result.metrics:
                runner.nbs_failures += int(result.metrics["nbs_failed"])
            accs: list[float] = []
            server_acc = None
            if evaluate:
                accs = [evaluator.model_acc(p.model) for p in runner.parties]
                if runner.strategy is not None:
                    server_acc = evaluator.flat_acc(runner.strategy.theta)
                runner.final = (accs, server_acc)
            shown = accs or [None] * len(runner.parties)
            for row in _rows(runner, t, result, shown, server_acc, (round_s, server_s)):
                emit(row)
    summary = _summary(runners, theta_0, sizes, aggregator)
    _log_summary(summary)
    return summary


def _log_summary(summary: SimulationSummary) -> None:
    for run in summary.cgsv:
        logger.info(
            "cgsv beta %s: fairness %s, reward fairness %s, performance %.4f, "
            "server %.4f",
            run.beta,
            run.fairness,
            run.reward_fairness,
            run.performance,
            run.server_acc,
        )
    logger.info("fedavg: %s; timing %s", summary.fedavg, summary.timing)


def _summary(
    runners: Sequence[_Runner],
    theta_0: Tensor,
    sizes: list[int],
    aggregator: AggregatorKind,
) -> SimulationSummary:
    """Final accuracies, fairness and timing of every runner (docs/cgsv.md §7)."""
    finals = {r.method: _final(r) for r in runners if r.method != "cgsv"}
    sa_acc = finals["standalone"][0] if "standalone" in finals else None
    standalone = {"test_acc": sa_acc} if sa_acc is not None else None
    fedavg = None
    if "fedavg" in finals:
        accs, global_acc = finals["fedavg"]
        fedavg = {
            "test_acc": accs,
            "global_acc": global_acc,
            "fairness": fairness(sa_acc, accs) if sa_acc is not None else None,
            "performance": performance(accs),
        }
    cgsv = []
    for runner in runners:
        if runner.method != "cgsv":
            continue
        strategy = runner.strategy
        if not isinstance(strategy, GradientRewardStrategy):
            raise RuntimeError("A cgsv runner must hold a GradientRewardStrategy")
        accs, server_acc = _final(runner)
        cgsv.append(
            CgsvRun(
                beta=strategy.beta,
                test_acc=accs,
                server_acc=server_acc,  # type: ignore[arg-type]
                fairness=fairness(sa_acc, accs) if sa_acc is not None else None,
                reward_fairness=(
                    reward_fairness(sa_acc, strategy.r) if sa_acc is not None else None
                ),
                performance=performance(accs),
                final_r=strategy.r.tolist(),
                final_q=reward_fractions(strategy.r, strategy.beta).tolist(),
                nbs_failures=runner.nbs_failures,
            )
        )
    times: dict[str, list[float]] = {
        "cgsv": [],
        "cgsv_srv": [],
        "fedavg": [],
        "fedavg_srv": [],
    }
    for runner in runners:
        if runner.method != "standalone":
            times[runner.method] += runner.round_s
            times[f"{runner.method}_srv"] += runner.server_s
    return SimulationSummary(
        n_params=int(theta_0.numel()),
        party_sizes=sizes,
        aggregator=aggregator,
        standalone=standalone,
        fedavg=fedavg,
        cgsv=cgsv,
        timing=_timing(times),
    )


def _final(runner: _Runner) -> tuple[list[float], float | None]:
    """The runner's last evaluated accuracies (the last round is always evaluated)."""
    if runner.final is None:
        raise RuntimeError(f"The {runner.method} runner was never evaluated")
    return runner.final


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _timing(times: Mapping[str, list[float]]) -> Timing:
    cg = _median(times["cgsv"])
    cg_srv = _median(times["cgsv_srv"])
    fa = _median(times["fedavg"])
    fa_srv = _median(times["fedavg_srv"])
    if cg is None or cg_srv is None:
        raise RuntimeError("No CGSV round was timed")
    overhead = cg / fa - 1.0 if fa else None
    server_overhead = cg_srv / fa_srv - 1.0 if fa_srv else None
    goal_met = None if overhead is None else overhead < OVERHEAD_GOAL
    if goal_met is False:
        logger.warning(
            "CGSV round-time overhead %.1f%% misses the %.0f%% goal (docs/cgsv.md §7)",
            100 * overhead,  # type: ignore[operator]
            100 * OVERHEAD_GOAL,
        )
    return Timing(
        cgsv_round_s=cg,
        fedavg_round_s=fa,
        overhead=overhead,
        server_overhead=server_overhead,
        goal_met=goal_met,
        cgsv_server_s=cg_srv,
        fedavg_server_s=fa_srv,
    )
