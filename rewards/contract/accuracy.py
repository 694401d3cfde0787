"""Accuracy models a(x) of docs/contract.md §1 and their first two derivatives.

Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract Design for Collaborative
Machine Learning" (AAAI 2025). The accuracy of a model trained on x data points is

- ``"sgb"``, the standard generalisation bound: with L = ln(x/k) and s = √(2k(2 + L)),
  a(x) = max(0, a_opt − (s + 4)/√x) for x > k·e⁻², and 0 otherwise;
- ``"powerlaw"``: a(x) = max(0, a_max − κ x^{−γ}).

Both are 0 up to their zero crossing x₀ and increasing and concave above it. The
derivatives are set to 0 wherever a(x) = 0 (docs/contract.md §1), so the flat region
carries a zero gradient: m = 0 is a spurious stationary point of the contract problem.

The closed-form a'' of the authors' reference solver is about half the true value; the
one here is the derivative of a', checked against finite differences in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from data.checks import check_positive

__all__ = [
    "AccuracyModel",
    "PowerLawAccuracy",
    "SGBAccuracy",
    "make_accuracy",
    "powerlaw_accuracy",
    "sgb_accuracy",
]


@runtime_checkable
class AccuracyModel(Protocol):
    """An accuracy curve a(x) with its derivatives (docs/contract.md §1).

    ``value``, ``derivative`` and ``second_derivative`` take any array of data sizes x
    and return float64 arrays of the same shape, all three 0 where a(x) = 0.
    """

    @property
    def name(self) -> str:
        """The config spelling of the model (``"sgb"`` or ``"powerlaw"``)."""
        ...

    @property
    def zero_crossing(self) -> float:
        """x₀: a(x) = 0 for x ≤ x₀ and a(x) > 0 above."""
        ...

    @property
    def supremum(self) -> float:
        """sup_x a(x) (a_opt or a_max), approached as x → ∞."""
        ...

    def value(self, x: ArrayLike) -> NDArray[np.float64]:
        """a(x)."""
        ...

    def derivative(self, x: ArrayLike) -> NDArray[np.float64]:
        """a'(x)."""
        ...

    def second_derivative(self, x: ArrayLike) -> NDArray[np.float64]:
        """a''(x)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The model's name and parameters, JSON-ready."""
        ...


def _sgb_parts(
    x: NDArray[np.float64], a_opt: float, k: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray]:
    """(b, L, s, mask): the unclipped bound b(x), L, s and the mask where a(x) > 0."""
    domain = x > k * math.exp(-2.0)
    xs = np.where(domain, x, k)  # a safe stand-in keeps log/sqrt finite off the domain
    log_term = np.log(xs / k)
    s = np.sqrt(np.maximum(2.0 * k * (2.0 + log_term), 0.0))
    b = a_opt - (s + 4.0) / np.sqrt(xs)
    return b, log_term, s, domain & (b > 0.0)


def sgb_accuracy(x: ArrayLike, *, a_opt: float = 1.0, k: float = 1.0) -> NDArray:
    """The SGB a(x) = max(0, a_opt − (s + 4)/√x) (docs/contract.md §1).

    Args:
        x: data sizes, any shape.
        a_opt: the optimal accuracy a_opt > 0.
        k: the complexity constant k > 0.

    Returns:
        float64 array of a(x), the shape of ``x``.

    Example:
        >>> # x = e⁶: L = 6, s = 4, so a = 1 − 8/e³
        >>> round(float(sgb_accuracy(math.exp(6.0))), 6), round(1 - 8 / math.exp(3), 6)
        (0.601703, 0.601703)
    """
    x = np.asarray(x, dtype=np.float64)
    b, _, _, mask = _sgb_parts(x, a_opt, k)
    return np.where(mask, b, 0.0)


def _sgb_on_support(
    x: ArrayLike, a_opt: float, k: float
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray]:
    """(mask, x, s, L) with safe stand-ins (1, 1, 0) where a(x) = 0."""
    x = np.asarray(x, dtype=np.float64)
    _, log_term, s, mask = _sgb_parts(x, a_opt, k)
    return (
        mask,
        np.where(mask, x, 1.0),
        np.where(mask, s, 1.0),
        np.where(mask, log_term, 0.0),
    )


def _sgb_derivative(x: ArrayLike, a_opt: float, k: float) -> NDArray[np.float64]:
    """a'(x) = (k + kL + 2s)/(s·x^{3/2}), 0 where a(x) = 0."""
    mask, xs, ss, lt = _sgb_on_support(x, a_opt, k)
    d1 = (k + k * lt + 2.0 * ss) / (ss * xs**1.5)
    return np.where(mask, d1, 0.0)


def _sgb_second_derivative(x: ArrayLike, a_opt: float, k: float) -> NDArray[np.float64]:
    """a''(x) = x^{−5/2}[k(s² − k − kL)/s³ − 3(k + kL + 2s)/(2s)], 0 where a(x) = 0."""
    mask, xs, ss, lt = _sgb_on_support(x, a_opt, k)
    bracket = k * (ss**2 - k - k * lt) / ss**3 - 3.0 * (k + k * lt + 2.0 * ss) / (
        2.0 * ss
    )
    return np.where(mask, bracket * xs**-2.5, 0.0)


def _sgb_zero_crossing(a_opt: float, k: float) -> float:
    """x₀ of the SGB curve: the root of b(x) on its increasing branch.

    b decreases up to the turning point where k + kL + 2s = 0 and increases to a_opt
    after it; with w = √(2 + L) that point solves k w² + 2√(2k) w − k = 0.
    """
    w = (-2.0 * math.sqrt(2.0 * k) + math.sqrt(8.0 * k + 4.0 * k * k)) / (2.0 * k)
    x_turn = k * math.exp(w * w - 2.0)

    def b(x: float) -> float:
        return float(
            a_opt - (math.sqrt(2.0 * k * (2.0 + math.log(x / k))) + 4.0) / x**0.5
        )

    if b(x_turn) >= 0.0:
        raise ValueError(
            f"Arguments `a_opt`={a_opt!r} and `k`={k!r} give an SGB curve that is "
            "positive at its minimum (a(x) not increasing); use a smaller a_opt or k"
        )
    x_hi = 2.0 * x_turn
    while b(x_hi) <= 0.0:
        x_hi *= 2.0
    return float(brentq(b, x_turn, x_hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))


@dataclass(frozen=True)
class SGBAccuracy:
    """The standard generalisation bound (docs/contract.md §1, ``accuracy = "sgb"``).

    Attributes:
        a_opt: optimal accuracy a_opt > 0 (default 1.0).
        k: complexity constant k > 0 (default 1.0).

    Example:
        >>> round(SGBAccuracy().zero_crossing, 5)  # docs/contract.md §1: x₀ = 55.80715
        55.80715
    """

    a_opt: float = 1.0
    k: float = 1.0
    _x0: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "a_opt", check_positive("a_opt", self.a_opt))
        object.__setattr__(self, "k", check_positive("k", self.k))
        object.__setattr__(self, "_x0", _sgb_zero_crossing(self.a_opt, self.k))

    @property
    def name(self) -> str:
        """``"sgb"``."""
        return "sgb"

    @property
    def zero_crossing(self) -> float:
        """x₀, where the bound crosses 0 (55.80715 for a_opt = k = 1)."""
        return self._x0

    @property
    def supremum(self) -> float:
        """a_opt."""
        return self.a_opt

    def value(self, x: ArrayLike) -> NDArray[np.float64]:
        """a(x); see `sgb_accuracy`."""
        return sgb_accuracy(x, a_opt=self.a_opt, k=self.k)

    def derivative(self, x: ArrayLike) -> NDArray[np.float64]:
        """a'(x) = (k + kL + 2s)/(s·x^{3/2}), 0 where a(x) = 0."""
        return _sgb_derivative(x, self.a_opt, self.k)

    def second_derivative(self, x: ArrayLike) -> NDArray[np.float64]:
        """a''(x) of docs/contract.md §1, 0 where a(x) = 0."""
        return _sgb_second_derivative(x, self.a_opt, self.k)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": "sgb", "a_opt": ..., "k": ...}``."""
        return {"name": self.name, "a_opt": self.a_opt, "k": self.k}


def powerlaw_accuracy(
    x: ArrayLike, *, a_max: float, kappa: float, exponent: float
) -> NDArray[np.float64]:
    """Power-law accuracy a(x) = max(0, a_max − κ x^{−γ}) (docs/contract.md §1).

    Args:
        x: data sizes, any shape.
        a_max: the asymptote a_max > 0.
        kappa: the scale κ > 0.
        exponent: the decay γ > 0.

    Returns:
        float64 array of a(x), the shape of ``x``.

    Example:
        >>> a = powerlaw_accuracy(400.0, a_max=1.0, kappa=10.0, exponent=0.5)
        >>> round(float(a), 9)
        0.5
    """
    x = np.asarray(x, dtype=np.float64)
    xs = np.where(x > 0, x, 1.0)
    b = a_max - kappa * xs**-exponent
    return np.where((x > 0) & (b > 0), b, 0.0)


@dataclass(frozen=True)
class PowerLawAccuracy:
    """Power-law learning curve (docs/contract.md §1, ``accuracy = "powerlaw"``).

    Attributes:
        a_max: asymptotic accuracy a_max > 0.
        kappa: scale κ > 0.
        exponent: decay γ > 0.

    Example:
        >>> round(PowerLawAccuracy(a_max=1.0, kappa=8.0, exponent=0.5).zero_crossing, 9)
        64.0
    """

    a_max: float
    kappa: float
    exponent: float

    def __post_init__(self) -> None:
        for name in ("a_max", "kappa", "exponent"):
            object.__setattr__(self, name, check_positive(name, getattr(self, name)))

    @property
    def name(self) -> str:
        """``"powerlaw"``."""
        return "powerlaw"

    @property
    def zero_crossing(self) -> float:
        """x₀ = (κ/a_max)^{1/γ}."""
        return float((self.kappa / self.a_max) ** (1.0 / self.exponent))

    @property
    def supremum(self) -> float:
        """a_max."""
        return self.a_max

    def _mask(self, x: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Where a(x) > 0, the same test as `powerlaw_accuracy` makes."""
        xs = np.where(x > 0, x, 1.0)
        return (x > 0) & (self.a_max - self.kappa * xs**-self.exponent > 0)

    def value(self, x: ArrayLike) -> NDArray[np.float64]:
        """a(x); see `powerlaw_accuracy`."""
        return powerlaw_accuracy(
            x, a_max=self.a_max, kappa=self.kappa, exponent=self.exponent
        )

    def derivative(self, x: ArrayLike) -> NDArray[np.float64]:
        """a'(x) = κγ x^{−γ−1}, 0 where a(x) = 0."""
        x = np.asarray(x, dtype=np.float64)
        mask = self._mask(x)
        xs = np.where(mask, x, 1.0)
        return np.where(
            mask, self.kappa * self.exponent * xs ** (-self.exponent - 1), 0.0
        )

    def second_derivative(self, x: ArrayLike) -> NDArray[np.float64]:
        """a''(x) = −κγ(γ + 1) x^{−γ−2}, 0 where a(x) = 0."""
        x = np.asarray(x, dtype=np.float64)
        mask = self._mask(x)
        xs = np.where(mask, x, 1.0)
        g = self.exponent
        return np.where(mask, -self.kappa * g * (g + 1) * xs ** (-g - 2), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": "powerlaw", "a_max": ..., "kappa": ..., "exponent": ...}``."""
        return {
            "name": self.name,
            "a_max": self.a_max,
            "kappa": self.kappa,
            "exponent": self.exponent,
        }


def make_accuracy(
    kind: Literal["sgb", "powerlaw"],
    *,
    a_opt: float = 1.0,
    k: float = 1.0,
    a_max: float | None = None,
    kappa: float | None = None,
    exponent: float | None = None,
) -> SGBAccuracy | PowerLawAccuracy:
    """Build the accuracy model named by ``contract.accuracy`` (docs/contract.md §4).

    Args:
        kind: ``"sgb"`` (uses ``a_opt``, ``k``) or ``"powerlaw"`` (needs ``a_max``,
            ``kappa`` and ``exponent``).
        a_opt: SGB optimal accuracy.
        k: SGB complexity constant.
        a_max: power-law asymptote.
        kappa: power-law scale κ.
        exponent: power-law decay γ.

    Returns:
        The model.

    Raises:
        ValueError: if ``kind`` is unknown or a power-law parameter is missing.

    Example:
        >>> acc = make_accuracy("powerlaw", a_max=1.0, kappa=10.0, exponent=0.5)
        >>> round(acc.zero_crossing, 9)
        100.0
    """
    if kind == "sgb":
        return SGBAccuracy(a_opt=a_opt, k=k)
    if kind == "powerlaw":
        missing = [
            n
            for n, v in (("a_max", a_max), ("kappa", kappa), ("exponent", exponent))
            if v is None
        ]
        if missing:
            raise ValueError(
                f"Argument `kind`='powerlaw' needs {', '.join(missing)}, got None"
            )
        return PowerLawAccuracy(a_max=a_max, kappa=kappa, exponent=exponent)  # type: ignore[arg-type]
    raise ValueError(f"Argument `kind` must be 'sgb' or 'powerlaw', got {kind!r}")
