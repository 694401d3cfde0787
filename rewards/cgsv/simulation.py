"""The in-process federated loop: CGSV, FedAvg and Standalone (docs/cgsv.md §2, §6, §7).

Source: Xu, Lyu, Ma, Miao, Foo, Low, "Gradient Driven Rewards to Guarantee Fairness in
Collaborative Machine Learning", NeurIPS 2021, with the departures of docs/cgsv.md §3.

`simulate` builds one runner per method, Standalone, FedAvg and one CGSV run per β,
each with its own copies of θ_0 as `FLParty` objects and its `Strategy`, and plays
them in lock-step on the same `batch_order_table`: ONE loop over rounds and runners.
Every row of ``rounds.csv`` (docs/cgsv.md §7) goes to an ``on_round`` callback as soon
as it is known, so the caller can stream it; the library knows nothing of files. It
returns a `SimulationSummary` (built in `rewards.cgsv.results`).

`simulate` is `make_runners` + `play_rounds`; a message-passing engine (the Flower
ServerApp, docs/federated.md) calls the two with server-side mirrors of the parties
and a ``play_all`` that plays round t of every runner in one exchange.

Server work is vectorised on one flat float32 vector per party; models are copied only
once, when the parties are built.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
)
from rewards.cgsv.params import assign_parameters, flatten_parameters, layer_sizes
from rewards.cgsv.party import FLParty, batch_order_table
from rewards.cgsv.results import (  # noqa: F401 (_timing: tests use it from here)
    OVERHEAD_GOAL,
    CgsvRun,
    SimulationSummary,
    Timing,
    _log_summary,
    _summary,
    _timing,
)
from rewards.cgsv.strategies import (
    FedAvgStrategy,
    GradientRewardStrategy,
    RoundResult,
    Strategy,
    check_aggregator,
)
from rewards.classifiers import accuracy, check_no_buffers

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
#: ``rounds.csv`` of the Flower engine: one more column, 1 for a party that did not
#: answer that round (docs/cgsv.md §2.1).
FLOWER_ROUND_COLUMNS: tuple[str, ...] = (*ROUND_COLUMNS, "missing")
#: Rows per forward pass in test evaluation: small batches keep the cnn's activations
#: in cache (about 1.7× faster than 1024 on one CPU thread).
EVAL_BATCH = 64


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
    #: parties that did not answer this round (a message-passing engine sets it)
    missing: list[int] = field(default_factory=list)
    #: add the ``missing`` column of `FLOWER_ROUND_COLUMNS` to its rows
    missing_column: bool = False


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
                values.update(
                    psi=float(m["psi"][i]),
                    r=float(m["r"][i]),
                    q=float(m["q"][i]),
                    nbs_failed=int(m["nbs_failed"]),
                )
            if result.server_update is not None and i in result.rewards:
                density, rcos = _reward_stats(result.rewards[i], result.server_update)
                values.update(reward_density=density, reward_cos=rcos)
        row = _row(t, runner.method, runner.beta, i, p.n_samples, **values)
        if runner.missing_column:
            row["missing"] = int(i in runner.missing)
        yield row


class _Evaluator:
    """Test accuracy of party models and of flat server vectors (one scratch model)."""

    def __init__(
        self, init_model: nn.Module, x: Tensor, y: Tensor, device: torch.device
    ):
        self.scratch = copy.deepcopy(init_model).to(device)
        self.n_params = sum(p.numel() for p in self.scratch.parameters())
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
    evaluator = _Evaluator(init_model, x_test, y_test, dev)

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

    runners = make_runners(
        init_model, n_parties, parties, betas, baselines, gamma=gamma, alpha=alpha,
        local_epochs=local_epochs, aggregator=aggregator, nbs=nbs,
    )  # fmt: skip
    return play_rounds(
        runners, evaluator, sizes, aggregator, rounds=rounds,
        local_epochs=local_epochs, eval_every=eval_every, device=dev,
        on_round=on_round, progress=progress,
    )  # fmt: skip


def make_runners(
    init_model: nn.Module,
    n_parties: int,
    parties: Callable[[], list[Any]],
    betas: Sequence[float],
    baselines: Sequence[Baseline | str],
    *,
    gamma: float,
    alpha: float,
    local_epochs: int,
    aggregator: AggregatorKind,
    nbs: NbsSolver | None = None,
) -> list[_Runner]:
    """One runner per method, in the order Standalone, FedAvg, CGSV(β_1), ….

    Args:
        init_model: θ_0 (on the device).
        n_parties: N.
        parties: builds one fresh list of parties (`FLParty`, or a message-passing
            engine's server-side mirrors of them) per call.
        betas: one CGSV run per β.
        baselines: any of ``"standalone"``, ``"fedavg"``.
        gamma: Γ.
        alpha: the CGSV decay.
        local_epochs: E.
        aggregator: the CGSV server weighting.
        nbs: the Nash bargaining solver.

    Returns:
        The runners.
    """
    theta_0 = flatten_parameters(init_model)
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
    return runners


#: Plays round t for every runner at once (a message-passing engine: one message
#: per party); returns (result, round seconds, server seconds) per runner.
PlayAll = Callable[
    [Sequence[_Runner], int], list[tuple[RoundResult | None, float, float | None]]
]


def play_rounds(
    runners: Sequence[_Runner],
    evaluator: _Evaluator,
    sizes: list[int],
    aggregator: AggregatorKind,
    *,
    rounds: int,
    local_epochs: int,
    eval_every: int,
    device: torch.device,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
    play_all: PlayAll | None = None,
) -> SimulationSummary:
    """The lock-step loop of `simulate` over rounds and runners (docs/cgsv.md §2, §6).

    In process each runner plays its round in turn (`_play_round`); with
    ``play_all`` every runner's round t is played first, in one exchange per party,
    then evaluated and reported runner by runner, in the same order.

    Returns:
        The `SimulationSummary`.
    """
    emit = on_round if on_round is not None else (lambda row: None)
    for t in tqdm(range(rounds), disable=not progress, desc="fl rounds"):
        evaluate = t % eval_every == 0 or t == rounds - 1
        played = play_all(runners, t) if play_all is not None else None
        for k, runner in enumerate(runners):
            if played is not None:
                result, round_s, server_s = played[k]
            else:
                result, round_s, server_s = _play_round(runner, t, local_epochs, device)
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
    summary = _summary(runners, evaluator.n_params, sizes, aggregator)
    _log_summary(summary)
    return summary
