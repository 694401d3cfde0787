"""The first-moment problem (FM) of docs/contract.md §2, solved with ``trust-constr``.

Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract Design for Collaborative Machine
Learning" (AAAI 2025). Over x = (m, t) ∈ R^{2K}, maximise Φ(m) = Σ_n P(n)·a(n·m)
subject to F (t_i ≤ t̄_i(m) = Σ_n W_i(n)·v(a(n·m))), bounds m, t ≥ 0, and either

- ``"simplified"`` (the authors' set, §2): M (m non-decreasing), binding local IC,
  binding IR of the dearest type, IR of the others; or
- ``"full"``: IR of every type and IC of every ordered pair (i, j), i ≠ j,
  t_i − c_i m_i ≥ t_j − c_i m_j. M then follows from IC; t is no longer pinned by m.

Every derivative is analytic and vectorised over the (n_outcomes, K) outcome matrix;
there is no Python loop over outcomes. The valuation is linear, v(r) = V·r, so v'' = 0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, NonlinearConstraint, minimize

from rewards.contract.accuracy import AccuracyModel

__all__ = [
    "ConstraintSet",
    "FirstMomentSolution",
    "expected_accuracy",
    "expected_accuracy_gradient",
    "expected_accuracy_hessian",
    "linear_constraints",
    "max_reward_values",
    "max_reward_values_hessian",
    "max_reward_values_jacobian",
    "solve_first_moment",
]

logger = logging.getLogger(__name__)

ConstraintSet = Literal["simplified", "full"]
CONSTRAINT_SETS: tuple[str, ...] = ("simplified", "full")
SUCCESS_VIOLATION = 1e-8  # docs/contract.md §2: success needs a violation ≤ 1e-8


def expected_accuracy(
    m: NDArray, outcomes: NDArray, outcome_probs: NDArray, accuracy: AccuracyModel
) -> float:
    """Φ(m) = Σ_n P(n)·a(n·m), the expected joint accuracy (docs/contract.md §2).

    Args:
        m: (K,) contributions per type.
        outcomes: (n_outcomes, K) type counts n.
        outcome_probs: (n_outcomes,) P(n).
        accuracy: the accuracy model a.

    Returns:
        Φ(m).

    Example:
        >>> from rewards.contract.accuracy import PowerLawAccuracy
        >>> acc = PowerLawAccuracy(a_max=1.0, kappa=10.0, exponent=0.5)
        >>> e = expected_accuracy(np.array([100.0, 300.0]), np.array([[1, 0], [0, 1]]),
        ...                       np.array([0.5, 0.5]), acc)  # (0 + (1 − 10/√300))/2
        >>> round(e, 12)
        0.211324865405
    """
    return float(outcome_probs @ accuracy.value(outcomes @ m))


def expected_accuracy_gradient(
    m: NDArray, outcomes: NDArray, outcome_probs: NDArray, accuracy: AccuracyModel
) -> NDArray[np.float64]:
    """∇_mΦ = Σ_n P(n)·a'(X_n)·n with X_n = n·m.

    Args:
        m: (K,) contributions.
        outcomes: (n_outcomes, K) type counts.
        outcome_probs: (n_outcomes,) P(n).
        accuracy: the accuracy model a.

    Returns:
        (K,) gradient.
    """
    return outcomes.T @ (outcome_probs * accuracy.derivative(outcomes @ m))


def expected_accuracy_hessian(
    m: NDArray, outcomes: NDArray, outcome_probs: NDArray, accuracy: AccuracyModel
) -> NDArray[np.float64]:
    """∇²_mmΦ = Σ_n P(n)·a''(X_n)·n nᵀ.

    Args:
        m: (K,) contributions.
        outcomes: (n_outcomes, K) type counts.
        outcome_probs: (n_outcomes,) P(n).
        accuracy: the accuracy model a.

    Returns:
        (K, K) Hessian.
    """
    w = outcome_probs * accuracy.second_derivative(outcomes @ m)
    return (outcomes * w[:, None]).T @ outcomes


def max_reward_values(
    m: NDArray,
    outcomes: NDArray,
    weights: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
) -> NDArray[np.float64]:
    """t̄_i(m) = Σ_n W_i(n)·V·a(n·m), the most a type-i reward can be worth (§2, F).

    Args:
        m: (K,) contributions.
        outcomes: (n_outcomes, K) type counts.
        weights: (K, n_outcomes) conditional weights W_i(n).
        accuracy: the accuracy model a.
        value_scale: V.

    Returns:
        (K,) t̄.

    Example:
        >>> from rewards.contract.accuracy import PowerLawAccuracy
        >>> acc = PowerLawAccuracy(a_max=1.0, kappa=10.0, exponent=0.5)
        >>> max_reward_values(np.array([400.0]), np.array([[1]]), np.array([[1.0]]),
        ...                   acc, 100.0).round(9)  # 100·(1 − 10/20)
        array([50.])
    """
    return value_scale * (weights @ accuracy.value(outcomes @ m))


def max_reward_values_jacobian(
    m: NDArray,
    outcomes: NDArray,
    weights: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
) -> NDArray[np.float64]:
    """∂t̄_i/∂m_j = Σ_n W_i(n)·V·a'(X_n)·n_j.

    Args:
        m: (K,) contributions.
        outcomes: (n_outcomes, K) type counts.
        weights: (K, n_outcomes) W_i(n).
        accuracy: the accuracy model a.
        value_scale: V.

    Returns:
        (K, K) Jacobian, row i the gradient of t̄_i.
    """
    d1 = value_scale * accuracy.derivative(outcomes @ m)
    return weights @ (outcomes * d1[:, None])


def max_reward_values_hessian(
    m: NDArray,
    multipliers: NDArray,
    outcomes: NDArray,
    weights: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
) -> NDArray[np.float64]:
    """Σ_i λ_i ∇²_mm t̄_i = Σ_n (Σ_i λ_i W_i(n))·V·a''(X_n)·n nᵀ (v'' = 0).

    Args:
        m: (K,) contributions.
        multipliers: (K,) λ.
        outcomes: (n_outcomes, K) type counts.
        weights: (K, n_outcomes) W_i(n).
        accuracy: the accuracy model a.
        value_scale: V.

    Returns:
        (K, K) weighted Hessian.
    """
    w = (multipliers @ weights) * value_scale * accuracy.second_derivative(outcomes @ m)
    return (outcomes * w[:, None]).T @ outcomes


def linear_constraints(
    costs: NDArray, f: NDArray, constraints: ConstraintSet
) -> LinearConstraint:
    """The linear rows of FM over x = (m, t) (docs/contract.md §2).

    ``"simplified"``: M (m_i − m_{i+1} ≤ 0), IC (t_{i+1} − c_{i+1}m_{i+1} − t_i +
    c_{i+1}m_i = 0), IR1 (t_1 − c_1 m_1 = f_1), IR (t_i − c_i m_i ≥ f_i, i ≥ 2).
    ``"full"``: IR for every i and IC t_i − c_i m_i − t_j + c_i m_j ≥ 0 for all i ≠ j.

    Args:
        costs: (K,) costs.
        f: (K,) reservation utilities.
        constraints: ``"simplified"`` or ``"full"``.

    Returns:
        One `LinearConstraint`; equalities have lb = ub.

    Example:
        >>> lc = linear_constraints(np.array([2.0, 1.0]), np.zeros(2), "simplified")
        >>> lc.A  # rows M, IC, IR1, IR over x = (m1, m2, t1, t2)
        array([[ 1., -1.,  0.,  0.],
               [ 1., -1., -1.,  1.],
               [-2.,  0.,  1.,  0.],
               [ 0., -1.,  0.,  1.]])
    """
    k = costs.size
    rows: list[NDArray] = []
    lb: list[float] = []
    ub: list[float] = []

    def add(row: NDArray, lo: float, hi: float) -> None:
        rows.append(row)
        lb.append(lo)
        ub.append(hi)

    def utility_row(i: int, j: int) -> NDArray:
        """Row of t_j − c_i m_j: type i's utility from contract j."""
        row = np.zeros(2 * k)
        row[j], row[k + j] = -costs[i], 1.0
        return row

    if constraints == "simplified":
        for i in range(k - 1):  # M
            row = np.zeros(2 * k)
            row[i], row[i + 1] = 1.0, -1.0
            add(row, -np.inf, 0.0)
        for i in range(k - 1):  # IC: type i+1 indifferent to contract i
            add(utility_row(i + 1, i + 1) - utility_row(i + 1, i), 0.0, 0.0)
        add(utility_row(0, 0), f[0], f[0])  # IR1
        for i in range(1, k):  # IR
            add(utility_row(i, i), f[i], np.inf)
    elif constraints == "full":
        for i in range(k):
            add(utility_row(i, i), f[i], np.inf)
        for i in range(k):
            for j in range(k):
                if i != j:
                    add(utility_row(i, i) - utility_row(i, j), 0.0, np.inf)
    else:
        raise ValueError(
            f"Argument `constraints` must be one of {CONSTRAINT_SETS}, "
            f"got {constraints!r}"
        )
    return LinearConstraint(np.array(rows), np.array(lb), np.array(ub))


@dataclass(frozen=True)
class FirstMomentSolution:
    """What ``trust-constr`` returned for FM.

    Attributes:
        m: (K,) contributions.
        t: (K,) promised expected reward values.
        success: scipy's ``success`` and a constraint violation ≤ 1e-8.
        scipy_success: scipy's own flag.
        iterations: trust-constr iterations.
        constr_violation: scipy's final constraint violation.
        optimality: scipy's final optimality (of the scaled objective).
        message: scipy's message.
        time_s: wall time of the ``minimize`` call.
    """

    m: NDArray[np.float64]
    t: NDArray[np.float64]
    success: bool
    scipy_success: bool
    iterations: int
    constr_violation: float
    optimality: float
    message: str
    time_s: float


def solve_first_moment(
    *,
    costs: NDArray,
    f: NDArray,
    outcomes: NDArray,
    outcome_probs: NDArray,
    weights: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
    m_start: NDArray,
    t_start: NDArray,
    constraints: ConstraintSet = "simplified",
    objective_scale: float = 1e6,
    gtol: float = 1e-12,
    xtol: float = 1e-15,
    maxiter: int = 5000,
) -> FirstMomentSolution:
    """Solve FM with ``trust-constr``, analytic gradients and Hessians (§2).

    Minimises −S·Φ(m). F is one `NonlinearConstraint` (lb 0, ub ∞) with
    hess(x, λ) = Σ_i λ_i ∇²t̄_i; the rest is one `LinearConstraint`; Bounds(0, ∞).

    Args:
        costs: (K,) validated costs.
        f: (K,) reservation utilities.
        outcomes: (n_outcomes, K) type counts.
        outcome_probs: (n_outcomes,) P(n).
        weights: (K, n_outcomes) W_i(n).
        accuracy: the accuracy model a.
        value_scale: V.
        m_start: (K,) starting contributions; must not lie where a ≡ 0.
        t_start: (K,) starting reward values.
        constraints: ``"simplified"`` or ``"full"``.
        objective_scale: S; a large S keeps the flat optimum from stopping early.
        gtol: trust-constr gradient tolerance.
        xtol: trust-constr step tolerance.
        maxiter: iteration limit.

    Returns:
        The `FirstMomentSolution`.

    Raises:
        ValueError: if every n·m_start ≤ x₀ (a ≡ 0 there with zero gradient, a spurious
            stationary point the solver would report as optimal).
    """
    k = costs.size
    m_start = np.asarray(m_start, dtype=np.float64)
    if not np.any(outcomes @ m_start > accuracy.zero_crossing):
        raise ValueError(
            f"Argument `m_start` must give some outcome n·m > x₀ = "
            f"{accuracy.zero_crossing:.6g}, got {m_start.tolist()!r}: a ≡ 0 there and "
            "m = 0 is a spurious stationary point"
        )

    def objective(x: NDArray) -> float:
        return -objective_scale * expected_accuracy(
            x[:k], outcomes, outcome_probs, accuracy
        )

    def gradient(x: NDArray) -> NDArray:
        g = np.zeros(2 * k)
        g[:k] = -objective_scale * expected_accuracy_gradient(
            x[:k], outcomes, outcome_probs, accuracy
        )
        return g

    def hessian(x: NDArray) -> NDArray:
        h = np.zeros((2 * k, 2 * k))
        h[:k, :k] = -objective_scale * expected_accuracy_hessian(
            x[:k], outcomes, outcome_probs, accuracy
        )
        return h

    def slack_f(x: NDArray) -> NDArray:
        return (
            max_reward_values(x[:k], outcomes, weights, accuracy, value_scale) - x[k:]
        )

    def slack_f_jac(x: NDArray) -> NDArray:
        jac = np.zeros((k, 2 * k))
        jac[:, :k] = max_reward_values_jacobian(
            x[:k], outcomes, weights, accuracy, value_scale
        )
        jac[:, k:] = -np.eye(k)
        return jac

    def slack_f_hess(x: NDArray, lam: NDArray) -> NDArray:
        h = np.zeros((2 * k, 2 * k))
        h[:k, :k] = max_reward_values_hessian(
            x[:k], np.asarray(lam), outcomes, weights, accuracy, value_scale
        )
        return h

    x_start = np.concatenate([m_start, np.asarray(t_start, dtype=np.float64)])
    start = time.perf_counter()
    res = minimize(
        objective,
        x_start,
        method="trust-constr",
        jac=gradient,
        hess=hessian,
        constraints=[
            linear_constraints(costs, f, constraints),
            NonlinearConstraint(
                slack_f, 0.0, np.inf, jac=slack_f_jac, hess=slack_f_hess
            ),
        ],
        bounds=Bounds(np.zeros(2 * k), np.full(2 * k, np.inf)),
        options={"gtol": gtol, "xtol": xtol, "maxiter": maxiter},
    )
    elapsed = time.perf_counter() - start
    violation = float(res.constr_violation)
    success = bool(res.success) and violation <= SUCCESS_VIOLATION
    if not success:
        logger.warning(
            "trust-constr did not converge (%s; constraint violation %.3g; %d iter.)",
            res.message,
            violation,
            res.nit,
        )
    return FirstMomentSolution(
        m=np.asarray(res.x[:k], dtype=np.float64),
        t=np.asarray(res.x[k:], dtype=np.float64),
        success=success,
        scipy_success=bool(res.success),
        iterations=int(res.nit),
        constr_violation=violation,
        optimality=float(res.optimality),
        message=str(res.message),
        time_s=elapsed,
    )
