"""Tests for rewards/cgm/sampling.py (docs/cgm.md §7)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import stats

from rewards.cgm.reference import direct_value, naive_sample_party
from rewards.cgm.sampler_core import InitialState, SamplingResult
from rewards.cgm.sampling import (
    candidate_reference_sums,
    initial_state,
    sample_parties,
    sample_party,
)
from valuation.kernels import rbf_kernel

# Fast and naive sums differ only by float64 rounding of O(n) terms.
REL_SUMS = 1e-9


def _problem(seed: int, n_g: int = 120, d: int = 3) -> dict:
    """Two parties and a pool; T = D_0 ⊎ D_1 ⊎ G (docs/cgm.md §1)."""
    rng = np.random.default_rng(seed)
    d0 = rng.normal(0.6, 1.0, size=(30, d))
    d1 = rng.normal(-0.4, 0.8, size=(20, d))
    g = rng.normal(0.0, 1.2, size=(n_g, d))
    ref = np.vstack([d0, d1, g])
    return {"parties": [d0, d1], "g": g, "ref": ref, "ell": 1.0}


def _fast(p: dict, target: float, inv_temp: float, seed: int | None) -> SamplingResult:
    t = candidate_reference_sums(p["g"], p["ref"], p["ell"])
    return sample_party(
        p["parties"][0],
        p["g"],
        t,
        p["ref"].shape[0],
        p["ell"],
        target,
        inv_temp=inv_temp,
        seed=seed,
        reference=p["ref"],
    )


def _assert_same(a: SamplingResult, b: SamplingResult, rtol: float) -> None:
    np.testing.assert_array_equal(a.candidate_index, b.candidate_index)
    np.testing.assert_allclose(a.value_trace, b.value_trace, rtol=rtol)
    assert a.stop_reason == b.stop_reason
    assert a.start_value == pytest.approx(b.start_value, rel=rtol)


# ----------------------------------------------------------------- known answers


def test_direct_value_known_answer() -> None:
    # Prepare: S = {0}, T = {0, 0, 10}, ℓ = 1: k(0, 10) = e^-50 ≈ 0
    s_set, ref = np.zeros((1, 1)), np.array([[0.0], [0.0], [10.0]])
    # Execute
    v = direct_value(s_set, ref, 1.0)
    # Assert: S_XY = 2·2/(1·3), S_X = 1 (e^-50 is below float64 resolution here)
    assert v == pytest.approx(4.0 / 3.0 - 1.0, rel=1e-15)


def test_greedy_known_answer_far_apart_points() -> None:
    # Prepare: D = {0}; G = {0, 10, 20} (kernel between them ≈ e^-50 → 0);
    # T = {0, 0, 10, 20}. v(D) = 2·2/4 − 1 = 0.
    # Step 1: copy 0 → v = 2·4/8 − 4/4 = 0; 10 or 20 → v = 2·3/8 − 2/4 = 1/4:
    #   an exact float tie, so the lowest index (1) wins.
    # Step 2: 0 → v = 2·5/12 − 5/9 = 5/18; 20 → v = 2·4/12 − 3/9 = 1/3: picks 2.
    # Then one candidate is left: "exhausted".
    g = np.array([[0.0], [10.0], [20.0]])
    party = np.zeros((1, 1))
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    # Execute
    res = sample_party(party, g, t, 4, 1.0, 1.0, inv_temp=math.inf, reference=ref)
    # Assert (each value is a handful of exact float operations)
    assert res.candidate_index.tolist() == [1, 2]
    np.testing.assert_allclose(res.value_trace, [0.25, 1.0 / 3.0], rtol=1e-15)
    assert res.stop_reason == "exhausted"
    assert res.start_value == pytest.approx(0.0, abs=1e-15)
    assert res.best_value == pytest.approx(1.0 / 3.0, rel=1e-15)
    assert res.candidate_index.dtype == np.int64
    assert res.value_trace.dtype == np.float64


def test_target_stops_after_first_point() -> None:
    # Prepare: the same pool; r = 1/4 is reached by the first addition
    g = np.array([[0.0], [10.0], [20.0]])
    party = np.zeros((1, 1))
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    # Execute
    res = sample_party(party, g, t, 4, 1.0, 0.25, inv_temp=math.inf, reference=ref)
    # Assert
    assert res.candidate_index.tolist() == [1]
    assert res.stop_reason == "target"
    assert res.achieved_value == pytest.approx(0.25, rel=1e-15)


def test_at_least_one_point_even_if_target_already_met() -> None:
    # Prepare: target below v(D_i)
    p = _problem(3)
    # Execute
    res = _fast(p, -math.inf, 1.0, 0)
    # Assert
    assert res.n_rewards == 1
    assert res.stop_reason == "target"


def test_stall_known_answer() -> None:
    # Prepare: identical points everywhere; every v is 2·m·n_T/(m·n_T) − 1 = 1, so
    # the first addition is no new maximum and L = ceil(0.1·3) = 1 stalls at once.
    g = np.zeros((3, 2))
    party = np.zeros((2, 2))
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 0.5)
    # Execute
    res = sample_party(party, g, t, 5, 0.5, 2.0, inv_temp=1.0, seed=0, reference=ref)
    # Assert
    assert res.stop_reason == "stall"
    assert res.n_rewards == 1
    np.testing.assert_allclose(res.value_trace, [1.0], rtol=1e-15)  # exact sums


def test_stall_limit_is_ceil_tenth_of_pool() -> None:
    # Prepare: 25 identical candidates → L = ceil(2.5) = 3 non-improving additions
    g = np.ones((25, 1))
    party = np.ones((4, 1))
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    # Execute
    res = sample_party(party, g, t, 29, 1.0, 5.0, inv_temp=math.inf, reference=ref)
    # Assert: greedy ties → lowest indices
    assert res.stop_reason == "stall"
    assert res.candidate_index.tolist() == [0, 1, 2]


def test_initial_state_matches_kernel_sums(seed: int) -> None:
    # Prepare
    p = _problem(seed)
    x, g, ref = p["parties"][1], p["g"], p["ref"]
    # Execute
    st = initial_state(x, g, ref, p["ell"])
    t = candidate_reference_sums(g, ref, p["ell"])
    # Assert
    np.testing.assert_allclose(st.s, rbf_kernel(g, x, 1.0).sum(1), rtol=REL_SUMS)
    np.testing.assert_allclose(st.A, rbf_kernel(x, x, 1.0).sum(), rtol=REL_SUMS)
    np.testing.assert_allclose(st.B, rbf_kernel(x, ref, 1.0).sum(), rtol=REL_SUMS)
    np.testing.assert_allclose(t, rbf_kernel(g, ref, 1.0).sum(1), rtol=REL_SUMS)
    assert st.n_party == 20


# ------------------------------------------------------------- fast vs naive


@pytest.mark.parametrize("inv_temp", [math.inf, 0.0, 1.0, 8.0])
@pytest.mark.parametrize("target_quantile", [0.5, 2.0])
def test_fast_equals_naive(seed: int, inv_temp: float, target_quantile: float) -> None:
    # Prepare: a target between v(D_i) and v(D_i ⊎ G) (0.5) or above reach (2.0)
    p = _problem(seed)
    x = p["parties"][0]
    v0 = direct_value(x, p["ref"], 1.0)
    v_all = direct_value(np.vstack([x, p["g"]]), p["ref"], 1.0)
    target = v0 + target_quantile * (v_all - v0)
    # Execute
    fast = _fast(p, target, inv_temp, seed)
    naive = naive_sample_party(
        x, p["g"], p["ref"], 1.0, target, inv_temp=inv_temp, seed=seed
    )
    # Assert: the same candidates in the same order, same draws
    _assert_same(fast, naive, REL_SUMS)
    assert fast.best_value == pytest.approx(naive.best_value, rel=REL_SUMS)


@pytest.mark.parametrize("inv_temp", [math.inf, 2.0])
def test_value_trace_equals_recomputation(seed: int, inv_temp: float) -> None:
    # Prepare
    p = _problem(seed + 1)
    x = p["parties"][0]
    # Execute
    res = _fast(p, math.inf, inv_temp, seed)
    # Assert: v(D_i ⊎ R_k) by §5.1 for every prefix R_k
    direct = [
        direct_value(
            np.vstack([x, p["g"][res.candidate_index[: k + 1]]]), p["ref"], 1.0
        )
        for k in range(res.n_rewards)
    ]
    np.testing.assert_allclose(res.value_trace, direct, rtol=REL_SUMS)
    assert res.start_value == pytest.approx(
        direct_value(x, p["ref"], 1.0), rel=REL_SUMS
    )
    assert res.best_value == max(res.value_trace)
    assert len(set(res.candidate_index.tolist())) == res.n_rewards  # no replacement


# ------------------------------------------------------------- the draw rule


def test_beta_zero_is_uniform() -> None:
    # Prepare: the first draw over 3,000 seeds among 12 candidates of unequal value
    rng = np.random.default_rng(7)
    g = rng.normal(size=(12, 2))
    party = rng.normal(size=(5, 2))
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    st = initial_state(party, g, ref, 1.0)
    n_seeds = 3000
    # Execute
    first = [
        sample_party(
            party, g, t, 17, 1.0, -math.inf, inv_temp=0.0, seed=s, state=st
        ).candidate_index[0]
        for s in range(n_seeds)
    ]
    # Assert: chi-square against uniform; a fixed seed set, so deterministic.
    # p > 1e-3 fails for a real bias of a few percent (e.g. any β > 0.2 here).
    counts = np.bincount(first, minlength=12)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_softmax_of_minmax_scaled_gains() -> None:
    # Prepare: two candidates, so w = (0, 1) whatever their values, and
    # p(best) = e^β / (1 + e^β) (docs/cgm.md §7.1: min–max scaling before β).
    g = np.array([[0.0], [3.0]])
    party = np.array([[0.1]])
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    st = initial_state(party, g, ref, 1.0)
    n_seeds, beta = 4000, 1.0
    best = sample_party(party, g, t, 3, 1.0, -math.inf, inv_temp=math.inf, state=st)
    # Execute
    draws = np.array(
        [
            sample_party(
                party, g, t, 3, 1.0, -math.inf, inv_temp=beta, seed=s, state=st
            ).candidate_index[0]
            for s in range(n_seeds)
        ]
    )
    # Assert: within 4 binomial standard deviations (σ ≈ 0.007)
    p_best = math.e / (1.0 + math.e)
    freq = np.mean(draws == best.candidate_index[0])
    assert abs(freq - p_best) < 4 * math.sqrt(p_best * (1 - p_best) / n_seeds)


def test_equal_gains_draw_uniformly_not_nan() -> None:
    # Prepare: all candidates identical → all gains equal → w ≡ 0 → uniform
    g = np.zeros((8, 2))
    party = np.ones((3, 2))
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    st = initial_state(party, g, ref, 1.0)
    # Execute
    first = [
        sample_party(
            party, g, t, 11, 1.0, -math.inf, inv_temp=5.0, seed=s, state=st
        ).candidate_index[0]
        for s in range(2000)
    ]
    # Assert: no NaN (no error from rng.choice), uniform first draws (as above)
    counts = np.bincount(first, minlength=8)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_greedy_ties_go_to_lowest_index() -> None:
    # Prepare: every candidate twice (1-D, so both copies get bit-identical sums)
    base = np.array([[2.5], [-0.7], [1.1], [0.3]])
    g = np.vstack([base, base])
    party = np.array([[0.2], [-0.2]])
    ref = np.vstack([party, g])
    t = candidate_reference_sums(g, ref, 1.0)
    # Execute
    res = sample_party(party, g, t, 10, 1.0, math.inf, inv_temp=math.inf, reference=ref)
    # Assert: each pick is the first copy while it is available; the two copies
    # of a point are taken one after the other (the second is then best)
    idx = res.candidate_index.tolist()
    assert idx[0] < 4
    firsts = [c for c in idx if c < 4]
    assert all(c + 4 not in idx[: idx.index(c)] for c in firsts)


# ------------------------------------------------------------------- seeds


def test_same_seed_same_result_other_seed_differs(seed: int, seed_alt: int) -> None:
    # Prepare
    p = _problem(5)
    # Execute
    a = _fast(p, math.inf, 1.0, seed)
    b = _fast(p, math.inf, 1.0, seed)
    c = _fast(p, math.inf, 1.0, seed_alt)
    # Assert
    _assert_same(a, b, rtol=0.0)
    assert a.candidate_index.tolist() != c.candidate_index.tolist()


def test_seed_sequence_and_generator_accepted(seed: int) -> None:
    # Prepare
    p = _problem(6)
    ss = np.random.SeedSequence(seed)
    # Execute
    a = _fast(p, math.inf, 1.0, ss)
    b = _fast(p, math.inf, 1.0, np.random.default_rng(np.random.SeedSequence(seed)))
    # Assert
    _assert_same(a, b, rtol=0.0)


# ------------------------------------------------------ all parties, workers


def _all(p: dict, targets: list[float], inv_temp: float, **kw) -> list[SamplingResult]:
    return sample_parties(
        p["parties"], p["g"], p["ref"], p["ell"], targets, inv_temp=inv_temp, **kw
    )


@pytest.mark.parametrize("inv_temp", [math.inf, 1.0])
def test_sample_parties_matches_single_party(seed: int, inv_temp: float) -> None:
    # Prepare
    p = _problem(seed)
    seeds = np.random.SeedSequence(seed).spawn(2)
    targets = [0.3, 0.25]
    t = candidate_reference_sums(p["g"], p["ref"], 1.0)
    # Execute
    res = _all(p, targets, inv_temp, seeds=seeds)
    single = [
        sample_party(
            x,
            p["g"],
            t,
            p["ref"].shape[0],
            1.0,
            targets[i],
            inv_temp=inv_temp,
            seed=seeds[i],
            reference=p["ref"],
        )
        for i, x in enumerate(p["parties"])
    ]
    # Assert: the same sums, computed the same way
    for a, b in zip(res, single, strict=True):
        _assert_same(a, b, rtol=0.0)


def test_workers_do_not_change_results(seed: int) -> None:
    # Prepare
    p = _problem(seed)
    seeds = [11, 12]
    # Execute
    one = _all(p, [0.3, 0.25], 1.0, seeds=seeds, workers=1)
    two = _all(p, [0.3, 0.25], 1.0, seeds=seeds, workers=2)
    # Assert
    for a, b in zip(one, two, strict=True):
        _assert_same(a, b, rtol=0.0)


def test_precomputed_sums_give_identical_results(seed: int) -> None:
    # Prepare: t and the initial states computed once, as the β sweep does
    p = _problem(seed)
    seeds = [5, 6]
    center = p["ref"].mean(0)
    t = candidate_reference_sums(p["g"], p["ref"], p["ell"], center=center)
    states = [
        initial_state(x, p["g"], p["ref"], p["ell"], center=center)
        for x in p["parties"]
    ]
    # Execute
    fresh = _all(p, [0.3, 0.25], 2.0, seeds=seeds)
    reused = _all(p, [0.3, 0.25], 2.0, seeds=seeds, t=t, states=states)
    # Assert
    for a, b in zip(fresh, reused, strict=True):
        _assert_same(a, b, rtol=0.0)
    with pytest.raises(ValueError, match="`states` must have one entry per party"):
        _all(p, [0.3, 0.25], 2.0, seeds=seeds, t=t, states=states[:1])
    with pytest.raises(ValueError, match="`t` must be a finite vector"):
        _all(p, [0.3, 0.25], 2.0, seeds=seeds, t=t[:-1], states=states)


@pytest.mark.parametrize("inv_temp", [math.inf, 0.0, 3.0])
def test_batched_torch_path_matches_numpy(seed: int, inv_temp: float) -> None:
    # Prepare: the batched path on CPU torch; parties stop at different steps
    p = _problem(seed)
    p["parties"].append(np.random.default_rng(seed).normal(size=(10, 3)))
    p["ref"] = np.vstack([*p["parties"], p["g"]])
    seeds = [1, 2, 3]
    targets = [0.3, math.inf, -math.inf]
    # Execute
    ref_res = _all(p, targets, inv_temp, seeds=seeds)
    batched = _all(p, targets, inv_temp, seeds=seeds, batched=True)
    # Assert: the kernel column is a matmul in torch vs numpy → rounding only
    for a, b in zip(ref_res, batched, strict=True):
        _assert_same(a, b, rtol=1e-12)
    assert {r.stop_reason for r in batched} >= {"target", "stall"}


@pytest.mark.gpu
@pytest.mark.parametrize("inv_temp", [math.inf, 1.0])
def test_cuda_batched_matches_cpu(seed: int, inv_temp: float) -> None:
    # Prepare
    p = _problem(seed, n_g=400)
    seeds = [1, 2]
    # Execute
    cpu = _all(p, [0.3, math.inf], inv_temp, seeds=seeds)
    cuda = _all(p, [0.3, math.inf], inv_temp, seeds=seeds, device="cuda")
    # Assert: float64 on CUDA; exp/matmul round differently → rounding only
    for a, b in zip(cpu, cuda, strict=True):
        _assert_same(a, b, rtol=1e-12)


def test_unreachable_target_warns_with_gap(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    p = _problem(4)
    # Execute
    with caplog.at_level(logging.WARNING, logger="rewards.cgm.sampling"):
        res = _all(p, [5.0, 5.0], math.inf, seeds=[0, 1])
    # Assert: no error; a warning per party naming the gap r_i − max value
    assert all(r.stop_reason in ("stall", "exhausted") for r in res)
    assert "party 0" in caplog.text
    assert "party 1" in caplog.text
    assert f"{5.0 - res[0].best_value:.6g}" in caplog.text


# ----------------------------------------------------------------- bad input


def _good() -> dict:
    g = np.zeros((4, 2))
    g[:, 0] = np.arange(4)
    party = np.ones((2, 2))
    ref = np.vstack([party, g])
    return {
        "party_features": party,
        "candidate_features": g,
        "t": candidate_reference_sums(g, ref, 1.0),
        "n_reference": 6,
        "lengthscale": 1.0,
        "target": 0.5,
        "inv_temp": 1.0,
        "reference": ref,
    }


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"inv_temp": -1.0}, r"`inv_temp`.*-1.0"),
        ({"inv_temp": float("nan")}, r"`inv_temp`.*nan"),
        ({"target": float("nan")}, r"`target`.*NaN"),
        ({"party_features": np.ones((2, 3))}, r"feature dimension.*d=3"),
        ({"party_features": np.ones((0, 2))}, r"`party_features`.*non-empty"),
        ({"candidate_features": np.zeros((1, 2)), "t": np.ones(1)}, r"at least 2"),
        ({"t": np.ones(3)}, r"`t`.*\(4,\)"),
        ({"t": np.full(4, np.nan)}, r"`t`.*finite"),
        ({"n_reference": 5}, r"`n_reference`.*>= n_i \+ n_G = 6"),
        ({"lengthscale": 0.0}, r"`lengthscale`.*0.0"),
        ({"lengthscale": -1.0}, r"`lengthscale`.*-1.0"),
        ({"reference": None}, r"`state` and `reference`"),
        ({"reference": np.zeros((7, 2))}, r"`reference`.*n_reference = 6.*got 7"),
        ({"state": InitialState(np.zeros(3), 1.0, 1.0, 2)}, r"`state`.*4 candidates"),
        (
            {"candidate_features": np.full((4, 2), np.inf)},
            r"`candidate_features`.*finite",
        ),
    ],
)
def test_bad_input(change: dict, match: str) -> None:
    # Prepare
    args = {**_good(), **change}
    # Execute / Assert
    with pytest.raises(ValueError, match=match):
        sample_party(**args)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"inv_temp": "greedy"}, r"`inv_temp`.*number.*'greedy'"),
        ({"inv_temp": True}, r"`inv_temp`.*number"),
        ({"target": "high"}, r"`target`.*number"),
        ({"lengthscale": True}, r"`lengthscale`.*number"),
        ({"n_reference": 6.0}, r"`n_reference`.*int"),
    ],
)
def test_bad_input_type(change: dict, match: str) -> None:
    # Prepare: a value of the wrong type (a bool is never a number)
    args = {**_good(), **change}
    # Execute / Assert
    with pytest.raises(TypeError, match=match):
        sample_party(**args)


@pytest.mark.parametrize(
    ("change", "match", "exc"),
    [
        (
            {"targets": [0.5]},
            r"`targets`.*one entry per party \(2\), got 1",
            ValueError,
        ),
        ({"seeds": [1]}, r"`seeds`.*one entry per party", ValueError),
        ({"seeds": [1, np.random.default_rng(0)]}, r"`seeds`.*party 1", TypeError),
        ({"seeds": [1, None]}, r"`seeds`.*party 1", TypeError),
        ({"workers": 0}, r"`workers`.*0", ValueError),
        ({"workers": True}, r"`workers`.*int", TypeError),
        ({"targets": [0.5, float("nan")]}, r"`target`.*NaN", ValueError),
        ({"inv_temp": -0.5}, r"`inv_temp`", ValueError),
        ({"parties": []}, r"`parties`.*at least one", ValueError),
        ({"reference": np.zeros((5, 2))}, r"`n_reference`", ValueError),
        ({"device": "tpu"}, r"`device`.*'tpu'", ValueError),
    ],
)
def test_bad_input_sample_parties(change: dict, match: str, exc: type) -> None:
    # Prepare
    good = _good()
    party = good["party_features"]
    g = good["candidate_features"]
    args = {
        "parties": [party, party + 1.0],
        "candidate_features": g,
        "reference": np.vstack([party, party + 1.0, g]),
        "lengthscale": 1.0,
        "targets": [0.5, 0.5],
        "inv_temp": 1.0,
        "seeds": [1, 2],
        **change,
    }
    # Execute / Assert
    with pytest.raises(exc, match=match):
        sample_parties(**args)
