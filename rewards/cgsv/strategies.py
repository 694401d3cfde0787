"""Server strategies of the federated loop (docs/cgsv.md §2, §5, §6, §9).

Each server follows a Flower-like round lifecycle and satisfies one `Strategy`
protocol: ``configure_round(t)`` gives every party its config, and
``aggregate_round(t, uploads)`` returns a `RoundResult`.

- `GradientRewardStrategy` is the CGSV server: it keeps θ_S (a flat vector), r and
  the round counter, and runs steps 3–8 of docs/cgsv.md §2 with the pure functions of
  `rewards.cgsv.gradient`. Its ``aggregator`` (``cgsv``, ``fedavg`` or ``nash``,
  docs/cgsv.md §5) changes only the server weights w.
- `FedAvgStrategy` is the FedAvg baseline of docs/cgsv.md §6 (raw parameters,
  weights n_i/Σn).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from data.checks import check_int, check_interval, check_positive
from rewards.cgsv.gradient import (
    AggregatorKind,
    NbsSolver,
    aggregation_weights,
    check_gamma,
    cosine_contributions,
    flat_layer_topk,
    reward_fractions,
    update_importance,
)

logger = logging.getLogger(__name__)

#: An upload or local result: (party_id, flat vector, n_i).
Upload = tuple[int, Tensor, int]


def check_aggregator(aggregator: Any) -> AggregatorKind:
    """Return ``aggregator`` if it names a server weighting of docs/cgsv.md §5.

    Raises:
        ValueError: if it is not ``"cgsv"``, ``"fedavg"`` or ``"nash"``.

    Example:
        >>> check_aggregator("nash")
        'nash'
    """
    if aggregator not in ("cgsv", "fedavg", "nash"):
        raise ValueError(
            "Argument `aggregator` must be 'cgsv', 'fedavg' or 'nash', "
            f"got {aggregator!r}"
        )
    return aggregator


@dataclass(frozen=True)
class RoundResult:
    """What every `Strategy`'s ``aggregate_round`` returns for one round.

    Attributes:
        round: t.
        server_update: (D,) u_N = Σ_i w_i u_i (θ_S has been moved by it); ``None``
            for FedAvg, which replaces θ_F by the average instead.
        rewards: {party_id: (D,) g_i = LayerTopK(u_N, q_i)}; empty for FedAvg.
        metrics: ``w``, the (N,) float64 server weights; CGSV adds ``psi``, ``r``,
            ``q`` as (N,) float64 arrays and ``nbs_failed`` (bool).
    """

    round: int
    server_update: Tensor | None
    rewards: dict[int, Tensor]
    metrics: dict[str, Any]


class Strategy(Protocol):
    """The server side of a round (docs/cgsv.md §9), after Flower's ``Strategy``.

    Attributes:
        theta: (D,) the server's flat parameters (θ_S, or θ_F for FedAvg).
    """

    theta: Tensor

    def configure_round(self, round: int) -> dict[int, dict[str, Any]]:
        """Per-party configs for round t: ``{party_id: config}``."""
        ...

    def aggregate_round(
        self,
        round: int,
        uploads: Sequence[Upload],
        missing: Mapping[int, int] | None = None,
    ) -> RoundResult:
        """Combine the uploads of round t; ``missing``: {id: n_i} not answering."""
        ...

    def summary(self) -> dict[str, Any]:
        """Log and return the configuration and state."""
        ...


class GradientRewardStrategy:
    """The CGSV server of docs/cgsv.md §2 and §9, with a Flower-like round lifecycle.

    State: θ_S (flat float32), r (float64, r_{−1} = 0) and the round counter; with
    ``deliver_rewards_in_config`` also the pending rewards, which then travel in the
    next round's config (the Flower adapter's mode). In process (the default) the
    caller applies ``RoundResult.rewards`` right after `aggregate_round`.

    Args:
        theta_0: (D,) flat θ_0; copied into θ_S.
        sizes: the layer sizes n_l (``layer_sizes(model)``), summing to D.
        n_parties: N ≥ 2.
        gamma: Γ > 0, the upload norm.
        alpha: the CGSV decay 0 ≤ α < 1 (not a normalised Shapley value).
        beta: β > 0 (``inf`` allowed).
        local_epochs: E ≥ 1, sent in the configs.
        aggregator: ``"cgsv"``, ``"fedavg"`` or ``"nash"`` (docs/cgsv.md §5).
        nbs: the solver for ``nash`` (default ``rewards.nash.bargaining.nbs``).
        deliver_rewards_in_config: put g_i^(t) in round t+1's config.

    Raises:
        TypeError: on arguments of the wrong type.
        ValueError: on bad arguments.
    """

    def __init__(
        self,
        theta_0: Tensor,
        sizes: Sequence[int],
        n_parties: int,
        *,
        gamma: float,
        alpha: float,
        beta: float,
        local_epochs: int,
        aggregator: AggregatorKind = "cgsv",
        nbs: NbsSolver | None = None,
        deliver_rewards_in_config: bool = False,
    ):
        self.n_parties = check_int("n_parties", n_parties, 2)
        self.gamma = check_gamma(gamma)
        self.alpha = check_interval("alpha", alpha, 0, 1, closed="left")
        self.beta = check_positive("beta", beta, allow_inf=True)
        self.local_epochs = check_int("local_epochs", local_epochs, 1)
        self.aggregator = check_aggregator(aggregator)
        self.nbs = nbs
        self.sizes = [check_int("sizes", s, 1) for s in sizes]
        if theta_0.ndim != 1 or sum(self.sizes) != theta_0.numel():
            raise ValueError(
                f"Arguments `theta_0` ({tuple(theta_0.shape)}) and `sizes` (sum "
                f"{sum(self.sizes)}) must describe the same flat vector"
            )
        self.theta = theta_0.detach().clone()
        self.r = np.zeros(self.n_parties)
        self.round = 0
        self.deliver_rewards_in_config = bool(deliver_rewards_in_config)
        self._pending: dict[int, Tensor] = {}

    def configure_round(self, round: int) -> dict[int, dict[str, Any]]:
        """Per-party configs for round t: round, local_epochs, gamma and reward.

        Args:
            round: must equal the strategy's round counter.

        Returns:
            {party_id: config}; ``reward`` is the pending g_i in the Flower mode, else
            ``None``.

        Raises:
            ValueError: if ``round`` is not the next round.
        """
        self._check_round(round)
        return {
            i: {
                "round": round,
                "local_epochs": self.local_epochs,
                "gamma": self.gamma,
                "reward": self._pending.pop(i, None),
            }
            for i in range(self.n_parties)
        }

    def final_rewards(self) -> dict[int, Tensor]:
        """The last round's rewards not yet delivered (Flower mode), then forgotten."""
        out, self._pending = self._pending, {}
        return out

    def _check_round(self, round: int) -> None:
        if round != self.round:
            raise ValueError(
                f"Argument `round` must be {self.round} (the next round), got {round!r}"
            )

    def aggregate_round(
        self,
        round: int,
        uploads: Sequence[Upload],
        missing: Mapping[int, int] | None = None,
    ) -> RoundResult:
        """Steps 3–8 of docs/cgsv.md §2 for one round, with dropped parties (§2.1).

        A missing party (``missing = {party_id: n_i}``) is scored as if its upload
        were zero: ψ_i = 0, so r_i decays to α r_i (then floor and normalisation);
        the server weights are those of the present parties, renormalised; it gets
        no reward this round.

        Args:
            round: must equal the strategy's round counter.
            uploads: [(party_id, u_i, n_i)] for every present party, u_i (D,) float32.
            missing: {party_id: n_i} of the parties that did not answer.

        Returns:
            The `RoundResult`; θ_S, r and the round counter are updated;
            ``metrics["missing"]`` lists the missing ids.

        Raises:
            ValueError: on a wrong round, missing or duplicate parties, or shapes;
                or fewer than 2 present parties.
        """
        self._check_round(round)
        gone = dict(missing or {})
        dim = self.theta.numel()
        zero = torch.zeros(dim, dtype=self.theta.dtype, device=self.theta.device)
        ordered = sorted(
            [*uploads, *((i, zero, n) for i, n in gone.items())],
            key=lambda item: item[0],
        )
        ids = [int(item[0]) for item in ordered]
        if ids != list(range(self.n_parties)):
            raise ValueError(
                "Argument `uploads` must hold each party "
                f"0..{self.n_parties - 1} once, "
                f"got ids {ids}"
            )
        if any(item[1].shape != (dim,) for item in ordered):
            raise ValueError(f"Argument `uploads` must hold vectors of {dim} entries")
        uploads_mat = torch.stack([item[1].to(self.theta.device) for item in ordered])
        n = np.asarray([item[2] for item in ordered], dtype=np.float64)
        w, nbs_failed = self._weights(n, uploads_mat, round, sorted(gone))
        server_update = torch.as_tensor(
            w, dtype=uploads_mat.dtype, device=uploads_mat.device
        )
        server_update = server_update @ uploads_mat
        self.theta += server_update
        psi = cosine_contributions(uploads_mat, server_update)
        self.r = update_importance(self.r, psi, self.alpha)
        q = reward_fractions(self.r, self.beta)
        reward_rows = flat_layer_topk(server_update, self.sizes, q)
        rewards = {i: reward_rows[i] for i in range(self.n_parties) if i not in gone}
        if self.deliver_rewards_in_config:
            self._pending = dict(rewards)
        self.round += 1
        return RoundResult(
            round=round,
            server_update=server_update,
            rewards=rewards,
            metrics={
                "psi": psi,
                "r": self.r.copy(),
                "q": q,
                "w": w,
                "nbs_failed": nbs_failed,
                "missing": sorted(gone),
            },
        )

    def _weights(
        self, n: np.ndarray, uploads: Tensor, round: int, gone: list[int]
    ) -> tuple[np.ndarray, bool]:
        """Step 3 over the present parties only; a missing party's weight is 0."""
        if not gone:
            return aggregation_weights(
                self.aggregator, n, self.r, uploads, round, nbs=self.nbs
            )
        here = [i for i in range(self.n_parties) if i not in gone]
        if len(here) < 2:
            raise ValueError(f"Round {round} needs >= 2 present parties, got {here}")
        prev = self.r[here]
        w_here, failed = aggregation_weights(
            self.aggregator,
            n[here],
            prev / prev.sum() if round > 0 else prev,
            uploads[here],
            round,
            nbs=self.nbs,
        )
        w = np.zeros(self.n_parties)
        w[here] = w_here
        return w, failed

    def summary(self) -> dict[str, Any]:
        """Log and return the configuration and state (r, round counter)."""
        info = {
            "aggregator": self.aggregator,
            "n_parties": self.n_parties,
            "gamma": self.gamma,
            "alpha": self.alpha,
            "beta": self.beta,
            "local_epochs": self.local_epochs,
            "n_params": int(self.theta.numel()),
            "round": self.round,
            "r": self.r.tolist(),
        }
        logger.info("GradientRewardStrategy %s", info)
        return info


class FedAvgStrategy:
    """The FedAvg baseline server of docs/cgsv.md §6: θ_F ← Σ_i (n_i/Σn) θ_i^new.

    Args:
        theta_0: (D,) flat θ_0; copied into θ_F.
        n_parties: N ≥ 2.
        local_epochs: E ≥ 1.

    Raises:
        TypeError: on arguments of the wrong type.
        ValueError: on bad arguments.
    """

    def __init__(self, theta_0: Tensor, n_parties: int, *, local_epochs: int):
        self.n_parties = check_int("n_parties", n_parties, 2)
        self.local_epochs = check_int("local_epochs", local_epochs, 1)
        self.theta = theta_0.detach().clone()
        self.round = 0

    def configure_round(self, round: int) -> dict[int, dict[str, Any]]:
        """Configs for round t: round, local_epochs and θ_F as ``parameters``."""
        return {
            i: {
                "round": round,
                "local_epochs": self.local_epochs,
                "parameters": self.theta,
            }
            for i in range(self.n_parties)
        }

    def aggregate_round(
        self,
        round: int,
        results: Sequence[Upload],
        missing: Mapping[int, int] | None = None,
    ) -> RoundResult:
        """θ_F ← Σ_i w_i θ_i^new with w = n/Σn over the present parties.

        Args:
            round: the round t (must be the next round).
            results: [(party_id, flat θ_i^new, n_i)] for every present party.
            missing: {party_id: n_i} of the parties that did not answer (weight 0).

        Returns:
            The `RoundResult`: no server update or rewards, ``metrics["w"]`` the (N,)
            float64 weights w, ``metrics["missing"]`` the missing ids.

        Raises:
            ValueError: on a wrong round or missing parties.
        """
        if round != self.round:
            raise ValueError(f"Argument `round` must be {self.round}, got {round!r}")
        gone = dict(missing or {})
        ordered = sorted(results, key=lambda item: item[0])
        ids = sorted([*(int(item[0]) for item in ordered), *gone])
        if ids != list(range(self.n_parties)):
            raise ValueError("Argument `results` must hold each party once")
        if len(ordered) < 2:
            raise ValueError(f"Round {round} needs >= 2 present parties, got {ids}")
        w_here, _ = aggregation_weights(
            "fedavg",
            [item[2] for item in ordered],
            np.zeros(len(ordered)),
            None,
            round,
        )
        stacked = torch.stack([item[1] for item in ordered])
        self.theta = (
            torch.as_tensor(w_here, dtype=stacked.dtype, device=stacked.device)
            @ stacked
        )
        w = np.zeros(self.n_parties)
        w[[int(item[0]) for item in ordered]] = w_here
        self.round += 1
        return RoundResult(
            round=round,
            server_update=None,
            rewards={},
            metrics={"w": w, "missing": sorted(gone)},
        )

    def summary(self) -> dict[str, Any]:
        """Log and return the configuration and state (the round counter)."""
        info = {
            "n_parties": self.n_parties,
            "local_epochs": self.local_epochs,
            "n_params": int(self.theta.numel()),
            "round": self.round,
        }
        logger.info("FedAvgStrategy %s", info)
        return info
