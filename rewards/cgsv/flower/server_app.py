"""The ServerApp: the lock-step loop of `simulate` played through Flower's Grid.

docs/federated.md; the round logic is `rewards.cgsv.simulation.play_rounds` with the
strategies of `rewards.cgsv.strategies`, unchanged. What differs is transport:

- round t of every method travels in ONE ``train`` message per party, and each
  party's message holds only its own rewards g_i = LayerTopK(u_N, q_i) (one
  message per node, never a broadcast);
- a reward reaches its party with the next message and is re-sent until the
  party acknowledges it (``applied.<key>``), so a party that missed a round
  catches up when it answers again;
- the server keeps a *mirror* of every party's model, θ_0 plus the rewards sent
  to it (θ_i = θ_0 + Σ_t g_i^(t), docs/cgsv.md §2), to evaluate it on the test
  set, which never leaves the coordinator; FedAvg's and Standalone's evaluated
  models are the ones their parties return (docs/cgsv.md §6);
- a party that does not answer within ``round_timeout_s`` is left out of the round
  (docs/cgsv.md §2.1) and flagged in the ``missing`` column.

``flwr run APP --run-config "plan='<plan.npz>' result='<result.json>'"`` runs it
(`pipeline.federation` does this for local runs); the result is a JSON file with
the ``rounds.csv`` rows, the summary and the Flower timings, or ``{"error": ...}``.
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from torch import Tensor, nn

from data.atomic import atomic_path
from rewards.cgsv.flower.files import read_plan
from rewards.cgsv.flower.records import (
    QUERY,
    TRAIN,
    pack_arrays,
    reward_key,
    shorten_pull_backoff,
    to_numpy,
    to_tensor,
    unpack_arrays,
)
from rewards.cgsv.params import add_to_parameters, assign_parameters
from rewards.cgsv.simulation import (
    _Evaluator,
    _Runner,
    make_runners,
    play_rounds,
)
from rewards.cgsv.strategies import RoundResult
from rewards.classifiers import build_classifier

logger = logging.getLogger(__name__)

#: seconds between two pulls of replies (Flower's own send_and_receive waits 3 s)
PULL_INTERVAL_S = 0.05

app = ServerApp()


class MirrorParty:
    """The server's copy of party i's model, for evaluation only (module docstring)."""

    def __init__(self, party_id: int, n_samples: int, model: nn.Module):
        self.party_id = party_id
        self.n_samples = n_samples
        self.model = model
        self.last_normalise_s = 0.0

    def apply_reward(self, reward: Tensor) -> None:
        """θ_i ← θ_i + g_i, exactly as the party does (docs/cgsv.md §2 step 8)."""
        add_to_parameters(self.model, reward)

    def load(self, flat: Tensor) -> None:
        """θ_i ← a model the party returned (FedAvg, Standalone)."""
        assign_parameters(self.model, flat)


def exchange(
    grid: Grid,
    contents: Mapping[int, RecordDict],
    nodes: Mapping[int, int],
    timeout_s: float,
    message_type: str = TRAIN,
) -> dict[int, RecordDict]:
    """Send each party its own message; return the answers within ``timeout_s``.

    Args:
        grid: the Flower Grid.
        contents: {party_id: content}, one message each.
        nodes: {party_id: node_id}.
        timeout_s: seconds to wait for all answers.
        message_type: ``train`` or ``query``.

    Returns:
        {party_id: reply content} of the parties that answered without an error.
    """
    msgs = [
        Message(content, dst_node_id=nodes[i], message_type=message_type)
        for i, content in contents.items()
    ]
    ids = list(grid.push_messages(msgs))
    # Flower returns None for a message it could not push (e.g. an unknown node)
    waiting = {mid: i for mid, i in zip(ids, contents, strict=True) if mid}
    answers: dict[int, RecordDict] = {}
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        for reply in grid.pull_messages(list(waiting)):
            party = waiting.pop(reply.metadata.reply_to_message_id, None)
            if party is None:
                continue
            if reply.has_error():
                logger.warning("party %d answered an error: %s", party, reply.error)
            else:
                answers[party] = reply.content
        if waiting:
            time.sleep(PULL_INTERVAL_S)
    return answers


def connect(grid: Grid, n_parties: int, timeout_s: float) -> dict[int, int]:
    """Wait for N SuperNodes and ask each its party id: {party_id: node_id}.

    Raises:
        RuntimeError: when fewer than N parties 0..N−1 answer within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    node_ids: list[int] = []
    while time.monotonic() < deadline:
        node_ids = sorted(grid.get_node_ids())
        if len(node_ids) >= n_parties:
            break
        time.sleep(0.2)
    probe = {k: RecordDict() for k in range(len(node_ids))}
    left = max(deadline - time.monotonic(), 1.0)
    answers = exchange(grid, probe, dict(enumerate(node_ids)), left, QUERY)
    nodes = {
        int(a.config_records["meta"]["party_id"]): node_ids[k]
        for k, a in answers.items()
    }
    if sorted(nodes) != list(range(n_parties)):
        raise RuntimeError(
            f"expected parties 0..{n_parties - 1} within {timeout_s:g} s, "
            f"got {sorted(nodes)}"
        )
    return nodes


class FlowerFleet:
    """Plays round t of every runner through one message per party (`PlayAll`)."""

    def __init__(
        self,
        grid: Grid,
        nodes: Mapping[int, int],
        sizes: Sequence[int],
        theta_0: Tensor,
        job: Mapping[str, Any],
        timeout_s: float,
    ):
        self.grid = grid
        self.nodes = dict(nodes)
        self.sizes = list(sizes)
        self.theta_0 = theta_0
        self.job = dict(job)
        self.timeout_s = timeout_s
        self.answered: set[int] = set()
        #: {runner key: {party: [(t, g_i^(t)) not yet acknowledged]}}
        self.pending: dict[str, dict[int, list[tuple[int, Tensor]]]] = {}
        self.exchange_s: list[float] = []
        self.missing_by_round: list[list[int]] = []
        self.eval_rounds: set[int] = set()

    def _contents(
        self, runners: Sequence[_Runner], t: int, final: bool
    ) -> dict[int, RecordDict]:
        keys = [f"r{k}" for k in range(len(runners))]
        job = ConfigRecord(
            {
                **self.job,
                "round": t,
                "runners": keys,
                "methods": [r.method for r in runners],
                "send_model": t in self.eval_rounds,
                "final": final,
            }
        )
        params = {}
        for key, runner in zip(keys, runners, strict=True):
            if runner.method == "fedavg" and runner.strategy is not None and not final:
                params[key] = to_numpy(runner.strategy.theta)
        contents = {}
        for i in self.nodes:
            named: dict[str, dict[str, Any]] = {}
            if i not in self.answered:
                named["init"] = {"theta_0": to_numpy(self.theta_0)}
            for key in keys:
                arrays = named.setdefault(key, {})
                if key in params:
                    arrays["params"] = params[key]
                for tr, g in self.pending.get(key, {}).get(i, []):
                    arrays[reward_key(tr)] = to_numpy(g)
            content = RecordDict({"job": job})
            pack_arrays(content, named)
            contents[i] = content
        return contents

    def _acknowledge(self, answers: Mapping[int, RecordDict]) -> None:
        for i, answer in answers.items():
            self.answered.add(i)
            meta = answer.config_records["meta"]
            for key, by_party in self.pending.items():
                applied = int(meta.get(f"applied.{key}", -1))
                by_party[i] = [(tr, g) for tr, g in by_party.get(i, []) if tr > applied]

    def play_all(
        self, runners: Sequence[_Runner], t: int
    ) -> list[tuple[RoundResult | None, float, float | None]]:
        """Round t of every runner (the `PlayAll` of `play_rounds`)."""
        t0 = time.perf_counter()
        answers = exchange(
            self.grid, self._contents(runners, t, False), self.nodes, self.timeout_s
        )
        self.exchange_s.append(time.perf_counter() - t0)
        self._acknowledge(answers)
        missing = {i: self.sizes[i] for i in self.nodes if i not in answers}
        if len(answers) < 2:
            raise RuntimeError(
                f"round {t}: {len(answers)} of {len(self.nodes)} parties answered "
                f"within {self.timeout_s:g} s (fl.round_timeout_s); a round needs 2"
            )
        if missing:
            logger.warning("round %d: no answer from parties %s", t, sorted(missing))
        self.missing_by_round.append(sorted(missing))
        arrays = {i: unpack_arrays(a) for i, a in answers.items()}
        return [
            self._finish(f"r{k}", runner, t, answers, arrays, missing)
            for k, runner in enumerate(runners)
        ]

    def _finish(
        self,
        key: str,
        runner: _Runner,
        t: int,
        answers: Mapping[int, RecordDict],
        arrays: Mapping[int, Mapping[str, Mapping[str, Any]]],
        missing: Mapping[int, int],
    ) -> tuple[RoundResult | None, float, float | None]:
        """Aggregate one runner's answers (``arrays``: unpacked) and its mirrors."""
        runner.missing = sorted(missing)
        fit_s = max(
            (float(a.config_records["meta"][f"fit_s.{key}"]) for a in answers.values()),
            default=0.0,
        )
        records = {i: arrays[i].get(key, {}) for i in answers}
        mirrors = {p.party_id: p for p in runner.parties}
        if runner.strategy is None:
            for i, rec in records.items():
                if "model" in rec:
                    mirrors[i].load(to_tensor(rec["model"]))
            return None, fit_s, None
        t_server = time.perf_counter()
        runner.strategy.configure_round(t)
        uploads = [
            (i, to_tensor(rec["vec"]), self.sizes[i]) for i, rec in records.items()
        ]
        result = runner.strategy.aggregate_round(t, uploads, missing)
        if runner.method == "fedavg":
            for i, vec, _ in uploads:
                mirrors[i].load(vec)
        for i, g in result.rewards.items():
            mirrors[i].apply_reward(g)
            self.pending.setdefault(key, {}).setdefault(i, []).append((t, g))
        server_s = time.perf_counter() - t_server
        return result, fit_s + server_s, server_s

    def finish(self, runners: Sequence[_Runner]) -> list[int]:
        """Deliver the last rewards; return the parties that did not confirm."""
        contents = self._contents(runners, len(self.exchange_s), True)
        answers = exchange(self.grid, contents, self.nodes, self.timeout_s)
        self._acknowledge(answers)
        return sorted(set(self.nodes) - set(answers))


def run_server(
    grid: Grid, plan_file: str | Path, connected: Path | None = None
) -> dict[str, Any]:
    """Run the federation of ``plan_file`` (see `files`); return the result body.

    ``connected`` is touched once every party has answered who it is.
    """
    theta_0_np, test, meta = read_plan(plan_file)
    n_parties = int(meta["n_parties"])
    nodes = connect(grid, n_parties, float(meta["connect_timeout_s"]))
    if connected is not None:
        connected.touch()
    init_model = build_classifier(
        meta["kind"], tuple(meta["input_shape"]), int(meta["n_classes"]), seed=0
    )
    theta_0 = torch.from_numpy(theta_0_np)
    assign_parameters(init_model, theta_0)
    dev = torch.device("cpu")
    x_test = torch.as_tensor(test[0], dtype=torch.float32)
    y_test = torch.as_tensor(test[1], dtype=torch.long)
    evaluator = _Evaluator(init_model, x_test, y_test, dev)
    sizes = [int(s) for s in meta["party_sizes"]]

    def mirrors() -> list[MirrorParty]:
        models = [copy.deepcopy(init_model) for _ in range(n_parties)]
        return [MirrorParty(i, sizes[i], m) for i, m in enumerate(models)]

    runners = make_runners(
        init_model, n_parties, mirrors, meta["betas"], meta["baselines"],
        gamma=meta["gamma"], alpha=meta["alpha"], local_epochs=meta["local_epochs"],
        aggregator=meta["aggregator"],
    )  # fmt: skip
    for runner in runners:
        runner.missing_column = True
    job_keys = ("local_epochs", "gamma", "lr", "lr_decay", "batch_size", "kind")
    job = {k: meta[k] for k in job_keys}
    job.update(
        input_shape=list(meta["input_shape"]),
        n_classes=int(meta["n_classes"]),
        device="cpu",
    )
    fleet = FlowerFleet(
        grid, nodes, sizes, theta_0, job, float(meta["round_timeout_s"])
    )
    rounds, every = int(meta["rounds"]), int(meta["eval_every"])
    fleet.eval_rounds = {t for t in range(rounds) if t % every == 0 or t == rounds - 1}
    rows: list[dict[str, Any]] = []
    summary = play_rounds(
        runners, evaluator, sizes, meta["aggregator"], rounds=rounds,
        local_epochs=int(meta["local_epochs"]), eval_every=every, device=dev,
        on_round=rows.append, play_all=fleet.play_all,
    )  # fmt: skip
    unconfirmed = fleet.finish(runners)
    return {
        "rows": rows,
        "summary": summary.to_dict(),
        "flower": {
            "round_exchange_s": fleet.exchange_s,
            "median_exchange_s": statistics.median(fleet.exchange_s),
            "missing": fleet.missing_by_round,
            "final_unconfirmed": unconfirmed,
        },
    }


def write_result(path: str | Path, body: Mapping[str, Any]) -> None:
    """Write the result JSON atomically (``inf`` as JSON's Infinity)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body))


def _config(context: Context, key: str) -> str:
    value = context.run_config.get(key)
    if not value:
        raise ValueError(f"flwr run needs --run-config \"{key}='<file>'\"")
    return str(value)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """The ServerApp's entry: run the plan, write the result (or the error)."""
    result = _config(context, "result")
    shorten_pull_backoff()  # replies are pulled while their objects arrive
    try:
        body = run_server(grid, _config(context, "plan"), Path(f"{result}.connected"))
    except Exception as e:
        write_result(result, {"error": f"{type(e).__name__}: {e}"})
        raise
    write_result(result, body)


def app_pyproject(name: str = "synthreward-cgsv") -> str:
    """The ``pyproject.toml`` of the Flower App that `flwr run` bundles.

    The App holds no code: its components are this package's ServerApp and
    ClientApp, imported from the installed ``synthreward`` (``pip install
    .[flower]`` on every machine).
    """
    return f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "1.0.0"
description = "CGSV gradient rewards (synthreward, docs/federated.md)"
license = "MIT"
dependencies = []

[tool.flwr.app]
publisher = "synthreward"

[tool.flwr.app.components]
serverapp = "rewards.cgsv.flower.server_app:app"
clientapp = "rewards.cgsv.flower.client_app:app"

[tool.flwr.app.config]
plan = ""
result = ""
"""
