"""The ServerApp and ClientApp code paths without processes (docs/federated.md).

`LocalGrid` hands each message straight to the ClientApp with a per-node
``Context`` (its ``state`` kept across messages, as a SuperNode keeps it), so the
whole Flower layer (records, party state, mirrors, acknowledged rewards, dropped
parties) runs in seconds. tests/pipeline/test_fl_flower.py runs the same through
real SuperLink/SuperNode processes.
"""

from __future__ import annotations

import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Context, Message, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from rewards.cgsv.flower import client_app  # noqa: E402
from rewards.cgsv.flower.files import write_party_file, write_plan  # noqa: E402
from rewards.cgsv.flower.server_app import run_server  # noqa: E402
from rewards.cgsv.params import flatten_parameters  # noqa: E402
from rewards.cgsv.party import batch_order_table  # noqa: E402
from rewards.classifiers import build_classifier  # noqa: E402
from tests.rewards.cgsv.flower_helpers import (  # noqa: E402
    KW,
    assert_same_final_models,
    assert_same_rows,
    digits_parties,
    inprocess,
)

ROUNDS = 3
N = 3
SIZE = 40


class LocalGrid:
    """A Grid whose nodes are ClientApp calls in this process.

    ``drop`` = {(node, k)}: the node's k-th message (0-based, the query included)
    is lost, as if the SuperNode were down.
    """

    def __init__(self, configs, drop=()):
        TaskIdentity.run_id = 1
        TaskIdentity.task_id = 1
        TaskIdentity.node_id = 0
        self.contexts = {
            100 + i: Context(run_id=1, node_id=100 + i, node_config=cfg,
                             state=RecordDict(), run_config={})
            for i, cfg in enumerate(configs)
        }  # fmt: skip
        self.drop = set(drop)
        self.seen = dict.fromkeys(self.contexts, 0)
        self.replies = {}

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        ids = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = m.object_id  # as Flower's grids do
            node = m.metadata.dst_node_id
            k, self.seen[node] = self.seen[node], self.seen[node] + 1
            if (node, k) not in self.drop:
                self.replies[m.object_id] = client_app.app(
                    message=m, context=self.contexts[node]
                )
            ids.append(m.object_id)
        return ids

    def pull_messages(self, ids):
        return [self.replies.pop(i) for i in ids if i in self.replies]


def _setup(tmp_path, baselines):
    parts, test = digits_parties(N, SIZE)
    model = build_classifier("mlp", (64,), 10, seed=0)
    orders = batch_order_table([SIZE] * N, ROUNDS, 1, seed=1)
    meta = {**KW, "kind": "mlp", "input_shape": [64], "n_classes": 10,
            "rounds": ROUNDS, "betas": KW["beta"], "baselines": baselines,
            "n_parties": N, "party_sizes": [SIZE] * N, "round_timeout_s": 0.01,
            "connect_timeout_s": 5.0}  # fmt: skip
    plan = write_plan(tmp_path / "plan.npz", flatten_parameters(model).numpy(),
                      test, meta)  # fmt: skip
    configs = []
    for i, (xi, yi) in enumerate(parts):
        f = write_party_file(tmp_path / f"p{i}.npz", xi, yi, orders[i])
        configs.append({"party-id": i, "data-file": str(f),
                        "out-dir": str(tmp_path / "out")})  # fmt: skip
    return model, parts, test, orders, plan, configs


def test_flower_layer_equals_inprocess(tmp_path):
    # Prepare
    baselines = ["standalone", "fedavg"]
    model, parts, test, orders, plan, configs = _setup(tmp_path, baselines)
    ref_rows, runners = inprocess(model, parts, test, orders, ROUNDS, baselines)
    # Execute
    body = run_server(LocalGrid(configs), plan)
    # Assert: every row, and every party's final models
    assert_same_rows(ref_rows, body["rows"])
    assert_same_final_models(tmp_path / "out", runners)
    assert body["flower"]["missing"] == [[], [], []]


def test_dropped_party_rejoins_and_catches_up(tmp_path):
    # Prepare: party 2's message of round 1 is lost (its 3rd message: query, r0, r1)
    *_, plan, configs = _setup(tmp_path, [])
    grid = LocalGrid(configs, drop={(102, 2)})
    # Execute
    body = run_server(grid, plan)
    # Assert: missing in round 1 only, ψ = 0 and no reward there; back in round 2
    assert body["flower"]["missing"] == [[], [2], []]
    rows = {(r["round"], r["party"]): r for r in body["rows"]}
    assert rows[(1, 2)]["missing"] == 1
    assert rows[(1, 2)]["psi"] == 0.0
    assert rows[(1, 2)]["reward_density"] is None
    assert rows[(2, 2)]["missing"] == 0
    assert rows[(2, 2)]["psi"] != 0.0
    # the party's own final model is θ_0 + its rewards of rounds 0 and 2 (the
    # round-0 reward was re-sent with round 2's message): equal to the mirror's
    # evaluation, so its accuracy row is the party's real model
    assert body["flower"]["final_unconfirmed"] == []
    state = grid.contexts[102].state.config_records["party"]
    assert state["applied.r0"] == ROUNDS - 1


def test_clientapp_refuses_missing_node_config():
    TaskIdentity.run_id = 1
    TaskIdentity.task_id = 1
    TaskIdentity.node_id = 0
    msg = Message(RecordDict(), dst_node_id=1, message_type="query")
    msg.metadata.__dict__["_message_id"] = msg.object_id
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(),
                  run_config={})  # fmt: skip
    with pytest.raises(ValueError, match="party-id and data-file"):
        client_app.app(message=msg, context=ctx)
