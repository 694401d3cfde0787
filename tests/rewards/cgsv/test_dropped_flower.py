"""Dropped parties (docs/cgsv.md §2.1) and the Flower wire format (docs/federated.md).

The strategies' ``missing`` argument is what the Flower ServerApp passes for a party
that did not answer within ``fl.round_timeout_s``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewards.cgsv.flower.files import (
    read_party_file,
    read_plan,
    write_party_file,
    write_plan,
)
from rewards.cgsv.gradient import (
    cosine_contributions,
    flat_layer_topk,
    reward_fractions,
    update_importance,
)
from rewards.cgsv.strategies import FedAvgStrategy, GradientRewardStrategy

flwr = pytest.importorskip("flwr")

from rewards.cgsv.flower.records import (  # noqa: E402
    pack_arrays,
    unpack_arrays,
)

UPLOADS = {
    0: torch.tensor([1.0, 0.0, 0.0, 0.0]),
    1: torch.tensor([0.0, 1.0, 0.0, 0.0]),
    2: torch.tensor([-0.6, 0.0, 0.8, 0.0]),
}
SIZES = {0: 2, 1: 1, 2: 1}


def _strategy():
    return GradientRewardStrategy(
        torch.zeros(4), [3, 1], 3, gamma=1.0, alpha=0.95, beta=1.0, local_epochs=1
    )


def test_dropped_party_round_0_by_hand():
    # Prepare: party 2 does not answer; n = (2, 1) among the present
    strategy = _strategy()
    ups = [(i, UPLOADS[i], SIZES[i]) for i in (0, 1)]
    # By hand: w = (2/3, 1/3, 0); u_N = (2/3, 1/3, 0, 0); ψ_2 = 0 (zero upload)
    u_n = np.array([2 / 3, 1 / 3, 0.0, 0.0])
    psi = np.array([u_n[0], u_n[1], 0.0]) / np.linalg.norm(u_n)
    r_tilde = np.maximum(0.05 * psi, 1e-3)
    r = r_tilde / r_tilde.sum()
    # Execute
    result = strategy.aggregate_round(0, ups, missing={2: 1})
    # Assert: float32 u_N to 1e-7, float64 ψ, r to 1e-6 (ψ from float32 u)
    np.testing.assert_allclose(result.metrics["w"], [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(result.server_update, u_n, atol=1e-7)
    np.testing.assert_allclose(result.metrics["psi"], psi, atol=1e-6)
    np.testing.assert_allclose(result.metrics["r"], r, atol=1e-6)
    assert result.metrics["missing"] == [2]
    assert sorted(result.rewards) == [0, 1]


def test_dropped_party_r_decays_as_if_its_upload_were_zero():
    # Prepare: a full round, then party 1 missing in round 1
    fast = _strategy()
    full = [(i, UPLOADS[i], SIZES[i]) for i in range(3)]
    first = fast.aggregate_round(0, full)
    r0 = first.metrics["r"]
    # Execute
    second = fast.aggregate_round(1, [full[0], full[2]], missing={1: 1})
    # Assert against the slow path: weights r0 over the present, renormalised;
    # then the §2 functions with u_1 = 0
    w = np.array([r0[0], 0.0, r0[2]]) / (r0[0] + r0[2])
    mat = torch.stack([UPLOADS[0], torch.zeros(4), UPLOADS[2]])
    u_n = torch.as_tensor(w, dtype=torch.float32) @ mat
    psi = cosine_contributions(mat, u_n)
    r = update_importance(r0, psi, 0.95)
    q = reward_fractions(r, 1.0)
    rewards = flat_layer_topk(u_n, [3, 1], q)
    # float64 ψ/r/q of the same float32 vectors: 1e-12 is rounding order only
    np.testing.assert_allclose(second.metrics["w"], w, atol=1e-12)
    np.testing.assert_allclose(second.metrics["psi"], psi, atol=1e-12)
    np.testing.assert_allclose(second.metrics["r"], r, atol=1e-12)
    np.testing.assert_allclose(second.metrics["q"], q, atol=1e-12)
    assert second.metrics["psi"][1] == 0.0
    # α r_1 + 0 = 0.95 r_1 before normalisation
    assert math.isclose(
        second.metrics["r"][1],
        max(0.95 * r0[1], 1e-3) / np.maximum(0.95 * r0 + 0.05 * psi, 1e-3).sum(),
        rel_tol=1e-12,
    )
    for i in (0, 2):
        torch.testing.assert_close(second.rewards[i], rewards[i], rtol=0, atol=0)
    assert 1 not in second.rewards


def test_no_missing_is_unchanged():
    # Prepare: the same round with missing=None and missing={}
    a, b = _strategy(), _strategy()
    full = [(i, UPLOADS[i], SIZES[i]) for i in range(3)]
    # Execute
    ra = a.aggregate_round(0, full)
    rb = b.aggregate_round(0, full, missing={})
    # Assert: bit for bit
    np.testing.assert_array_equal(ra.metrics["r"], rb.metrics["r"])
    torch.testing.assert_close(ra.server_update, rb.server_update, rtol=0, atol=0)


def test_fewer_than_two_present_is_refused():
    strategy = _strategy()
    with pytest.raises(ValueError, match="present parties"):
        strategy.aggregate_round(0, [(0, UPLOADS[0], 2)], missing={1: 1, 2: 1})


def test_fedavg_dropped_party_weight_zero():
    # Prepare: θ_i^new of parties 0 and 2; party 1 missing; n = (2, ·, 1)
    fedavg = FedAvgStrategy(torch.zeros(4), 3, local_epochs=1)
    ups = [(0, UPLOADS[0], 2), (2, UPLOADS[2], 1)]
    # Execute
    result = fedavg.aggregate_round(0, ups, missing={1: 1})
    # Assert: θ_F = (2 u_0 + u_2) / 3
    np.testing.assert_allclose(result.metrics["w"], [2 / 3, 0.0, 1 / 3])
    np.testing.assert_allclose(
        fedavg.theta, (2 * UPLOADS[0] + UPLOADS[2]) / 3, atol=1e-7
    )
    assert result.metrics["missing"] == [1]


# --- wire format and files -------------------------------------------------


def _random_arrays(rng):
    """Random named arrays: several dtypes, 0-d, empty and n-d shapes."""
    dtypes = [np.float32, np.float64, np.int64, np.uint8, np.float16]
    named = {}
    for key in ("init", "r0", "r1", "r2"):
        arrays = {}
        for k in range(int(rng.integers(0, 4))):
            shape = tuple(int(d) for d in rng.integers(0, 5, size=rng.integers(0, 4)))
            a = rng.normal(size=shape) * 100
            kind = dtypes[int(rng.integers(len(dtypes)))]
            arrays[f"reward.{k}"] = np.asarray(a, dtype=kind)
        named[key] = arrays
    return named


@pytest.mark.parametrize("seed", range(5))
def test_packed_arrays_equal_one_record_per_array(seed):
    from flwr.app import Array, RecordDict

    named = _random_arrays(np.random.default_rng(seed))
    content = RecordDict()
    # Execute: the packed wire format, and the obvious one (an Array per array)
    pack_arrays(content, named)
    got = unpack_arrays(content)
    slow = {k: {n: Array(a).numpy() for n, a in v.items()} for k, v in named.items()}
    # Assert: bit for bit, same dtypes and shapes; runner keys without arrays absent
    assert got.keys() == {k for k, v in slow.items() if v}
    for key, arrays in got.items():
        assert arrays.keys() == slow[key].keys()
        for name, a in arrays.items():
            assert a.dtype == slow[key][name].dtype
            assert a.shape == slow[key][name].shape
            assert a.tobytes() == slow[key][name].tobytes()
            assert a.flags.writeable


def test_packed_message_has_the_same_objects_whatever_its_arrays():
    # Flower sends each object of a message in its own request (module docstring)
    from flwr.app import Message, RecordDict
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    rng = np.random.default_rng(0)
    counts = []
    for n in (1, 12):
        content = RecordDict()
        named = {f"r{k}": {"vec": rng.normal(size=50)} for k in range(n)}
        pack_arrays(content, named)
        message = Message(content, dst_node_id=1, message_type="train")
        counts.append(len(get_all_nested_objects(message)))
    assert counts[0] == counts[1]


def test_plan_and_party_files_round_trip(tmp_path):
    theta = np.arange(5, dtype=np.float32)
    test = (np.ones((3, 2), np.float32), np.array([0, 1, 0]))
    meta = {"betas": [1.0, math.inf], "kind": "mlp", "rounds": 3}
    write_plan(tmp_path / "plan.npz", theta, test, meta)
    t2, (x2, y2), m2 = read_plan(tmp_path / "plan.npz")
    np.testing.assert_array_equal(t2, theta)
    np.testing.assert_array_equal(x2, test[0])
    np.testing.assert_array_equal(y2, test[1])
    assert m2 == meta
    orders = np.arange(6).reshape(1, 2, 3)
    write_party_file(tmp_path / "p.npz", test[0], test[1], orders)
    x3, y3, o3 = read_party_file(tmp_path / "p.npz")
    np.testing.assert_array_equal(o3, orders)
    assert x3.dtype == np.float32
    assert y3.dtype == np.int64
