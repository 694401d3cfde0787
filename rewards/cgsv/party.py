"""A party of the federated loop and the shared batch-order table (docs/cgsv.md §2, §3).

- `batch_order_table` draws the batch orders of docs/cgsv.md §3.3 once, for every
  method.
- `FLParty` owns θ_i (a model without buffers), its own SGD optimiser and
  ExponentialLR scheduler, its data and its rows of the order table.
  ``fit(config) -> (u_i, n_i)`` trains E epochs, returns the Γ-normalised update and
  restores θ_i; ``apply_reward(g_i)`` adds the reward; ``fit_standalone`` and
  ``fit_fedavg`` are the baselines' rounds (docs/cgsv.md §6).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from data.checks import check_int, check_interval, check_positive, check_positive_int
from data.devices import resolve_device
from data.seeding import Seed
from rewards.cgsv.gradient import normalise_update
from rewards.cgsv.params import add_to_parameters, assign_parameters, flatten_parameters
from rewards.classifiers import check_no_buffers

logger = logging.getLogger(__name__)

#: warn when more than this fraction of a party's Δ_i is exactly 0 (float32 underflow)
UNDERFLOW_WARN_FRACTION = 0.5


def batch_order_table(
    sizes: Sequence[int], rounds: int, epochs: int, *, seed: Seed
) -> list[NDArray[np.int64]]:
    """The shared batch orders of docs/cgsv.md §3.3, drawn once for every method.

    Party i gets its own child generator (``Generator.spawn``), which draws one
    permutation of 0..n_i−1 per (round, epoch) in that order. So a longer run keeps the
    orders of a shorter one.

    Args:
        sizes: party sizes n_i ≥ 1.
        rounds: T ≥ 1.
        epochs: E ≥ 1.
        seed: seed of the table.

    Returns:
        One (T, E, n_i) int64 array per party.

    Raises:
        TypeError: if a size, T or E is not an integer.
        ValueError: on empty or non-positive sizes, or T or E < 1.

    Example:
        >>> t = batch_order_table([3, 2], 2, 1, seed=0)
        >>> [a.shape for a in t], sorted(t[0][1, 0].tolist())
        ([(2, 1, 3), (2, 1, 2)], [0, 1, 2])
    """
    sizes_list = [check_positive_int("sizes", s) for s in sizes]
    if not sizes_list:
        raise ValueError("Argument `sizes` must not be empty")
    t = check_positive_int("rounds", rounds)
    e = check_positive_int("epochs", epochs)
    children = np.random.default_rng(seed).spawn(len(sizes_list))
    return [
        np.stack([child.permutation(n) for _ in range(t * e)])
        .reshape(t, e, n)
        .astype(np.int64)
        for child, n in zip(children, sizes_list, strict=True)
    ]


class FLParty:
    """A party of docs/cgsv.md §2: θ_i, its SGD optimiser and scheduler, and its data.

    The party takes ownership of ``model`` (pass a copy of θ_0). The optimiser state
    never leaves the party.

    Args:
        party_id: 0-based id.
        model: θ_i, a model without buffers.
        x: (n_i, ...) float32 preprocessed inputs.
        y: (n_i,) integer labels.
        orders: (T, E, n_i) its rows of the `batch_order_table`.
        lr: SGD learning rate > 0.
        lr_decay: ExponentialLR factor in (0, 1], stepped once per round
            (docs/cgsv.md §3.2).
        batch_size: B ≥ 1; the last mini-batch of an epoch may be short.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Raises:
        TypeError: on hyper-parameters of the wrong type.
        ValueError: on bad hyper-parameters or data/orders of mismatched sizes.
        RuntimeError: if ``model`` has buffers.
    """

    def __init__(
        self,
        party_id: int,
        model: nn.Module,
        x: ArrayLike | Tensor,
        y: ArrayLike | Tensor,
        orders: NDArray[np.int64],
        *,
        lr: float,
        lr_decay: float,
        batch_size: int,
        device: str = "cpu",
    ):
        check_no_buffers(model)
        self.party_id = check_int("party_id", party_id, 0)
        self.batch_size = check_positive_int("batch_size", batch_size)
        lr = check_positive("lr", lr)
        lr_decay = check_interval("lr_decay", lr_decay, 0, 1, closed="right")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.x = torch.as_tensor(x).to(self.device, torch.float32)
        self.y = torch.as_tensor(y).to(self.device, torch.long)
        n = self.x.shape[0]
        if n < 1 or self.y.shape != (n,):
            raise ValueError(
                f"Arguments `x` and `y` of party {party_id} must have n >= 1 "
                "equal rows, "
                f"got {tuple(self.x.shape)} and {tuple(self.y.shape)}"
            )
        orders = np.asarray(orders)
        if orders.ndim != 3 or orders.shape[2] != n:
            raise ValueError(
                f"Argument `orders` of party {party_id} must be (T, E, {n}), got "
                f"{orders.shape}"
            )
        self.orders = torch.as_tensor(orders, dtype=torch.long)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(
            self.optimizer, gamma=lr_decay
        )
        self._loss = nn.CrossEntropyLoss()
        self.last_normalise_s = 0.0
        self._warned_underflow = False

    @property
    def n_samples(self) -> int:
        """n_i = |D_i|."""
        return int(self.x.shape[0])

    def flat(self) -> Tensor:
        """Return a copy of the flat θ_i, (D,) float32."""
        return flatten_parameters(self.model)

    def train_local(self, round: int, epochs: int) -> None:
        """Run E epochs of SGD on D_i, one step per mini-batch (docs/cgsv.md §2 step 1).

        Epoch e of round t uses ``orders[t, e]`` cut into mini-batches of B.

        Args:
            round: the round t, a row of the order table.
            epochs: E, at most the table's epochs.

        Raises:
            ValueError: if (round, epochs) is outside the order table.
        """
        t_max, e_max, _ = self.orders.shape
        if not 0 <= round < t_max:
            raise ValueError(f"Argument `round` must be in [0, {t_max}), got {round!r}")
        if not 1 <= epochs <= e_max:
            raise ValueError(
                f"Argument `epochs` must be in [1, {e_max}], got {epochs!r}"
            )
        self.model.train()
        for e in range(epochs):
            order = self.orders[round, e].to(self.device)
            for start in range(0, self.n_samples, self.batch_size):
                idx = order[start : start + self.batch_size]
                self.optimizer.zero_grad(set_to_none=True)
                loss = self._loss(self.model(self.x[idx]), self.y[idx])
                loss.backward()
                self.optimizer.step()

    def fit(self, config: Mapping[str, Any]) -> tuple[Tensor, int]:
        """One CGSV round of local work (docs/cgsv.md §2 steps 1–2).

        Snapshot θ_old, train E epochs, Δ = flat(θ_new) − flat(θ_old), restore θ_old,
        step the scheduler once, return u = Γ Δ/(‖Δ‖ + 1e-7).

        Args:
            config: ``round``, ``local_epochs``, ``gamma``, and optionally ``reward``
                (a pending g_i, applied before training; ``None`` in-process).

        Returns:
            (u_i, n_i): (D,) float32 upload and the party size.

        Raises:
            ValueError: on a bad config.
        """
        pending = config.get("reward")
        if pending is not None:
            self.apply_reward(pending)
        old = self.flat()
        self.train_local(int(config["round"]), int(config["local_epochs"]))
        delta = self.flat() - old
        assign_parameters(self.model, old)
        self._warn_underflow(delta, int(config["round"]))
        self.scheduler.step()
        t0 = time.perf_counter()
        upload = normalise_update(delta, float(config["gamma"]))
        self.last_normalise_s = time.perf_counter() - t0
        return upload, self.n_samples

    def _warn_underflow(self, delta: Tensor, round: int) -> None:
        """Warn once when most of Δ_i is exactly 0: SGD steps below float32 resolution.

        With the per-round decay of docs/cgsv.md §3.2 the learning rate keeps
        shrinking, and once lr·grad falls under half an ulp of θ most entries stop
        moving. The upload is rescaled to norm Γ regardless, so from then on it is
        mostly rounding, and ψ and r follow noise.
        """
        if self._warned_underflow:
            return
        zero = float((delta == 0).sum()) / max(delta.numel(), 1)
        if zero > UNDERFLOW_WARN_FRACTION:
            self._warned_underflow = True
            logger.warning(
                "party %d, round %d: %.0f%% of its update's entries are exactly 0 at "
                "lr %.3g (steps below float32 resolution); its uploads are now mostly "
                "rounding, so psi and r follow noise from here on",
                self.party_id,
                round,
                100 * zero,
                self.scheduler.get_last_lr()[0],
            )

    def apply_reward(self, reward: Tensor) -> None:
        """θ_i ← θ_i + g_i (docs/cgsv.md §2 step 8): the party adds only its reward.

        Args:
            reward: (D,) g_i.

        Raises:
            ValueError: if ``reward`` does not have D entries.
        """
        add_to_parameters(self.model, reward.to(self.device))

    def fit_standalone(self, config: Mapping[str, Any]) -> None:
        """Standalone baseline round (docs/cgsv.md §6): train E epochs, keep θ_i, step.

        Args:
            config: ``round`` and ``local_epochs``.
        """
        self.train_local(int(config["round"]), int(config["local_epochs"]))
        self.scheduler.step()

    def fit_fedavg(self, config: Mapping[str, Any]) -> tuple[Tensor, int]:
        """FedAvg baseline round (docs/cgsv.md §6): load θ_F, train E epochs, step.

        The party keeps its locally trained model (the one its fairness uses).

        Args:
            config: ``round``, ``local_epochs`` and ``parameters`` (flat θ_F).

        Returns:
            (flat(θ_i^new), n_i).
        """
        assign_parameters(self.model, config["parameters"])
        self.train_local(int(config["round"]), int(config["local_epochs"]))
        self.scheduler.step()
        return self.flat(), self.n_samples
